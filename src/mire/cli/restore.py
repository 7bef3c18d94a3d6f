"""``mire restore``: deconvolve (TV, Richardson-Lucy, Wiener) or apply a trained restorer to an image file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mire.cli._common import console, friendly_errors

METHODS = ("tv", "rl", "wiener")


def _parse_ints(text: str | None, what: str):
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise ValueError(f"{what} must be integers separated by commas (e.g. 64,256,256), got {text!r}") from exc
    if any(v < 1 for v in vals):
        raise ValueError(f"{what} must be positive, got {text!r}")
    return vals


def _spatial_axes(axes: str | None, ndim: int) -> str:
    if axes is None:
        if ndim not in (2, 3):
            raise ValueError(f"the image is {ndim}D; give --axes (e.g. ZYX) for data with channels or time")
        return "ZYX"[-ndim:]
    from mire._validate import check_axes

    axes = check_axes(axes, ndim)
    if set(axes) - set("ZYX"):
        raise ValueError(f"--axes {axes!r}: restore works on one 2D/3D image (Z, Y, X); split channels/time first")
    return axes


def restore_file(inp: Path, out: Path, *, method: str = "tv", psf: str = "gaussian:1.0", weight: float | None = None,
                 iterations: int | None = None, block: str | None = None, axes: str | None = None,
                 model: str | None = None, progress: bool = True) -> dict:
    """Read ``inp``, restore it, write ``out`` (keeping axes and pixel size); returns a summary."""
    import numpy as np

    from mire.io import imwrite, read_image

    if not Path(inp).exists():
        raise FileNotFoundError(f"input file not found: {inp}")
    loaded = read_image(inp, axes=axes)
    image = np.asarray(loaded.data)
    ax = _spatial_axes(loaded.axes or axes, image.ndim)
    pixel_size = loaded.pixel_size  # dict of micrometres per spatial axis, or None
    if model is not None:
        try:
            from mire.restore.learned import Restorer
        except ImportError as exc:
            raise ValueError("--model needs mire.restore.learned (the trained restorer), which is not installed "
                             "in this version") from exc
        result = np.asarray(Restorer.load(model).predict(image, axes=ax))
        used = f"model {model}"
    else:
        if method not in METHODS:
            raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
        from mire.optics.psf import parse_psf

        kernel = parse_psf(psf, ndim=image.ndim)
        block_shape = _parse_ints(block, "--block")
        if block_shape is not None and len(block_shape) != image.ndim:
            raise ValueError(f"--block has {len(block_shape)} values but the image is {image.ndim}D")
        # anisotropic voxels: the TV term weighs differences by the physical spacing
        spacing = None
        if isinstance(pixel_size, dict) and all(a in pixel_size for a in ax):
            spacing = tuple(float(pixel_size[a]) for a in ax)
        if method == "tv":
            from mire.restore.tv import tv_deconvolve

            result, meta = tv_deconvolve(image, kernel, weight=weight, n_iter=iterations, spacing=spacing,
                                         block_shape=block_shape, progress=progress, return_info=True)
            used = f"TV deconvolution, weight {meta['weight']:.4g}"
        elif method == "rl":
            from mire.restore.richardson_lucy import richardson_lucy

            result = richardson_lucy(image, kernel, n_iter=iterations or 30, tv_weight=weight or 0.0,
                                     spacing=spacing, block_shape=block_shape, progress=progress)
            used = "Richardson-Lucy" + (f"-TV, weight {weight:g}" if weight else "")
        else:
            from mire.restore.wiener import wiener

            if block_shape is not None:
                from mire.blockwise import map_blocks

                result = np.asarray(map_blocks(lambda b: wiener(b, kernel, balance=weight), image,
                                               block_shape=block_shape,
                                               halo=tuple(2 * k for k in kernel.shape), progress=progress))
            else:
                result = wiener(image, kernel, balance=weight)
            used = "Wiener" + (f", balance {weight:g}" if weight else " (balance from the data)")
    imwrite(out, np.asarray(result, dtype=np.float32), axes=ax, pixel_size=pixel_size)
    return {"method": used, "shape": tuple(image.shape), "axes": ax}


def register(app: typer.Typer) -> None:
    @app.command("restore")
    def restore_cmd(
        inp: Path = typer.Argument(..., help="Input image (.tif, .ome.zarr, file.h5:/dataset, .png)."),
        out: Path = typer.Argument(..., help="Output image (written atomically; axes and pixel size kept)."),
        method: str = typer.Option("tv", "--method", "-m", help="tv | rl | wiener"),
        psf: str = typer.Option("gaussian:1.0", "--psf", help="gaussian:SIGMA, gaussian:SZ,SY,SX or a PSF file"),
        weight: Optional[float] = typer.Option(None, "--weight", help="TV weight (default: chosen from the data); "
                                               "RL-TV weight for rl; balance for wiener"),
        iterations: Optional[int] = typer.Option(None, "--iterations", "-n", help="Iterations (tv, rl)"),
        block: Optional[str] = typer.Option(None, "--block", help="Process in blocks, e.g. 64,256,256"),
        axes: Optional[str] = typer.Option(None, "--axes", help="Axes of the input, e.g. ZYX"),
        model: Optional[str] = typer.Option(None, "--model", help="Trained restorer name or path (replaces --method)"),
    ):
        """Deconvolve an image (TV, Richardson-Lucy, Wiener) or restore it with a trained model."""
        with friendly_errors():
            from mire._torch import default_device

            console.print(f"restoring {inp} on {default_device()}")
            summary = restore_file(inp, out, method=method, psf=psf, weight=weight, iterations=iterations,
                                   block=block, axes=axes, model=model)
            console.print(f"[green]wrote[/green] {out} ({summary['method']}, shape {summary['shape']}, "
                          f"axes {summary['axes']})")
