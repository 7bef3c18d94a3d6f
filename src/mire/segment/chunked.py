"""Blockwise segmentation of volumes larger than memory, with one label per object across blocks.

The pipeline of :func:`mire.segment.segment_boundaries` (seeded watershed, agglomeration, cleanup)
in passes of one dask task per block (:mod:`mire.blockwise`), so memory stays at (workers x one
haloed block) plus tables with one entry per fragment (and, for ``stitch="graph"``, per edge):

0. **scale**: the largest distance to a membrane over the volume, which the watershed's height map
   is normalized by. A block normalizing by its own window's maximum would cut different
   fragments from the whole-volume run everywhere, not just near its faces.
1. **segment**: each block runs the watershed (``graph``) or the watershed and the agglomeration
   (``overlap``) on its haloed window; its labels are made unique by putting the block index in
   the high 32 bits of a uint64, and the core is written to a scratch zarr. The block also records
   its labels on ``w = halo // 2`` planes beyond each face it shares with a neighbour.
2. **stitch**: on the ``w`` planes on each side of a face both blocks have labels. Two pieces are
   one when each holds more than ``match_overlap`` (one half) of the other's voxels on *both*
   sides (a block is trusted most in its own core, so a piece one block got wrong just beyond it
   cannot join two objects); with one half the matching is one-to-one. ``graph`` then sums the
   blocks' region-graph statistics (contact counts, score sums, histograms: all additive) over
   the matched fragments and agglomerates that one graph, with the same greedy merging and
   scoring as :func:`mire.segment.agglomerate`, so every merge decision sees the whole volume's
   evidence. ``overlap`` takes the connected components of the matches.
3. **relabel**: objects are numbered 1..N in block order and a second blockwise pass rewrites the
   scratch labels into ``out``, each block reading only its own ID table from the scratch folder.

``experiments/segment_blockwise.py`` measures how far the result is from a whole-volume run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np

__all__ = ["segment_blockwise", "match_labels", "face_splits"]

_LOCAL_BITS = 32


def match_labels(a, b, *, overlap: float = 0.5) -> np.ndarray:
    """Pairs of labels of two segmentations of one region that name the same object.

    ``(i, j)`` is returned when label ``i`` of ``a`` and label ``j`` of ``b`` share more than
    ``overlap`` of the voxels of ``i`` *and* more than ``overlap`` of the voxels of ``j``. With
    ``overlap >= 0.5`` a label has at most one partner. Label 0 (background) is never matched.

    Parameters
    ----------
    a, b : int arrays of one shape
        Two labelings of the same voxels (e.g. two blocks' labels on the planes around their face).
    overlap : float in [0, 1)
        Fraction of each label's voxels that the other must cover.

    Returns
    -------
    (M, 2) uint64 array of ``(label in a, label in b)``, sorted.

    Examples
    --------
    >>> a = np.array([[1, 1, 1, 2, 2, 2]])
    >>> b = np.array([[7, 7, 7, 7, 9, 9]])
    >>> match_labels(a, b).tolist()       # 2 -> 9 covers 2/3 of label 2 and all of 9
    [[1, 7], [2, 9]]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in shape: {a.shape} and {b.shape}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    a = a.ravel().astype(np.uint64)
    b = b.ravel().astype(np.uint64)
    keep = (a != 0) & (b != 0)
    a, b = a[keep], b[keep]
    if a.size == 0:
        return np.zeros((0, 2), np.uint64)
    ua, ia, na = np.unique(a, return_inverse=True, return_counts=True)
    ub, ib, nb = np.unique(b, return_inverse=True, return_counts=True)
    # pair keys over the dense indices: no overflow whatever the label values
    pairs, count = np.unique(ia.astype(np.int64) * len(ub) + ib, return_counts=True)
    pa, pb = pairs // len(ub), pairs % len(ub)
    ok = (count > overlap * na[pa]) & (count > overlap * nb[pb])
    return np.stack([ua[pa[ok]], ub[pb[ok]]], axis=1)


# --------------------------------------------------------------------------- geometry of the faces
class _Faces:
    """Where the stitching slabs of each face live (pure arithmetic on the block grid).

    The face between the blocks at grid positions ``k`` and ``k + 1`` along ``axis`` is face ``k``
    of that axis; its slab is ``width`` planes on each side, limited by both blocks' core sizes.
    The side store of ``(axis, side)`` holds, for every face ``k``, ``width[axis]`` rows starting
    at ``k * width[axis]``: the lower block writes its labels beyond the face ("plus"), the upper
    block its labels before it ("minus"). Its chunks are one block's face, so no two tasks ever
    write one chunk.
    """

    def __init__(self, shape, block, halo):
        self.shape, self.block = tuple(shape), tuple(block)
        self.grid = tuple(-(-n // b) for n, b in zip(shape, block))
        self.width = tuple(max(1, h // 2) if h > 0 else 0 for h in halo)

    def axes(self):
        return [d for d in range(len(self.shape)) if self.grid[d] > 1]

    def store_shape(self, axis):
        shape = list(self.shape)
        shape[axis] = (self.grid[axis] - 1) * self.width[axis]
        return tuple(shape)

    def store_chunks(self, axis):
        chunks = list(self.block)
        chunks[axis] = self.width[axis]
        return tuple(chunks)

    def slab_width(self, axis, k):
        """Planes of the slab on each side of face ``k`` of ``axis``."""
        upper = min(self.block[axis], self.shape[axis] - (k + 1) * self.block[axis])
        return min(self.width[axis], self.block[axis], upper)


def face_splits(whole, seg, block_shape) -> list[tuple[int, int, int]]:
    """Whole-volume segments on both sides of a block face whose blockwise majority ID changes there.

    How a blockwise segmentation ``seg`` (blocks of ``block_shape``) cuts objects of the whole-volume
    one ``whole``: each ``(axis, position, whole_id)`` is an object whose most frequent ``seg`` label
    differs on the two planes of a face.

    Examples
    --------
    >>> whole = np.ones((1, 4), int)
    >>> face_splits(whole, np.array([[1, 1, 2, 2]]), (1, 2))
    [(1, 2, 1)]
    """
    whole, seg = np.asarray(whole), np.asarray(seg)
    block = tuple(int(b) for b in np.broadcast_to(np.asarray(block_shape), (whole.ndim,)))
    splits = []
    for d in range(whole.ndim):
        for p in range(block[d], whole.shape[d], block[d]):
            lo, hi = np.take(whole, p - 1, axis=d).ravel(), np.take(whole, p, axis=d).ravel()
            slo, shi = np.take(seg, p - 1, axis=d).ravel(), np.take(seg, p, axis=d).ravel()
            for w in np.intersect1d(lo, hi):
                a, ca = np.unique(slo[lo == w], return_counts=True)
                b, cb = np.unique(shi[hi == w], return_counts=True)
                if a[ca.argmax()] != b[cb.argmax()]:
                    splits.append((d, p, int(w)))
    return splits


def _store_path(root, axis, side):
    return str(Path(root) / f"face{axis}{side}.zarr")


def _create_face_stores(root, faces) -> None:
    """The zarr arrays that hold each block's face labels, created once (a resumed run keeps them)."""
    import zarr

    for d in faces.axes():
        for side in ("plus", "minus"):
            if not Path(_store_path(root, d, side)).exists():
                zarr.create_array(store=_store_path(root, d, side), shape=faces.store_shape(d),
                                  chunks=faces.store_chunks(d), dtype=np.uint64, fill_value=0)


# --------------------------------------------------------------------------- per-block work
def _distance_max(piece, block, *, params):
    """Pass 0: the largest (smoothed) distance to a membrane in the block's core.

    The whole-volume watershed normalizes its distance term by the volume's maximum; each block
    must use that same number, not its own window's, or its fragments differ from a whole-volume
    run everywhere (not just near the faces). ``per_slice``: one maximum per z-slice.
    """
    from mire.segment.watershed import max_distance

    kw = dict(threshold=params["seed_threshold"], sigma=params["sigma"])
    if params["per_slice"]:
        sampling = None if params["sampling"] is None else params["sampling"][1:]
        z = range(block.inner[0].start, block.inner[0].stop)
        return {block.core[0].start + i: max_distance(piece[zz], sampling=sampling, region=block.inner[1:], **kw)
                for i, zz in enumerate(z)}
    return max_distance(piece, sampling=params["sampling"], region=block.inner, **kw)


def _fragments(b, *, scale, z0, params):
    """:func:`mire.segment.seeded_watershed` with the distance term normalized by ``scale`` (the
    whole volume's maximum distance; per slice, a dict ``{z: max}``, with ``z0`` the window's first z)."""
    from mire.segment.watershed import seeded_watershed

    if params["per_slice"]:
        scale = [scale.get(z0 + z, 0.0) for z in range(b.shape[0])]
    return seeded_watershed(b, threshold=params["seed_threshold"], min_distance=params["min_distance"],
                            sigma=params["sigma"], alpha=params["alpha"], per_slice=params["per_slice"],
                            sampling=params["sampling"], dist_scale=scale)


def _segment_piece(b, *, scale, z0, params, agglomerate_here):
    """Fragments of a haloed window, and (``overlap`` stitching) their agglomeration there."""
    from mire.segment.agglomerate import agglomerate, merge_small
    from mire.segment.watershed import check_boundary_map

    b = check_boundary_map(b)
    frag = _fragments(b, scale=scale, z0=z0, params=params)
    if not agglomerate_here:
        return frag
    seg = agglomerate(frag, boundary=b, thresholds=[params["threshold"]], scoring=params["scoring"],
                      per_slice=params["per_slice"]).segmentations[0]
    if params["min_size"]:
        seg = merge_small(seg, min_size=params["min_size"], boundary=b, per_slice=params["per_slice"])
    return seg


def _segment_block(piece, block, *, params, scale, faces, root, agglomerate_here):
    """Pass 1: segment one haloed window, make its IDs block-unique, record its face slabs."""
    local = np.asarray(_segment_piece(piece, scale=scale, z0=block.outer[0].start, params=params,
                                      agglomerate_here=agglomerate_here))
    return record_block(local, block, faces=faces, root=root)


def record_block(local, block, *, faces, root):
    """A haloed window's labels made block-unique, with its face slabs recorded for the stitching
    (shared with other per-block segmenters, e.g. :mod:`mire.segment.ffn_blocks`)."""
    import zarr

    if local.size and int(local.max()) >= 1 << _LOCAL_BITS:
        raise ValueError(f"block {block.grid_index} has more than 2**32 segments; use smaller blocks")
    labels = local.astype(np.uint64)
    labels[labels > 0] |= np.uint64(block.index) << np.uint64(_LOCAL_BITS)
    for d in faces.axes():
        k_up, k_down = block.grid_index[d], block.grid_index[d] - 1
        for side, k in (("plus", k_up), ("minus", k_down)):
            if k < 0 or k >= faces.grid[d] - 1:
                continue  # no neighbour on this side
            w = faces.slab_width(d, k)
            edge = block.core[d].stop if side == "plus" else block.core[d].start
            lo, hi = (edge, edge + w) if side == "plus" else (edge - w, edge)
            src = list(block.core)
            src[d] = slice(lo, hi)
            rel = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(src, block.outer))
            dst = list(block.core)
            dst[d] = slice(k * faces.width[d], k * faces.width[d] + w)
            store = zarr.open_array(_store_path(root, d, side), mode="r+")
            store[tuple(dst)] = labels[rel]
    return labels


def _match_block(piece, block, *, faces, root, overlap):
    """Pass 2: the block's core IDs, and its matches across the faces below it on every axis."""
    import zarr

    core = piece[block.inner]
    ids = np.unique(core)
    ids = ids[ids > 0]
    matches = [np.zeros((0, 2), np.uint64)]
    for d in faces.axes():
        k = block.grid_index[d] - 1
        if k < 0:
            continue
        w = faces.slab_width(d, k)
        rows = list(block.core)
        rows[d] = slice(k * faces.width[d], k * faces.width[d] + w)
        below = list(block.inner)  # the lower neighbour's last w core planes, read with our halo
        below[d] = slice(block.inner[d].start - w, block.inner[d].start)
        ours = list(block.inner)
        ours[d] = slice(block.inner[d].start, block.inner[d].start + w)
        # Match on each side of the face separately and keep the pairs both sides agree on: a
        # block's labels are most trustworthy in its own core, and a piece that one block got
        # wrong just beyond its core (a fragment leaking through a membrane gap that its window
        # cannot close) then cannot join two objects.
        below_side = match_labels(piece[tuple(below)],
                                  zarr.open_array(_store_path(root, d, "minus"), mode="r")[tuple(rows)],
                                  overlap=overlap)
        above_side = match_labels(zarr.open_array(_store_path(root, d, "plus"), mode="r")[tuple(rows)],
                                  piece[tuple(ours)], overlap=overlap)
        matches.append(_common_rows(below_side, above_side))
    return ids, np.concatenate(matches)


def _common_rows(a, b):
    """Rows of the (N, 2) uint64 array ``a`` that are also rows of ``b``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 2), np.uint64)
    row = np.dtype([("u", np.uint64), ("v", np.uint64)])
    keep = np.isin(np.ascontiguousarray(a).view(row).ravel(), np.ascontiguousarray(b).view(row).ravel())
    return a[keep]


class _Channel:
    """Channel ``c`` of a (C, ...) array-like as a lazy spatial array, so that :func:`mire.blockwise.for_blocks`
    reads a block's affinities with the same window as its labels (only the window is read)."""

    def __init__(self, array, c):
        self.array, self.c = array, int(c)
        self.shape, self.dtype = tuple(array.shape[1:]), array.dtype

    def __getitem__(self, window):
        from mire.blockwise import read_window

        return read_window(self.array, (self.c,) + tuple(window))


def _graph_block(piece, boundary, *rest, faces, root, overlap, per_slice, q, nbins):
    """Pass 2 (``graph`` stitching): matches as in :func:`_match_block`, the core fragments' sizes,
    and the region-graph statistics of every face in the core and across the faces below it.
    ``rest``: the nearest-neighbour affinity channels' windows when faces are scored by
    ``1 - affinity``, then the block."""
    from mire.segment.agglomerate import face_scores
    from mire.segment.watershed import check_boundary_map

    *affs, block = rest
    ids, matches = _match_block(piece, block, faces=faces, root=root, overlap=overlap)
    core = piece[block.inner]
    b = check_boundary_map(boundary)
    sizes = np.bincount(np.searchsorted(ids, core[core > 0]), minlength=len(ids))
    if affs:  # affs[c][v] relates v to v - e_c: inside the core, face_scores pairs them
        fu, fv, fw = face_scores(core, affinities=np.stack([a[block.inner] for a in affs]), per_slice=per_slice)
    else:
        fu, fv, fw = face_scores(core, boundary=b[block.inner], per_slice=per_slice)
    us, vs, ws = [fu], [fv], [fw]
    for d in faces.axes():
        if block.grid_index[d] == 0 or (per_slice and d == 0):
            continue  # per_slice: slices never merge, so faces between them are not edges
        lo, hi = list(block.inner), list(block.inner)
        lo[d] = block.inner[d].start - 1  # the lower neighbour's last core plane
        hi[d] = block.inner[d].start
        fu, fv = piece[tuple(lo)], piece[tuple(hi)]
        sel = (fu != fv) & (fu != 0) & (fv != 0)
        us.append(np.minimum(fu[sel], fv[sel]))
        vs.append(np.maximum(fu[sel], fv[sel]))
        if affs:  # the edge across the face is stored at its upper voxel, our first core plane
            ws.append(np.clip(1.0 - affs[d][tuple(hi)][sel].astype(np.float64), 0, 1))
        else:
            ws.append(np.clip((b[tuple(lo)][sel].astype(np.float64) + b[tuple(hi)][sel]) / 2, 0, 1))
    return (ids, sizes, matches) + _edge_stats(np.concatenate(us), np.concatenate(vs), np.concatenate(ws),
                                               q=q, nbins=nbins)


def _edge_stats(u, v, w, *, q, nbins):
    """Group faces by edge: ``(edges, counts, sums, histograms or None)``; all additive,
    so the statistics of an edge seen by several blocks are the sums of theirs."""
    if u.size == 0:
        return (np.zeros((0, 2), np.uint64), np.zeros(0, np.int64), np.zeros(0),
                None if q is None else np.zeros((0, nbins), np.uint32))
    nodes, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    n = len(nodes)
    keys, edge = np.unique(inv[:u.size].astype(np.int64) * n + inv[u.size:], return_inverse=True)
    edges = np.stack([nodes[keys // n], nodes[keys % n]], axis=1).astype(np.uint64)
    counts = np.bincount(edge, minlength=len(keys))
    sums = np.bincount(edge, weights=w, minlength=len(keys))
    hist = None
    if q is not None:
        bins = np.minimum((w * nbins).astype(np.int64), nbins - 1)
        cells, cell_n = np.unique(edge.astype(np.int64) * nbins + bins, return_counts=True)
        hist = np.zeros((len(keys), nbins), np.uint32)
        hist.reshape(-1)[cells] = cell_n
    return edges, counts, sums, hist


def _fragment_components(core, pairs, extra=()):
    """Connected components of the match graph: ``(nodes, component of every node)``."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    # labels seen only in a halo slab are nodes too: they may join two neighbours' pieces
    nodes = np.unique(np.concatenate([core, pairs.ravel(), *extra]))
    n = len(nodes)
    i = np.searchsorted(nodes, pairs[:, 0])
    j = np.searchsorted(nodes, pairs[:, 1])
    graph = sparse.coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    return nodes, connected_components(graph, directed=False)[1]


def _number_by_first(region_of_core):
    """Consecutive IDs 1..N in order of each region's first core fragment (block order)."""
    uniq, first = np.unique(region_of_core, return_index=True)
    rank = np.zeros(int(uniq.max()) + 1 if uniq.size else 1, np.int64)
    rank[uniq[np.argsort(first)]] = np.arange(1, len(uniq) + 1)
    return rank[region_of_core].astype(np.uint64)


def _final_ids(results):
    """``overlap`` stitching: one consecutive ID per connected component of the matches."""
    core = np.concatenate([r[0] for r in results])
    pairs = np.concatenate([r[1] for r in results])
    if core.size == 0:
        return core, np.zeros(0, np.uint64)
    nodes, comp = _fragment_components(core, pairs)
    return core, _number_by_first(comp[np.searchsorted(nodes, core)])


def _final_ids_graph(results, *, params, q, nbins):
    """``graph`` stitching: matched fragments become one node, the blocks' edge statistics are
    summed into one region graph, and that graph is agglomerated once, as in memory."""
    from mire.segment.agglomerate import agglomerate_graph, merge_small_graph

    core = np.concatenate([r[0] for r in results])
    if core.size == 0:
        return core, np.zeros(0, np.uint64)
    sizes = np.concatenate([r[1] for r in results])
    pairs = np.concatenate([r[2] for r in results])
    edges = np.concatenate([r[3] for r in results])
    nodes, comp = _fragment_components(core, pairs, extra=(edges.ravel(),))
    n = int(comp.max()) + 1
    eu = comp[np.searchsorted(nodes, edges[:, 0])]
    ev = comp[np.searchsorted(nodes, edges[:, 1])]
    keep = eu != ev  # the faces inside a fragment cut by a block face are no edge
    a, b = np.minimum(eu, ev)[keep], np.maximum(eu, ev)[keep]
    keys, inv = np.unique(a * n + b, return_inverse=True)
    counts = np.bincount(inv, weights=np.concatenate([r[4] for r in results])[keep], minlength=len(keys))
    sums = np.bincount(inv, weights=np.concatenate([r[5] for r in results])[keep], minlength=len(keys))
    hist = None
    if q is not None:
        hist = np.zeros((len(keys), nbins), np.uint32)
        np.add.at(hist, inv, np.concatenate([r[6] for r in results])[keep])
    graph_edges = np.stack([keys // n, keys % n], axis=1)
    node_sizes = np.bincount(comp[np.searchsorted(nodes, core)], weights=sizes, minlength=n)
    threshold = params["threshold"]
    if threshold == "auto":  # the summed graph is the whole volume's: the in-memory rule, on histogram scores
        from mire.segment.adapt import auto_threshold, edge_scores_from_stats

        threshold = auto_threshold(edge_scores_from_stats(counts, sums, hist, q=q), counts)
    (region,), _ = agglomerate_graph(graph_edges, counts, sums, hist, thresholds=[threshold],
                                     scoring=params["scoring"], nbins=nbins, n_nodes=n, overwrite_hist=True)
    if params["min_size"]:
        region = merge_small_graph(graph_edges, counts, sums, node_sizes, min_size=params["min_size"],
                                   regions=region)
    return core, _number_by_first(region[comp[np.searchsorted(nodes, core)]])


def _relabel_block(piece, block, *, tables, dtype):
    """Pass 3: scratch IDs of one block -> final IDs (the block's table read from ``tables``)."""
    path = Path(tables) / f"{block.index}.npy"
    ids, final = np.load(path) if path.exists() else np.zeros((2, 0), np.uint64)
    keys = np.concatenate([[0], ids]).astype(np.uint64)
    vals = np.concatenate([[0], final]).astype(dtype)
    return vals[np.searchsorted(keys, piece)]


def _save_tables(core, final, folder) -> None:
    """One ``(2, n)`` file per block of (scratch ID, final ID): each relabel task reads only its own,
    so no task carries the whole volume's table (one entry per fragment: gigabytes at terabytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    block_of = (core >> np.uint64(_LOCAL_BITS)).astype(np.int64)
    cuts = np.flatnonzero(np.diff(block_of)) + 1
    for part in np.split(np.arange(len(core)), cuts):
        if len(part):
            np.save(folder / f"{int(block_of[part[0]])}.npy", np.stack([core[part], final[part]]))


# --------------------------------------------------------------------------- scratch space
@contextmanager
def scratch_folder(out, fingerprint: dict, *, resume: bool, suffix: str = "stitch"):
    """Scratch folder for a blockwise run's intermediate results; removed when the run completes.

    Beside a path ``out`` (``.<name>.<suffix>``), kept when the run fails (other than by a
    ``ValueError``, a refused input) so that the next run with the same ``fingerprint`` (a JSON-able dict of what is computed) resumes from it; a
    leftover with another fingerprint, or ``resume=False``, is cleared. Otherwise a temporary
    folder, always removed."""
    if isinstance(out, (str, os.PathLike)):
        target = Path(out)
        root = target.parent / f".{target.name}.{suffix}"
        meta = root / "params.json"
        if root.exists() and not (resume and meta.exists() and json.loads(meta.read_text()) == fingerprint):
            shutil.rmtree(root)  # another run's, or resume=False: start over
        root.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(fingerprint))
        keep_on_error = True
    else:
        root, keep_on_error = Path(tempfile.mkdtemp(prefix=f"mire-{suffix}-")), False
    try:
        yield root
    except BaseException as exc:
        # a refused input (ValueError: NaN, values outside [0, 1], ...) fails the same way on every
        # rerun, so there is nothing to resume: no folder is left behind for it
        if not keep_on_error or isinstance(exc, ValueError):
            shutil.rmtree(root, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)


def _check_input(image):
    if not (hasattr(image, "shape") and hasattr(image, "dtype") and hasattr(image, "__getitem__")):
        image = np.asarray(image)
    if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)
            or image.dtype == bool):
        raise TypeError(f"boundary map must be numeric, got dtype {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"boundary map must be 2D (Y, X) or 3D (Z, Y, X), got shape {tuple(image.shape)}")
    if min(image.shape) == 0:
        raise ValueError(f"boundary map is empty (shape {tuple(image.shape)})")
    return image


def segment_blockwise(boundary_map, *, block_shape, halo=16, threshold: float = 0.5,
                      seed_threshold: float = 0.5, min_distance: float = 3.0, sigma: float = 1.0,
                      alpha: float = 0.9, per_slice: bool = False, sampling=None, scoring: str = "mean",
                      min_size: int = 0, stitch: str = "graph", match_overlap: float = 0.5, nbins: int = 256,
                      out=None, axes=None, pixel_size=None, scheduler=None, workers=None,
                      progress: bool = False, resume: bool = True, affinities=None):
    """Segment a boundary map block by block into labels that are consistent across blocks.

    The pipeline of :func:`mire.segment.segment_boundaries` (seeded watershed, agglomeration,
    small-region cleanup), run on blocks of the volume that each see ``halo`` voxels of context,
    with the blocks' results stitched so that an object crossing block faces gets one ID (see
    the module docstring). The input is read one haloed block at a time, never whole.

    Parameters
    ----------
    boundary_map : (Z, Y, X) or (Y, X) array-like in [0, 1]
        Membrane probability (1 on membranes): numpy, zarr, dask or h5py.
    block_shape : int or tuple of int
        Core block shape.
    halo : int or tuple of int
        Context voxels on each side of a block (>= 2 along every axis that is split into several
        blocks); about one object radius or more.
    threshold, seed_threshold, min_distance, sigma, alpha, per_slice, sampling, scoring, min_size
        As in :func:`mire.segment.segment_boundaries` (one threshold).
    stitch : {"graph", "overlap"}
        ``"graph"``: blocks make watershed fragments only; fragments cut by a face are matched
        by overlap, the blocks' region-graph statistics are summed into one graph and that graph
        is agglomerated once, exactly as in memory (memory: one entry per fragment and per edge,
        plus ``nbins`` counts per edge for quantile scoring). ``"overlap"``: each block also
        agglomerates its own window and the blocks' segments are matched by overlap (memory: one
        entry per segment; merge decisions only see a block's window).
    match_overlap : float
        Two blocks' pieces are one when each covers more than this fraction of the other's
        voxels on the planes around their shared face.
    nbins : int
        Histogram bins of quantile scoring (as in :func:`mire.segment.agglomerate`).
    out : str, Path or zarr array, optional
        Where the labels go: ``None`` (a numpy array), a zarr array, a ``.zarr`` path or an
        ``.ome.zarr`` path (a multiscale pyramid made by nearest-neighbour downsampling, so
        napari shows labels). With a path, intermediate results are kept in ``.<name>.stitch``
        beside it until the run completes, and ``resume=True`` restarts a killed run from them.
    axes, pixel_size
        Metadata of an ``.ome.zarr`` output (``axes`` such as ``"ZYX"``).
    scheduler, workers, progress
        As in :func:`mire.blockwise.map_blocks`: ``None`` uses an active ``dask.distributed``
        client, else local threads; a ``Client`` or an address ``"tcp://host:port"`` runs on that
        cluster (the scratch folder must then be on storage all workers see: give ``out`` as a
        path there).
    resume : bool
        Reuse an interrupted run's intermediate results (same ``out``, input shape and options).
    affinities : (C, *shape) array-like, optional
        Nearest-neighbour affinities (channels first) whose boundary map this is: fragment faces
        are then scored by ``1 - affinity`` as in :func:`mire.segment.segment_affinities`, not
        by the boundary map (``stitch="graph"`` only; read one block at a time).

    Returns
    -------
    ndarray or zarr array
        uint32 labels 1..N (uint64 if there are 2**32 or more objects), numbered in block order.

    See Also
    --------
    mire.segment.Segmenter.segment_blockwise : raw EM with a network, predicted block by block first.

    Notes
    -----
    Blockwise and whole-volume results differ only where a block's window changes the
    watershed: seeds and distances within a few voxels of a window's edge. Each block uses the
    whole volume's distance scale (a first pass finds it), and with ``stitch="graph"`` every
    merge decision sees the whole volume's evidence. ``experiments/segment_blockwise.py``
    measures the adapted Rand error and VOI between the two.

    Examples
    --------
    >>> from mire.data import em_cells
    >>> from mire.metrics import adapted_rand_error
    >>> from mire.segment import baseline_boundary_map, segment_boundaries
    >>> image, _ = em_cells((12, 96, 96), seed=1)
    >>> b = baseline_boundary_map(image)
    >>> blocks = segment_blockwise(b, block_shape=(6, 48, 48), halo=(4, 16, 16))
    >>> whole = segment_boundaries(b)
    >>> bool(adapted_rand_error(whole, blocks)[0] < 0.01)
    True
    """
    from mire import blockwise
    from mire.segment.agglomerate import scoring_quantile

    image = _check_input(boundary_map)
    shape = tuple(int(n) for n in image.shape)
    ndim = len(shape)
    try:
        block = tuple(int(b) for b in np.broadcast_to(np.asarray(block_shape), (ndim,)))
        h = tuple(int(v) for v in np.broadcast_to(np.asarray(halo), (ndim,)))
    except ValueError:
        raise ValueError(f"block_shape {block_shape!r} / halo {halo!r} do not fit a {ndim}D volume") from None
    if any(b < 1 for b in block) or any(v < 0 for v in h):
        raise ValueError(f"block_shape must be positive and halo >= 0, got {block} and {h}")
    faces = _Faces(shape, block, h)
    thin = [d for d in faces.axes() if h[d] < 2]
    if thin:
        raise ValueError(f"halo {h} is too small along axis {thin[0]}: stitching blocks needs a halo of at "
                         "least 2 voxels along every axis that is split into several blocks")
    if stitch not in ("graph", "overlap"):
        raise ValueError(f"stitch must be 'graph' or 'overlap', got {stitch!r}")
    if not np.isscalar(threshold):
        raise ValueError("segment_blockwise takes one threshold; run it once per threshold")
    if per_slice and ndim != 3:
        raise ValueError(f"per_slice=True needs a 3D (Z, Y, X) boundary map, got {ndim}D")
    if sampling is not None and len(sampling) != ndim:
        raise ValueError(f"sampling has {len(sampling)} values for a {ndim}D boundary map")
    q = scoring_quantile(scoring)
    if affinities is not None:
        if stitch != "graph":
            raise ValueError("affinity scoring needs stitch='graph' (overlap stitching agglomerates each block on "
                             "its boundary map)")
        if tuple(affinities.shape[1:]) != shape or affinities.shape[0] < ndim:
            raise ValueError(f"affinities of shape {tuple(affinities.shape)} do not fit a boundary map of shape "
                             f"{shape}: expected (C, {', '.join(map(str, shape))}) with C >= {ndim}")
    if isinstance(min_distance, str):
        # a maximum's dynamic depends on saddles that can lie outside a block and its halo
        raise ValueError(f"min_distance={min_distance!r} is not available block by block; give a spacing in "
                         "voxels (e.g. 3) or segment the volume in memory")
    blockwise.check_workers(workers)  # before the scratch folder exists
    if isinstance(out, (str, os.PathLike)) and Path(out).exists():  # before any work, not after
        raise FileExistsError(f"output {out} exists; remove it or choose another name")
    from mire.segment.adapt import AUTO, is_auto

    if is_auto(threshold) and stitch != "graph":
        raise ValueError("threshold='auto' needs stitch='graph' (the whole volume's region graph chooses it)")
    if is_auto(seed_threshold):  # the whole map's Otsu split (a strided subsample), the same for every block
        from mire.segment.pipeline import auto_seed_threshold

        seed_threshold = auto_seed_threshold(image)
    params = dict(threshold=AUTO if is_auto(threshold) else float(threshold), seed_threshold=float(seed_threshold),
                  min_distance=float(min_distance), sigma=float(sigma), alpha=float(alpha),
                  per_slice=bool(per_slice), sampling=None if sampling is None else [float(s) for s in sampling],
                  scoring=str(scoring), min_size=int(min_size))
    fingerprint = dict(shape=list(shape), dtype=str(image.dtype), block=list(block), halo=list(h), stitch=stitch,
                       overlap=float(match_overlap), nbins=int(nbins), affinity_scores=affinities is not None,
                       **params)
    token = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    with scratch_folder(out, fingerprint, resume=resume) as root, \
            blockwise.resolve_scheduler(scheduler, workers=workers) as (_, sched):
        # one connection to a cluster address for all passes
        run = dict(scheduler=sched, workers=workers, progress=progress)
        result = _run(image, out, root, faces=faces, block=block, halo=h, params=params, stitch=stitch, q=q,
                      nbins=int(nbins), overlap=float(match_overlap), token=token, resume=resume, run=run,
                      ome=dict(axes=axes, pixel_size=pixel_size),
                      affs=[] if affinities is None else [_Channel(affinities, c) for c in range(ndim)])
    return result


def _run(image, out, root, *, faces, block, halo, params, stitch, q, nbins, overlap, token, resume, run, ome, affs):
    import zarr

    from mire import blockwise

    _create_face_stores(root, faces)
    scratch = root / "labels.zarr"
    if scratch.exists():  # pass 1 finished in an earlier, interrupted run
        labels = zarr.open_array(str(scratch), mode="r")
    else:
        scale = 0.0
        if params["alpha"] < 1:
            maxima = blockwise.for_blocks(partial(_distance_max, params=params), [image], block_shape=block,
                                          halo=halo, **run)
            if params["per_slice"]:
                scale = {}
                for m in maxima:
                    for z, v in m.items():
                        scale[z] = max(scale.get(z, 0.0), v)
            else:
                scale = max(maxima)
        segment = partial(_segment_block, params=params, scale=scale, faces=faces, root=str(root),
                        agglomerate_here=stitch == "overlap")
        labels = blockwise.map_blocks(segment, image, block_shape=block, halo=halo, out=str(scratch),
                                      dtype=np.uint64, pass_block=True, resume=resume, token=token, **run)
    if stitch == "overlap":
        results = blockwise.for_blocks(partial(_match_block, faces=faces, root=str(root), overlap=overlap),
                                       [labels], block_shape=block, halo=faces.width, **run)
        core, final = _final_ids(results)
    else:
        # halo >= 1 everywhere: the faces to the lower neighbours need its last plane
        results = blockwise.for_blocks(partial(_graph_block, faces=faces, root=str(root), overlap=overlap,
                                             per_slice=params["per_slice"], q=q, nbins=nbins),
                                       [labels, image, *affs], block_shape=block,
                                       halo=tuple(max(1, w) for w in faces.width), **run)
        core, final = _final_ids_graph(results, params=params, q=q, nbins=nbins)
    n_objects = int(final.max()) if final.size else 0
    dtype = np.uint32 if n_objects < 2**32 else np.uint64
    tables = root / "relabel"
    _save_tables(core, final.astype(np.uint64), tables)
    kw = {k: v for k, v in ome.items() if v is not None}
    target = str(out) if isinstance(out, os.PathLike) else out
    return blockwise.map_blocks(partial(_relabel_block, tables=str(tables), dtype=dtype), labels, block_shape=block,
                                halo=0, out=target, dtype=dtype, pass_block=True, resume=resume, downscale="nearest",
                                token=token, **kw, **run)
