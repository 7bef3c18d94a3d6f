"""``map_blocks``: run an array -> array function over blocks with halos, one dask task per block."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np


def _check_shapes(ndim, block_shape, halo):
    block = tuple(int(b) for b in np.broadcast_to(np.asarray(block_shape), (ndim,)))
    h = tuple(int(v) for v in np.broadcast_to(np.asarray(0 if halo is None else halo), (ndim,)))
    if any(b < 1 for b in block):
        raise ValueError(f"block_shape must be positive, got {block}")
    if any(v < 0 for v in h):
        raise ValueError(f"halo must be >= 0, got {h}")
    return block, h


def _open_output(out, shape, chunks, dtype):
    """A zarr array to write into: an existing array, or a new one at a path (``.zarr``)."""
    import zarr

    if hasattr(out, "shape") and hasattr(out, "__setitem__"):
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"out has shape {tuple(out.shape)} but the result has shape {tuple(shape)}")
        return out, None
    path = Path(out)
    if path.exists():
        raise FileExistsError(f"output {path} exists; remove it or pass an opened zarr array")
    # write to a temporary sibling, rename at the end: no half-written output under the final name
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent or "."))
    os.rmdir(tmp)
    arr = zarr.create_array(store=str(tmp), shape=shape, chunks=chunks, dtype=dtype)
    return arr, (tmp, path)


def map_blocks(func, image, *, block_shape, halo=0, out=None, dtype=None, scheduler=None,
               progress: bool = False):
    """Apply ``func`` to ``image`` block by block, each block seen with a ``halo`` of context.

    Parameters
    ----------
    func : callable
        ``ndarray -> ndarray`` of the same shape (e.g. a deconvolution with its options bound).
    image : ndarray, zarr array or dask array
        Input; zarr and dask inputs are read block by block (never loaded whole).
    block_shape : int or tuple of int
        Core block shape (the part of each output block that is kept).
    halo : int or tuple of int
        Context voxels on each side of a block, cut off after ``func``. Volume borders get no
        padding: border blocks see what a whole-volume run sees.
    out : str, Path or zarr array, optional
        Where to write: a zarr array (written block by block) or a new ``.zarr`` path (written
        to a temporary name, renamed when complete). ``None`` returns a numpy array.
    dtype : numpy dtype, optional
        Output dtype (default: the input's float dtype, float32 for integers).
    scheduler : str or dask.distributed.Client, optional
        Default: a ``dask.distributed`` client if one is active, else the local threaded scheduler.
    progress : bool
        Show a progress bar (dask's diagnostics).

    Returns
    -------
    ndarray or zarr array
        The result (numpy when ``out`` is None, else the written zarr array).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from mire.blockwise import map_blocks
    >>> vol = np.random.default_rng(0).random((40, 40, 40))
    >>> f = lambda b: ndimage.uniform_filter(b, 3, mode="constant")
    >>> res = map_blocks(f, vol, block_shape=(20, 20, 20), halo=1)
    >>> bool(np.allclose(res, f(vol)))
    True
    """
    import itertools

    import dask

    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    src = image
    if not (hasattr(src, "shape") and hasattr(src, "dtype") and hasattr(src, "__getitem__")):
        src = np.asarray(src)
    shape = tuple(int(n) for n in src.shape)
    if len(shape) == 0 or min(shape) == 0:
        raise ValueError(f"image is empty (shape {shape})")
    block, h = _check_shapes(len(shape), block_shape, halo)
    if dtype is None:
        dtype = src.dtype if np.issubdtype(src.dtype, np.floating) else np.float32
    dtype = np.dtype(dtype)

    # One task per block that reads its haloed window straight from the source, runs func and
    # writes the core: memory is bounded by (workers x one haloed block) whatever the volume size,
    # which dask.array.map_overlap does not guarantee (it may hold many neighbour chunks at once).
    def run(corner):
        core = tuple(slice(c, min(c + b, n)) for c, b, n in zip(corner, block, shape))
        outer = tuple(slice(max(s.start - hh, 0), min(s.stop + hh, n)) for s, hh, n in zip(core, h, shape))
        piece = np.asarray(src[outer])
        if hasattr(piece, "compute"):
            piece = piece.compute()
        res = np.asarray(func(piece))
        if res.shape != piece.shape:
            raise ValueError(f"func changed the block shape from {piece.shape} to {res.shape}")
        inner = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(core, outer))
        return core, res[inner].astype(dtype, copy=False)

    corners = list(itertools.product(*[range(0, n, b) for n, b in zip(shape, block)]))

    if scheduler is None:
        try:
            from distributed import get_client

            scheduler = get_client()
        except (ImportError, ValueError):
            scheduler = "threads"
    distributed = not isinstance(scheduler, str)

    rename = None
    if out is None:
        target = np.empty(shape, dtype)
    else:
        target, rename = _open_output(out, shape, block, dtype)

    def write(corner):
        core, res = run(corner)
        target[core] = res  # threads share the output array; zarr writes whole chunks when aligned
        return None

    try:
        if distributed:
            # workers cannot write into this process's memory: results come back block by block
            futures = scheduler.map(run, corners)
            for fut in futures:
                core, res = fut.result()
                target[core] = res
                fut.release()
        else:
            tasks = [dask.delayed(write)(c) for c in corners]
            bar = contextlib.nullcontext()
            if progress:
                from dask.diagnostics import ProgressBar

                bar = ProgressBar()
            with bar:
                dask.compute(*tasks, scheduler=scheduler)
    except BaseException:
        if rename is not None:
            import shutil

            shutil.rmtree(rename[0], ignore_errors=True)
        raise
    if rename is not None:
        import zarr

        os.replace(rename[0], rename[1])
        target = zarr.open_array(str(rename[1]), mode="r")
    return target
