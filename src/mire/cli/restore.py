"""``mire restore``: deconvolve (TV, Richardson-Lucy, Wiener) or apply a trained restorer to an image file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mire.cli._common import check_input_exists, check_output, check_single_image, console, friendly_errors

METHODS = ("tv", "rl", "wiener")


def _parse_ints(text: str | None, what: str, *, allow_zero: bool = False):
    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise ValueError(f"{what} must be integers separated by commas (e.g. 64,256,256), got {text!r}") from exc
    if any(v < (0 if allow_zero else 1) for v in vals):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else 'positive'}, got {text!r}")
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


#: inputs with more voxels than this are processed in blocks even without --block-size
AUTO_BLOCK_VOXELS = 2**27
DEFAULT_BLOCK = (64, 256, 256)


#: float64 copies an in-memory restoration holds at its peak (image, estimate, FFTs, gradients)
IN_MEMORY_COPIES = 8


def _check_memory(inp, out, shape, *, blockwise: bool) -> None:
    """Refuse a run whose in-memory arrays cannot fit, before reading a pixel."""
    import math
    import shutil

    from mire.io.gate import check_fits_memory, human_bytes

    voxels = math.prod(int(n) for n in shape)
    if not blockwise:
        check_fits_memory(inp, voxels * 8 * IN_MEMORY_COPIES, what="restoring it in memory",
                          hint="give --block-size (e.g. --block-size 64,256,256) to restore it block by block")
    elif not str(out).endswith(".zarr"):
        # blocks bound the work, but a TIFF / HDF5 / PNG output is assembled whole in memory
        check_fits_memory(inp, voxels * 4 * 2, what=f"writing {out} whole",
                          hint="write a .ome.zarr output, which --block-size fills block by block")
    else:
        parent = Path(out).resolve().parent
        free = shutil.disk_usage(parent if parent.is_dir() else Path.cwd()).free
        if voxels * 4 > free:
            raise OSError(f"{out}: the restored image needs {human_bytes(voxels * 4)} (float32) but only "
                          f"{human_bytes(free)} is free on its disk")


def restore_file(inp: Path, out: Path, *, method: str = "tv", psf: str = "gaussian:1.0", weight: float | None = None,
                 bregman: int | None = None, iterations: int | None = None, block: str | None = None,
                 halo: str | None = None, axes: str | None = None, model: str | None = None, workers: int | None = None,
                 cluster: str | None = None, resume: bool = True, progress: bool = True) -> dict:
    """Read ``inp``, restore it, write ``out`` (keeping axes and pixel size); returns a summary.

    With a block size (or an input too big for memory) the input is read block by block and a
    ``.zarr`` / ``.ome.zarr`` output is written block by block: memory stays bounded. Before any
    work the input passes the gate of :mod:`mire.io.gate` (dtype, declared size, metadata) and a
    run that cannot fit in memory is refused with the way to run it in blocks.
    """
    import math

    import numpy as np

    from mire.io import imwrite, read_image

    check_input_exists(inp)
    check_output(out, inputs=(inp,))
    loaded = read_image(inp, axes=axes, lazy=True)
    image = loaded.data
    if axes is None:  # the file's own axes: say so, rather than blame an --axes never given
        check_single_image(inp, "restore", axes=loaded.axes, shape=image.shape)
    ax = _spatial_axes(loaded.axes or axes, image.ndim)
    pixel_size = loaded.pixel_size  # dict of micrometres per spatial axis, or None
    block_shape = _parse_ints(block, "--block-size")
    if block_shape is None and math.prod(image.shape) > AUTO_BLOCK_VOXELS:
        block_shape = DEFAULT_BLOCK[-image.ndim:]
    if block_shape is not None and len(block_shape) == 1:
        block_shape = block_shape * image.ndim
    if block_shape is not None and len(block_shape) != image.ndim:
        raise ValueError(f"--block-size has {len(block_shape)} values but the image is {image.ndim}D")
    from mire._validate import check_dtype

    check_dtype(image.dtype, name=str(inp), allow_bool=False)
    _check_memory(inp, out, image.shape, blockwise=block_shape is not None or str(out).endswith(".zarr")
                  or cluster is not None)
    halo_t = _parse_ints(halo, "--halo", allow_zero=True)
    if model is None and method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    # anisotropic voxels: the TV term weighs differences by the physical spacing
    spacing = None
    if isinstance(pixel_size, dict) and all(a in pixel_size for a in ax):
        spacing = tuple(float(pixel_size[a]) for a in ax)
    zarr_out = str(out).endswith(".zarr")
    if block_shape is not None or zarr_out or cluster is not None:
        from mire.restore.chunked import restore_blockwise

        if block_shape is None:
            block_shape = DEFAULT_BLOCK[-image.ndim:]
        result = restore_blockwise(image, "model" if model is not None else method, psf=psf, weight=weight,
                                   bregman=bregman, n_iter=iterations, model=model, axes=ax, spacing=spacing,
                                   block_shape=block_shape, halo=halo_t, out=out if zarr_out else None,
                                   scheduler=cluster, workers=workers, progress=progress, resume=resume,
                                   pixel_size=pixel_size)
        used = f"{'model ' + str(model) if model is not None else method}, blocks {tuple(block_shape)}"
        if not zarr_out:
            imwrite(out, np.asarray(result, dtype=np.float32), axes=ax, pixel_size=pixel_size)
        return {"method": used, "shape": tuple(image.shape), "axes": ax}

    image = np.asarray(image)
    if model is not None:
        from mire.restore.learned import Restorer

        result = np.asarray(Restorer.load(model).predict(image, axes=ax))
        used = f"model {model}"
    else:
        from mire.optics.psf import parse_psf

        kernel = parse_psf(psf, ndim=image.ndim, image_shape=image.shape)
        if method == "tv":
            from mire.restore.tv import tv_deconvolve

            result, meta = tv_deconvolve(image, kernel, weight=weight, bregman=bregman, n_iter=iterations,
                                         spacing=spacing, progress=progress, return_info=True)
            k = meta["bregman"]
            used = f"TV deconvolution, weight {meta['weight']:.4g}" + (
                f", {k} Bregman refinement{'s' if k > 1 else ''}" if k else "")
        elif method == "rl":
            from mire.restore.richardson_lucy import richardson_lucy

            result, meta = richardson_lucy(image, kernel, n_iter=iterations or "auto", tv_weight=weight or 0.0,
                                           spacing=spacing, progress=progress, return_info=True)
            used = "Richardson-Lucy" + (f"-TV, weight {weight:g}" if weight else "") + (
                f", {meta['n_iter']} iterations" + ("" if iterations else " (hold-out stop)"))
        else:
            from mire.restore.wiener import wiener

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
        bregman: Optional[int] = typer.Option(None, "--bregman", help="TV: Bregman refinements, which restore the "
                                              "contrast of small structures (default: chosen with the weight for "
                                              "a near-delta PSF, else 0)"),
        iterations: Optional[int] = typer.Option(None, "--iterations", "-n", help="Iterations (tv, rl)"),
        block: Optional[str] = typer.Option(None, "--block-size", "--block",
                                            help="Process in blocks (bounded memory), e.g. 64,256,256; automatic "
                                                 "for inputs over 2^27 voxels and for .zarr outputs"),
        halo: Optional[str] = typer.Option(None, "--halo", help="Context voxels per block side, e.g. 8 or 4,16,16 "
                                           "(default: 4 PSF radii + 2; 16 for models)"),
        workers: Optional[int] = typer.Option(None, "--workers", help="Local worker threads (default: all cores)"),
        cluster: Optional[str] = typer.Option(None, "--cluster", help="dask.distributed scheduler address, e.g. "
                                              "tcp://10.0.0.1:8786 (workers must see the files)"),
        resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue an interrupted blockwise run"),
        axes: Optional[str] = typer.Option(None, "--axes", help="Axes of the input, e.g. ZYX"),
        model: Optional[str] = typer.Option(None, "--model", help="Trained restorer name or path (replaces --method)"),
    ):
        """Deconvolve an image (TV, Richardson-Lucy, Wiener) or restore it with a trained model."""
        with friendly_errors(data=inp):
            from mire._torch import default_device

            if bregman is not None and (method != "tv" or model is not None):
                raise ValueError("--bregman applies to --method tv only")
            summary = restore_file(inp, out, method=method, psf=psf, weight=weight, bregman=bregman,
                                   iterations=iterations,
                                   block=block, halo=halo, axes=axes, model=model, workers=workers,
                                   cluster=cluster, resume=resume)
            console.print(f"wrote {out} ({summary['method']}, shape {summary['shape']}, "
                          f"axes {summary['axes']}, on {default_device()})")
