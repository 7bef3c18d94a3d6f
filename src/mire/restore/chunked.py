"""Restoration of volumes larger than memory: any restore method, block by block, through mire.blockwise.

What must be the same in every block is fixed once for the whole volume before the blocks run:
the intensity scale and the TV weight (chosen on a central crop), the Wiener balance, the
network's input normalization. Each block then sees its core plus a halo of context that is cut
off again, so the result matches a whole-volume run within the tolerances stated in
:mod:`mire.blockwise` (exact for linear filters once the halo covers the kernel; decaying with
the halo for iterative deconvolutions and networks).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

METHODS = ("tv", "rl", "wiener", "model")


def _global_max_abs(image, *, block_shape, scheduler, workers) -> float:
    from mire.blockwise import for_blocks

    if isinstance(image, np.ndarray):
        return float(np.max(np.abs(image)))
    parts = for_blocks(lambda p, b: float(np.max(np.abs(p[b.inner]))), [image], block_shape=block_shape,
                       scheduler=scheduler, workers=workers)
    return max(parts)


def central_crop(image, size) -> np.ndarray:
    """The central ``size`` window of ``image`` (clipped to its shape), read into memory."""
    from mire.blockwise import read_window

    sl = tuple(slice(max((n - s) // 2, 0), max((n - s) // 2, 0) + min(s, n)) for n, s in zip(image.shape, size))
    return read_window(image, sl).astype(np.float64)


def restore_blockwise(image, method: str = "tv", *, psf=None, weight=None, bregman=None, n_iter=None, model=None,
                      axes: str | None = None, spacing=None, block_shape, halo=None, out=None, scheduler=None,
                      workers: int | None = None, progress: bool = False, resume: bool = True, pixel_size=None,
                      crop_shape=(32, 256, 256)):
    """Restore a 2D/3D volume block by block (bounded memory, optionally on a dask cluster).

    Parameters
    ----------
    image : ndarray, zarr, h5py or dask array
        The volume; read block by block.
    method : {"tv", "rl", "wiener", "model"}
        TV deconvolution, Richardson-Lucy, Wiener, or a trained :class:`mire.restore.Restorer`.
    psf : array_like or str
        PSF or spec (``"gaussian:1.0"``, a file); not used by ``"model"``.
    weight : float, optional
        TV weight (chosen once on a central crop of ``crop_shape`` when None), RL-TV weight for
        ``"rl"``, balance for ``"wiener"`` (chosen on the crop by GCV when None).
    bregman : int, optional
        TV only: Bregman refinements (see :func:`mire.restore.tv_deconvolve`); by default chosen on
        the crop with the weight when both are automatic, else 0.
    n_iter : int, optional
        Iterations (``"tv"``, ``"rl"``; default 100 and 30).
    model : str, Path or Restorer
        For ``method="model"``: a shipped name, a saved model path or a loaded Restorer.
    axes : str, optional
        Spatial axes of ``image`` (``"ZYX"``/``"YX"``; default from its dimension); also the
        OME-Zarr axes of a path output.
    spacing : sequence of float, optional
        Voxel size per axis for the TV term.
    block_shape : int or tuple of int
        Core block shape (also the output chunks).
    halo : int or tuple of int, optional
        Context per side. Default: 4 PSF radii + 2 (deconvolutions), 16 voxels per axis (models).
    out, scheduler, workers, progress, resume, pixel_size
        As for :func:`mire.blockwise.map_blocks` (``out`` a ``.zarr``/``.ome.zarr`` path or a
        zarr array; ``None`` returns numpy).
    crop_shape : tuple of int
        Central crop on which the global parameters (TV weight, Wiener balance) are chosen.

    Returns
    -------
    ndarray or zarr array
        float32 restoration on the input's intensity scale.

    Examples
    --------
    >>> from mire.data import neurites
    >>> from mire.optics import simulate
    >>> y = simulate(neurites((16, 64, 64), seed=0), condition="N2-B2", seed=0)
    >>> x = restore_blockwise(y, "rl", psf="gaussian:0.8", n_iter=10, block_shape=(16, 32, 32))
    >>> x.shape, x.dtype.name
    ((16, 64, 64), 'float32')
    """
    from mire.blockwise import map_blocks

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (hasattr(image, "shape") and hasattr(image, "__getitem__")):
        image = np.asarray(image)
    ndim = len(image.shape)
    if ndim not in (2, 3):
        raise ValueError(f"restore_blockwise works on one 2D or 3D image, got shape {tuple(image.shape)}")
    if axes is None:
        axes = "ZYX"[-ndim:]
    if len(axes) != ndim:
        raise ValueError(f"axes {axes!r} do not match the {ndim}D image")
    block = tuple(int(b) for b in np.broadcast_to(np.asarray(block_shape), (ndim,)))
    crop = central_crop(image, tuple(crop_shape)[-ndim:])
    if not np.isfinite(crop).all():
        from mire._validate import DataError

        raise DataError("image contains NaN or infinite values (found in its central crop)")
    settings = {"method": method, "weight": weight, "n_iter": n_iter}

    if method == "model":
        func, default_halo, settings = _model_block(model, image, axes, settings)
    else:
        from mire.optics.psf import parse_psf

        if psf is None:
            raise ValueError(f"method {method!r} needs a psf (e.g. 'gaussian:1.0' or a PSF file)")
        kernel = parse_psf(psf, ndim=ndim, image_shape=tuple(image.shape[-ndim:]))
        default_halo = tuple(4 * (k // 2) + 2 for k in kernel.shape)
        settings["psf"] = hashlib.sha1(np.ascontiguousarray(kernel, dtype=np.float64).tobytes()).hexdigest()
        if method == "tv":
            from mire.restore.tv import tv_deconvolve

            scale = _global_max_abs(image, block_shape=block, scheduler=scheduler, workers=workers) or 1.0
            if weight is None:  # one weight (and Bregman count) for every block: chosen where the volume has content
                _, info = tv_deconvolve(crop, kernel, bregman=bregman, spacing=spacing, return_info=True, n_iter=n_iter,
                                        _scale=scale)
                weight, bregman = info["weight"], info["bregman"]
            bregman = int(bregman or 0)
            settings.update(weight=float(weight), scale=scale, bregman=bregman)

            def func(piece, w=float(weight), s=scale, k=bregman):
                return tv_deconvolve(piece, kernel, weight=w, bregman=k, n_iter=n_iter, spacing=spacing, _scale=s)
        elif method == "rl":
            from mire.restore.richardson_lucy import richardson_lucy

            # one noise model and iteration count for every block, chosen on the crop (as TV's weight)
            # in the blocks' precision (crops are read as float64), so the crop's Biggs factors are theirs
            dtype_blocks = np.float64 if np.dtype(image.dtype) == np.float64 else np.float32
            _, info = richardson_lucy(crop.astype(dtype_blocks), kernel, n_iter=n_iter or "auto",
                                      tv_weight=weight or 0.0, spacing=spacing, return_info=True)
            model = {k: float(info[k]) for k in ("background", "shift", "gain")}
            # every block starts from the crop's level: with read noise in the model (a shift), RL's
            # result depends on its constant start, and per-block starts would show as seams
            model["start"] = float(np.mean(np.clip(np.asarray(crop, dtype=np.float64) - model["background"]
                                                   + model["shift"], 0, None))) - model["shift"]
            n_rl = int(n_iter or max(info["n_iter"], 1))
            factors = info["acceleration_factors"]  # the crop's Biggs steps, replayed by every block
            settings.update(n_iter=n_rl, factors=factors, **model)

            def func(piece):
                return richardson_lucy(piece, kernel, n_iter=n_rl, tv_weight=weight or 0.0, spacing=spacing,
                                       noise_model=model, acceleration_factors=factors)
        else:
            from mire.restore.wiener import wiener

            if weight is None:  # GCV on the crop, then the same constant balance everywhere (the in-memory
                # default's per-frequency balance lives on one image's grid, so it does not carry to blocks)
                weight = wiener(crop, kernel, balance="gcv", return_balance=True)[1]
            settings["weight"] = float(weight)

            def func(piece, b=float(weight)):
                return wiener(piece, kernel, balance=b)

    token = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return map_blocks(func, image, block_shape=block, halo=default_halo if halo is None else halo, out=out,
                      dtype=np.float32, scheduler=scheduler, workers=workers, progress=progress, resume=resume,
                      axes=axes, pixel_size=pixel_size, token=token)


def _model_block(model, image, axes, settings):
    from mire.learn import percentile_range
    from mire.restore.learned import Restorer

    restorer = model if isinstance(model, Restorer) else Restorer.load(model)
    if len(restorer.axes) > len(axes):
        raise ValueError(f"the model restores {restorer.axes} images but the input has axes {axes!r}")
    # one normalization for the whole volume, from a strided subsample (never the whole volume)
    lo, hi = percentile_range(image, percentiles=restorer.metadata["normalization"]["percentiles"])
    settings.update(model=str(model) if not isinstance(model, Restorer) else "restorer", lo=lo, hi=hi)

    def func(piece):
        return restorer.predict(piece, axes=axes, normalization=(lo, hi))

    return func, (16,) * len(axes), settings
