"""Flood-filling a volume block by block, with one ID per object across blocks.

Each block is flood-filled on its haloed window (:meth:`mire.segment.FloodFiller.segment`, every
block normalized with the whole volume's intensity range, seeds from the window's boundary map),
and the blocks' objects are stitched as :func:`mire.segment.segment_blockwise` stitches its
``overlap`` mode: two blocks' pieces are one object when each covers more than ``match_overlap``
of the other on the planes around their shared face, on both sides of it; objects are numbered
1..N in block order. The passes are the same (:mod:`mire.segment.chunked`), so a run with a
path ``out`` resumes after a kill.

An object that fits inside a window is filled exactly as in a whole-volume run when the window
holds its seed, the voxels its FOVs cover, and the same competing objects; objects larger than
the halo are cut at the window's edge and joined again by the stitching.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import partial
from pathlib import Path

import numpy as np

__all__ = ["flood_fill_blockwise"]


def _ffn_block(piece, block, *, filler, lo, hi, params, boundary, faces, root):
    from mire.blockwise import read_window
    from mire.learn.normalize import normalize
    from mire.segment.chunked import record_block

    b = None if boundary is None else read_window(boundary, block.outer).astype(np.float32)
    local = filler.segment(normalize(np.asarray(piece), lo, hi), boundary=b, normalization=(0.0, 1.0), **params)
    return record_block(np.asarray(local), block, faces=faces, root=root)


def flood_fill_blockwise(filler, image, *, block_shape, halo=None, out=None, boundary=None, normalization=None,
                         match_overlap: float = 0.5, axes=None, pixel_size=None, scheduler=None, workers=None,
                         progress: bool = False, resume: bool = True, **inference):
    """:meth:`mire.segment.FloodFiller.segment` for volumes larger than memory.

    Parameters
    ----------
    filler : :class:`mire.segment.FloodFiller`
    image : (Z, Y, X) array-like
        Raw EM (numpy, zarr, dask, h5py), read one haloed block at a time.
    block_shape : int or tuple of int
    halo : int or tuple of int, optional
        Context on each side of a block; default the FOV (>= 2 wherever the volume is split).
    out : str, Path or zarr array, optional
        As in :func:`mire.segment.segment_blockwise` (a path run resumes when killed).
    boundary : array-like of ``image.shape``, optional
        Boundary map for the seeds (and gap filling), read per block; default each window's
        :func:`mire.segment.ffn.image_boundary`.
    normalization : (float, float), optional
        Intensities mapped to 0 and 1; default the model's percentiles of the whole volume.
    match_overlap : float
        See :func:`mire.segment.match_labels`.
    inference
        Overrides of the model's inference options.

    Returns
    -------
    uint32 labels (numpy, or the written zarr array).
    """
    import zarr

    from mire import blockwise
    from mire.blockwise._plan import check_block_shape
    from mire.learn.normalize import input_range
    from mire.segment.chunked import (_create_face_stores, _Faces, _final_ids, _match_block, _relabel_block,
                                      _save_tables, scratch_folder)

    if not (hasattr(image, "shape") and hasattr(image, "__getitem__")):
        image = np.asarray(image)
    shape = tuple(int(n) for n in image.shape)
    if len(shape) != filler.ndim:
        raise ValueError(f"image must be {filler.ndim}D for this FFN, got shape {shape}")
    if boundary is not None and tuple(boundary.shape) != shape:
        raise ValueError(f"boundary map shape {tuple(boundary.shape)} does not match image shape {shape}")
    params = filler._inference(inference)
    block, h = check_block_shape(len(shape), block_shape,
                                   filler.model.config["fov"] if halo is None else halo)
    faces = _Faces(shape, block, h)
    thin = [d for d in faces.axes() if h[d] < 2]
    if thin:
        raise ValueError(f"halo {h} is too small along axis {thin[0]}: stitching needs >= 2 voxels")
    if isinstance(out, (str, os.PathLike)) and Path(out).exists():
        raise FileExistsError(f"output {out} exists; remove it or choose another name")
    lo, hi = input_range(image, normalization=normalization,
                         percentiles=filler.metadata["normalization"]["percentiles"])
    digest = hashlib.sha1(b"".join(t.detach().cpu().numpy().tobytes()
                                   for t in filler.model.state_dict().values())).hexdigest()
    fingerprint = dict(shape=list(shape), block=list(block), halo=list(h), lo=float(lo), hi=float(hi),
                       weights=digest, delta=list(filler.delta), overlap=float(match_overlap),
                       boundary=boundary is not None, **{k: v for k, v in params.items()})
    token = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    with scratch_folder(out, fingerprint, resume=resume, suffix="ffn") as root, \
            blockwise.resolve_scheduler(scheduler, workers=workers) as (_, sched):
        run = dict(scheduler=sched, workers=workers, progress=progress)
        _create_face_stores(root, faces)
        scratch = root / "labels.zarr"
        if scratch.exists():
            labels = zarr.open_array(str(scratch), mode="r")
        else:
            fill = partial(_ffn_block, filler=filler, lo=float(lo), hi=float(hi), params=params, boundary=boundary,
                           faces=faces, root=str(root))
            labels = blockwise.map_blocks(fill, image, block_shape=block, halo=h, out=str(scratch), dtype=np.uint64,
                                          pass_block=True, resume=resume, token=token, **run)
        results = blockwise.for_blocks(partial(_match_block, faces=faces, root=str(root), overlap=match_overlap),
                                       [labels], block_shape=block, halo=faces.width, **run)
        core, final = _final_ids(results)
        n_objects = int(final.max()) if final.size else 0
        dtype = np.uint32 if n_objects < 2**32 else np.uint64
        tables = root / "relabel"
        _save_tables(core, final.astype(np.uint64), tables)
        kw = {k: v for k, v in dict(axes=axes, pixel_size=pixel_size).items() if v is not None}
        target = str(out) if isinstance(out, os.PathLike) else out
        return blockwise.map_blocks(partial(_relabel_block, tables=str(tables), dtype=dtype), labels,
                                    block_shape=block, halo=0, out=target, dtype=dtype, pass_block=True,
                                    resume=resume, downscale="nearest", token=token, **kw, **run)
