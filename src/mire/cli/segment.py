"""``mire segment`` (boundary map / affinities -> labels) and ``mire proofread`` (apply an edit log)."""

from __future__ import annotations

from pathlib import Path

import typer

from mire.cli._common import console, friendly_errors


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--threshold must be numbers separated by commas, e.g. 0.5 or 0.3,0.5; got {text!r}") from None
    if not values:
        raise ValueError("--threshold is empty")
    return values


def _as_probability(arr, *, invert: bool):
    """Scale an integer map to [0, 1] (8/16-bit probability maps are common) and optionally invert it."""
    import numpy as np

    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / np.iinfo(arr.dtype).max
    else:
        arr = arr.astype(np.float32)
    return 1.0 - arr if invert else arr


def _out_path(out: Path, threshold: float, many: bool) -> Path:
    if not many:
        return out
    name = out.name
    for ext in (".ome.zarr", ".ome.tif", ".tiff", ".tif", ".zarr", ".h5", ".png"):
        if name.lower().endswith(ext):
            return out.with_name(f"{name[: -len(ext)]}_t{threshold:g}{name[-len(ext):]}")
    return out.with_name(f"{name}_t{threshold:g}")


def _axes(ndim: int) -> str:
    return "ZYX"[-ndim:]


def segment_cmd(
    image: Path = typer.Argument(..., help="Boundary probability map (1 = membrane) or affinities (C, Z, Y, X)."),
    out: Path = typer.Argument(..., help="Output labels (.tif, .ome.zarr, file.h5:/dataset)."),
    boundaries: bool = typer.Option(False, "--boundaries", help="IMAGE is a boundary probability map."),
    affinities: bool = typer.Option(False, "--affinities", help="IMAGE is an affinity volume, channels first."),
    threshold: str = typer.Option("0.5", "--threshold", "-t",
                                  help="Agglomeration threshold(s) on the boundary score (1 - affinity), comma "
                                       "separated; several write one file each (OUT with _t<value>)."),
    min_size: int = typer.Option(0, "--min-size", help="Merge regions smaller than this into a neighbour."),
    scoring: str = typer.Option("", "--scoring",
                                help="Edge score: mean, median, quantile:0.75 (default: mean for boundaries, "
                                     "quantile:0.75 for affinities)."),
    min_distance: float = typer.Option(3.0, "--min-distance", help="Seed spacing of the watershed (voxels)."),
    per_slice: bool = typer.Option(False, "--per-slice", help="2D watershed per z-slice (thick-section ssTEM)."),
    invert: bool = typer.Option(False, "--invert", help="The map is 1 inside cells (1 - boundary): invert it."),
):
    """Segment a boundary map or affinities: seeded watershed, agglomeration, small-region cleanup."""
    with friendly_errors():
        import numpy as np

        from mire.io import imread, imwrite
        from mire.segment import segment_affinities, segment_boundaries

        if boundaries == affinities:
            raise ValueError("say what IMAGE holds: give exactly one of --boundaries or --affinities")
        if not image.exists():
            raise FileNotFoundError(f"input not found: {image}")
        thr = _thresholds(threshold)
        data = _as_probability(imread(image), invert=invert)
        if boundaries:
            segs = segment_boundaries(data, threshold=thr, min_size=min_size, scoring=scoring or "mean",
                                      min_distance=min_distance, per_slice=per_slice)
        else:
            if per_slice:
                raise ValueError("--per-slice applies to boundary maps only")
            segs = segment_affinities(data, thresholds=thr, min_size=min_size, scoring=scoring or "quantile:0.75",
                                      min_distance=min_distance)
        for t, seg in zip(thr, segs):
            path = _out_path(out, t, len(thr) > 1)
            imwrite(path, seg, axes=_axes(seg.ndim))
            n = int(np.count_nonzero(np.unique(seg)))
            console.print(f"threshold {t:g}: {n} segments -> {path}")


def proofread_cmd(
    seg: Path = typer.Argument(..., help="Segmentation to edit."),
    log: Path = typer.Argument(..., help="Edit log (JSON written by mire.segment.Proofreader.save_log)."),
    out: Path = typer.Argument(..., help="Output labels."),
    boundary: Path = typer.Option(None, "--boundary", help="Boundary map used for the splits during proofreading."),
    invert: bool = typer.Option(False, "--invert", help="The boundary map is 1 inside cells: invert it."),
):
    """Apply a proofreading edit log (merges, splits) to a segmentation and write the result."""
    with friendly_errors():
        from mire.io import imread, imwrite
        from mire.segment import load_log, replay

        for p in (seg, log):
            if not p.exists():
                raise FileNotFoundError(f"input not found: {p}")
        labels = imread(seg)
        bmap = None if boundary is None else _as_probability(imread(boundary), invert=invert)
        doc = load_log(log)
        edited = replay(labels, doc, boundary=bmap)
        imwrite(out, edited, axes=_axes(edited.ndim))
        console.print(f"applied {len(doc['edits'])} edits -> {out}")


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_cmd)
    app.command("proofread")(proofread_cmd)
