"""``mire info FILE``: what is in an image file (format, shape, dtype, axes, pixel size, value range)."""

from __future__ import annotations

import json

import typer

from mire.cli._common import friendly_errors


def image_stats(data) -> dict[str, float]:
    """Min, max and mean of an array, computed block by block when it is a dask array.

    Reading the file lazily and reducing per chunk keeps memory at a few chunks, so this
    works on OME-Zarr / HDF5 volumes larger than RAM.
    """
    import sys

    import dask.array as da
    import numpy as np
    from dask.diagnostics import ProgressBar

    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks="auto")
    # On stderr, and only when it runs for more than a second: stdout stays clean for --json.
    with ProgressBar(minimum=1.0, out=sys.stderr):
        lo, hi, mean = da.compute(arr.min(), arr.max(), arr.mean(dtype=np.float64))
    return {"min": float(lo), "max": float(hi), "mean": float(mean)}


def _format_pixel_size(sizes) -> str:
    if not sizes:
        return "unknown"
    return ", ".join(f"{a}={v:.6g}" for a, v in sizes.items()) + " µm"


def info(
    path: str = typer.Argument(..., help="Image file, OME-Zarr folder, 'file.h5:/dataset', slice folder or glob."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (for scripts)."),
    stats: bool = typer.Option(True, "--stats/--no-stats", help="Compute min/max/mean (reads every pixel, blockwise)."),
    level: int = typer.Option(0, "--level", help="OME-Zarr pyramid level for the statistics."),
) -> None:
    """Print format, shape, dtype, axes, pixel size and min/max/mean of an image file."""
    from mire.io import iminfo, read_image

    with friendly_errors():
        meta = iminfo(path)
        if stats:
            meta.update(image_stats(read_image(path, lazy=True, level=level).data))
    if as_json:
        meta["shape"] = list(meta["shape"])
        typer.echo(json.dumps(meta))
        return
    rows = [
        ("file", meta["path"]),
        ("format", meta["format"] + (f" ({meta['levels']} levels)" if meta["levels"] > 1 else "")),
        ("shape", " x ".join(str(n) for n in meta["shape"])),
        ("dtype", meta["dtype"]),
        ("axes", meta["axes"] or "unknown"),
        ("pixel size", _format_pixel_size(meta["pixel_size"])),
    ]
    if stats:
        rows.append(("min / max / mean", f"{meta['min']:.6g} / {meta['max']:.6g} / {meta['mean']:.6g}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key:<{width}}  {value}")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
