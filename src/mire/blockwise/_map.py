"""``map_blocks`` / ``for_blocks``: one dask task per block, reading its haloed window from the source."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from mire.blockwise._plan import Block, check_block_shape, plan_blocks, read_window
from mire.blockwise._schedule import check_workers, resolve_scheduler, run_tasks


def _as_source(array):
    if not (hasattr(array, "shape") and hasattr(array, "dtype") and hasattr(array, "__getitem__")):
        array = np.asarray(array)
    return array


def for_blocks(func, arrays, *, block_shape, halo=0, scheduler=None, workers: int | None = None,
               progress: bool = False) -> list:
    """Call ``func(*pieces, block)`` on every block of some same-shaped arrays; return the results.

    Use it for reductions over volumes larger than memory (sums, histograms, contingency
    tables): each task reads only its block (plus ``halo``) of each array, and only the small
    per-block results are kept.

    Parameters
    ----------
    func : callable
        ``func(*pieces, block)`` with ``pieces`` the numpy windows ``array[block.outer]`` and
        ``block`` a :class:`Block` (``piece[block.inner]`` is the block's own part).
    arrays : sequence of array-likes
        numpy, zarr, h5py or dask arrays of one shape.
    block_shape, halo : int or tuple of int
        Block grid and context voxels on each side (clipped at the border, no padding).
    scheduler, workers, progress
        As for :func:`map_blocks`.

    Returns
    -------
    list
        ``func``'s results in block order (C order over the block grid).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(100.0).reshape(10, 10)
    >>> sums = for_blocks(lambda p, b: p[b.inner].sum(), [a], block_shape=(4, 4))
    >>> bool(float(sum(sums)) == a.sum())
    True
    """
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    srcs = [_as_source(a) for a in arrays]
    if not srcs:
        raise ValueError("for_blocks needs at least one array")
    shape = tuple(srcs[0].shape)
    for a in srcs[1:]:
        if tuple(a.shape) != shape:
            raise ValueError(f"arrays must have one shape, got {shape} and {tuple(a.shape)}")
    blocks = plan_blocks(shape, block_shape, halo)

    def task(block):
        return func(*[read_window(a, block.outer) for a in srcs], block)

    return run_tasks(task, blocks, scheduler=scheduler, workers=workers, progress=progress)


class _Run:
    """A path output under construction: ``.<name>.mire-run/`` beside the target.

    It holds the zarr being written (``data``), ``run.json`` (what is being computed) and
    ``done/<index>`` markers, one per finished block, so a killed run resumes where it stopped.
    The complete result is renamed onto the target, then the folder is removed.
    """

    def __init__(self, target: Path):
        self.target = target
        self.dir = target.parent / f".{target.name}.mire-run"
        self.data = self.dir / ("data.ome.zarr" if target.name.endswith(".ome.zarr") else "data.zarr")
        self.done = self.dir / "done"

    def start(self, spec: dict, *, resume: bool) -> set:
        """Create (or reopen) the run; return the indices of the blocks already done."""
        if self.target.exists():
            raise FileExistsError(f"output {self.target} exists; remove it or choose another name")
        if not self.target.parent.is_dir():
            raise FileNotFoundError(f"cannot write {self.target}: folder {self.target.parent} does not exist")
        spec_file = self.dir / "run.json"
        if self.dir.exists():
            old = json.loads(spec_file.read_text()) if spec_file.exists() else None
            if resume and old == spec and self.data.exists():
                return {int(p.name) for p in self.done.iterdir()}
            if resume and old is not None and old != spec:
                raise ValueError(
                    f"an unfinished run for {self.target} with different settings is in {self.dir} "
                    f"(was {old}, now {spec}); remove that folder or pass resume=False to start over")
            shutil.rmtree(self.dir)
        self.done.mkdir(parents=True)
        spec_file.write_text(json.dumps(spec))
        return set()

    def mark_done(self, index: int) -> None:
        (self.done / str(index)).touch()

    def finish(self) -> None:
        os.replace(self.data, self.target)
        shutil.rmtree(self.dir, ignore_errors=True)


def _spec(shape, dtype, block, halo, token, axes, downscale):
    return {"shape": list(shape), "dtype": np.dtype(dtype).str, "block_shape": list(block), "halo": list(halo),
            "token": token, "axes": axes, "downscale": downscale}


def map_blocks(func, image, *, block_shape, halo=0, out=None, dtype=None, scheduler=None,
               workers: int | None = None, progress: bool = False, resume: bool = True,
               pass_block: bool = False, axes: str | None = None, pixel_size=None, downscale: str = "mean",
               token: str | None = None, channels: int | None = None):
    """Apply ``func`` to ``image`` block by block, each block seen with a ``halo`` of context.

    Parameters
    ----------
    func : callable
        ``ndarray -> ndarray`` of the same shape (e.g. a deconvolution with its options bound);
        ``func(piece, block)`` when ``pass_block`` is true (``block`` is a :class:`Block`).
    image : ndarray, zarr, h5py or dask array
        Input; array-likes are read block by block (never loaded whole).
    block_shape : int or tuple of int
        Core block shape (the part of each output block that is kept); also the output chunks.
    halo : int or tuple of int
        Context voxels on each side of a block, cut off after ``func``. Volume borders get no
        padding: border blocks see what a whole-volume run sees.
    out : str, Path or zarr array, optional
        Where to write. ``None`` returns a numpy array. A zarr array is written block by
        block. A path ending in ``.zarr`` gets a zarr array, one ending in ``.ome.zarr`` an
        OME-Zarr image with a multiscale pyramid (napari and neuroglancer open it). Path
        outputs are built in ``.<name>.mire-run/`` beside the target and renamed onto it when
        complete, so a failure never leaves a half-written output under the final name.
    dtype : numpy dtype, optional
        Output dtype (default: the input's float dtype, float32 for integers).
    scheduler : str, address or dask.distributed.Client, optional
        ``None``: the active ``dask.distributed`` client if any, else the local threaded
        scheduler. Also ``"threads"``, ``"processes"``, ``"synchronous"``, a ``Client`` or a
        scheduler address (``"tcp://host:8786"``). With a client and a path output the workers
        write their blocks straight into the zarr store (it must be on a shared filesystem).
    workers : int, optional
        Number of local workers (threads or processes); a cluster has its own.
    progress : bool
        Show a progress bar.
    resume : bool
        Path outputs: continue an unfinished run of the same computation (same shape, dtype,
        blocks, halo, ``token``) from the blocks it recorded as done. The result is identical
        to an uninterrupted run as long as ``func`` is deterministic. ``False`` starts over.
    pass_block : bool
        Call ``func(piece, block)`` (for block-dependent work such as unique label offsets).
    axes, pixel_size, downscale
        OME-Zarr outputs: axes in NGFF order (e.g. ``"ZYX"``; needed beyond 2D), pixel size
        in micrometres per axis, and the pyramid's downsampling (``"mean"``; ``"nearest"`` for
        labels).
    token : str, optional
        Identifies the computation for ``resume`` (e.g. a hash of ``func``'s options): a
        leftover run with another token is not resumed.
    channels : int, optional
        ``func`` returns ``(channels, *piece.shape)`` (e.g. a network's affinities): the
        result is ``(channels, *image.shape)``, channels first, blocked like the image (one
        chunk spans all channels). OME-Zarr outputs then need axes starting with ``"C"``.

    Returns
    -------
    ndarray or zarr array
        The result (numpy when ``out`` is None, else the written zarr array, level 0 for
        OME-Zarr).

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
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    check_workers(workers)  # before the run folder exists: a refused run leaves nothing behind
    src = _as_source(image)
    shape = tuple(int(n) for n in src.shape)
    if len(shape) == 0 or min(shape) == 0:
        raise ValueError(f"image is empty (shape {shape})")
    block, halo_t = check_block_shape(len(shape), block_shape, halo)
    blocks = plan_blocks(shape, block, halo_t)
    if dtype is None:
        dtype = src.dtype if np.issubdtype(src.dtype, np.floating) else np.float32
    dtype = np.dtype(dtype)
    chunks = tuple(min(b, n) for b, n in zip(block, shape))
    lead = ()
    if channels is not None:
        if int(channels) < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        lead = (int(channels),)
    out_shape, chunks = lead + shape, lead + chunks
    every = (slice(None),) * len(lead)  # the channel axis, kept whole

    def compute(blk: Block) -> np.ndarray:
        piece = read_window(src, blk.outer)
        res = np.asarray(func(piece, blk) if pass_block else func(piece))
        if res.shape != lead + piece.shape:
            raise ValueError(f"func returned shape {res.shape} for a block of shape {piece.shape}; expected "
                             f"{lead + piece.shape}")
        return res[every + blk.inner].astype(dtype, copy=False)

    if out is None:
        target = np.empty(out_shape, dtype)

        def to_memory(blk):
            res = compute(blk)
            target[every + blk.core] = res  # threads share the array
            return None

        def to_driver(blk):  # processes and cluster workers cannot write into this process's memory
            return compute(blk)

        with resolve_scheduler(scheduler, workers=workers) as (kind, sched):
            if kind == "local" and sched != "processes":
                run_tasks(to_memory, blocks, scheduler=sched, workers=workers, progress=progress)
            else:
                for blk, res in zip(blocks, run_tasks(to_driver, blocks, scheduler=sched, workers=workers,
                                                      progress=progress)):
                    target[every + blk.core] = res
        return target

    if hasattr(out, "shape") and hasattr(out, "__setitem__"):
        if tuple(out.shape) != out_shape:
            raise ValueError(f"out has shape {tuple(out.shape)} but the result has shape {out_shape}")

        def to_array(blk):
            out[every + blk.core] = compute(blk)
            return None

        run_tasks(to_array, blocks, scheduler=scheduler, workers=workers, progress=progress)
        return out

    return _map_to_path(compute, blocks, Path(out), shape=out_shape, chunks=chunks, dtype=dtype, block=block,
                        halo=halo_t, scheduler=scheduler, workers=workers, progress=progress, resume=resume,
                        axes=axes, pixel_size=pixel_size, downscale=downscale, token=token, every=every)


def _map_to_path(compute, blocks, path: Path, *, shape, chunks, dtype, block, halo, scheduler, workers, progress,
                 resume, axes, pixel_size, downscale, token, every=()):
    import zarr

    ome = path.name.endswith(".ome.zarr")
    if ome:
        from mire.io.tiff import CANONICAL

        if axes is None:
            if len(shape) != 2:
                raise ValueError(f"{path}: an OME-Zarr output needs axes for {len(shape)}D data (e.g. axes='ZYX')")
            axes = "YX"
        order = [axes.index(a) for a in CANONICAL if a in axes]
        if len(axes) != len(shape) or order != list(range(len(axes))):
            raise ValueError(f"{path}: OME-Zarr axes must be {len(shape)} letters in TCZYX order, got {axes!r}")
    elif not path.name.endswith(".zarr"):
        raise ValueError(f"blockwise outputs are zarr: give a path ending in .zarr or .ome.zarr, got {path.name!r}")

    run = _Run(path)
    done = run.start(_spec(shape, dtype, block, halo, token, axes if ome else None, downscale if ome else None),
                     resume=resume)
    if not done:  # a new run, or one killed before its first block: (re)create the empty output
        if ome:
            group = zarr.open_group(str(run.data), mode="w")
            group.create_array("0", shape=shape, chunks=chunks, dtype=dtype)
        else:
            zarr.create_array(store=str(run.data), shape=shape, chunks=chunks, dtype=dtype, overwrite=True)
    store = str(run.data / "0") if ome else str(run.data)
    todo = [b for b in blocks if b.index not in done]

    def write(blk):
        # opened inside the task: the same code runs in threads, processes and cluster workers
        zarr.open_array(store, mode="r+")[every + blk.core] = compute(blk)
        run.mark_done(blk.index)
        return None

    run_tasks(write, todo, scheduler=scheduler, workers=workers, progress=progress)
    if ome:
        from mire.io.omezarr import write_pyramid_levels

        sched = scheduler if scheduler in ("threads", "synchronous", "processes") else "threads"
        write_pyramid_levels(zarr.open_group(str(run.data), mode="r+"), axes, pixel_size=pixel_size,
                             downscale=downscale, scheduler=sched)
    run.finish()
    return zarr.open_array(str(path / "0") if ome else str(path), mode="r")
