"""Seeded watershed: over-segment a boundary map (or affinities) into fragments.

Seeds are the maxima of the distance transform of the thresholded boundary map: the centres of
the cells, far from every membrane. The watershed then floods a height map mixing the boundary map
with that distance (as in elf / the CREMI pipelines), so fragments follow membranes and, inside a
cell, split along "necks" rather than along noise.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed as _sk_watershed

from mire._validate import check_image

__all__ = ["distance_seeds", "maxima_dynamics", "seeded_watershed", "affinities_to_boundaries", "check_boundary_map"]


def check_boundary_map(boundary, *, name: str = "boundary map", ndim=(2, 3)) -> np.ndarray:
    """Return a float32 boundary map after checking it (finite, 2D/3D, values in [0, 1])."""
    arr = check_image(boundary, name=name, ndim=ndim)
    arr = np.asarray(arr, dtype=np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{lo:.4g}, {hi:.4g}]"
                         " (scale an 8-bit map by 1/255 first)")
    return arr


def affinities_to_boundaries(affs, *, reduce: str = "mean") -> np.ndarray:
    """Boundary map from nearest-neighbour affinities: 1 - the mean (or min) affinity of each voxel's edges.

    Each nearest-neighbour edge touches two voxels; both get it (the edge from ``v`` to ``v - e_c``
    stored in ``affs[c][v]`` and the one from ``v + e_c`` to ``v``), so a membrane between two cells
    is marked on both sides, symmetric like :func:`mire.segment.boundaries`. Only the first ``ndim``
    channels (the nearest neighbours, :func:`mire.segment.nearest_offsets` order) are used.

    Parameters
    ----------
    affs : (C, Z, Y, X) or (C, Y, X) float array, C >= ndim
    reduce : {"mean", "max"}
        ``"mean"``: 1 - mean affinity of the voxel's edges (smooth; a single cut edge only gives
        ``1 / (2 ndim)``). ``"max"``: 1 - the weakest edge, so a cut marks both voxels fully: on
        affinities made from labels this gives exactly :func:`mire.segment.boundaries`.

    Returns
    -------
    float32 array of the spatial shape.

    Examples
    --------
    >>> affs = np.ones((2, 2, 3), np.float32)
    >>> affs[1][:, 2] = 0           # cut between x=1 and x=2
    >>> affinities_to_boundaries(affs).round(3)
    array([[0.   , 0.333, 0.5  ],
           [0.   , 0.333, 0.5  ]], dtype=float32)
    """
    affs = check_image(affs, name="affinities", ndim=(3, 4))
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    ndim = affs.ndim - 1
    if affs.shape[0] < ndim:
        raise ValueError(f"affinities have {affs.shape[0]} channels; a {ndim}D volume needs at least {ndim}"
                         " nearest-neighbour channels (axis 0 of the array)")
    total = np.zeros(affs.shape[1:], dtype=np.float64)
    count = np.zeros(affs.shape[1:], dtype=np.float64)
    weakest = np.ones(affs.shape[1:], dtype=np.float64)
    for c in range(ndim):
        a = np.asarray(affs[c], dtype=np.float64)
        lo = tuple(slice(1, None) if i == c else slice(None) for i in range(ndim))
        hi = tuple(slice(None, -1) if i == c else slice(None) for i in range(ndim))
        # edge (v - e_c, v) is stored at v; credit it to both of its voxels
        for side in (lo, hi):
            total[side] += a[lo]
            count[side] += 1
            np.minimum(weakest[side], a[lo], out=weakest[side])
    if reduce == "max":
        return (1.0 - weakest).astype(np.float32)
    return (1.0 - total / np.maximum(count, 1)).astype(np.float32)


def _anisotropic_size(min_distance: float, sampling) -> tuple[int, ...]:
    return tuple(max(1, int(2 * np.floor(min_distance / s) + 1)) for s in sampling)


def _offsets(ndim):
    """The 3^ndim - 1 neighbour offsets (full connectivity, as the seed plateaus are labelled)."""
    import itertools

    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]


def _shift(o):
    """``(src, dst)`` slices: voxel ``src`` and its neighbour ``src + o`` (``dst``) inside the array."""
    src = tuple(slice(0, -1) if k == 1 else slice(1, None) if k == -1 else slice(None) for k in o)
    dst = tuple(slice(1, None) if k == 1 else slice(0, -1) if k == -1 else slice(None) for k in o)
    return src, dst


def maxima_dynamics(values):
    """Dynamic of every regional maximum: its height above the highest saddle to a higher maximum.

    Exact and vectorized: each voxel points to a strictly higher neighbour (a connected plateau
    with none is one maximum), pointer jumping gives every voxel the maximum its ascent ends on (a basin), the saddle between two
    basins is the largest ``min(v(x), v(y))`` over their touching voxel pairs, and a maximum
    spanning forest of the basin graph (Kruskal, highest saddle first) gives each maximum the
    saddle at which it joins a higher one. Within a basin every voxel reaches its maximum without
    going down, so this saddle is the one of the best voxel path (full connectivity).

    Parameters
    ----------
    values : (Z, Y, X) or (Y, X) float array

    Returns
    -------
    (roots, dynamics) : flat indices of the maxima (one voxel per maximum; a plateau's highest
    flat index) and their dynamics (``inf`` for the highest of each connected image).

    Examples
    --------
    >>> v = np.array([[0, 3, 1, 2, 0]], np.float32)
    >>> roots, dyn = maxima_dynamics(v)
    >>> roots.tolist(), dyn.tolist()
    ([1, 3], [inf, 1.0])
    """
    v = np.asarray(values, dtype=np.float32)
    full = ndi.generate_binary_structure(v.ndim, v.ndim)
    top3 = ndi.maximum_filter(v, footprint=full, mode="constant", cval=-np.inf)
    # voxels with no higher neighbour; a connected plateau of them is one maximum (one basin)
    flat, m = ndi.label(v == top3, structure=full)
    # every other voxel points to its first strictly higher neighbour (any rising neighbour keeps the
    # ascent non-decreasing, which is all the basin argument needs, and most find one in the first few
    # offsets, so the loop shrinks fast); a -inf frame makes flat neighbour offsets safe at the border
    pad = np.pad(v, 1, constant_values=-np.inf)
    pv = pad.ravel()
    strides = np.array([int(np.prod(pad.shape[k + 1:])) for k in range(v.ndim)])
    todo = np.flatnonzero(np.pad(flat == 0, 1, constant_values=False))
    ptr = np.full(pv.size, -1, dtype=np.int64)
    for o in _offsets(v.ndim):
        if not todo.size:
            break
        nb = todo + int(np.dot(o, strides))
        hit = pv[nb] > pv[todo]
        ptr[todo[hit]] = nb[hit]
        todo = todo[~hit]
    lab = np.pad(flat.astype(np.int64) - 1, 1, constant_values=-1).ravel()
    parent = np.where(lab >= 0, np.arange(pv.size), ptr)
    parent[parent < 0] = np.arange(pv.size)[parent < 0]      # the frame points to itself
    del ptr
    while True:                                 # pointer jumping to the plateau each ascent ends on
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    inner = tuple(slice(1, -1) for _ in range(v.ndim))
    basin = lab[parent].reshape(pad.shape)[inner]
    del parent, lab
    on = np.flatnonzero(flat)
    roots = np.zeros(m, dtype=np.int64)
    np.maximum.at(roots, flat.ravel()[on] - 1, on)   # a plateau's voxel: its highest flat index
    pair_list, pass_list = [], []
    for o in _offsets(v.ndim):
        if o <= tuple(0 for _ in o):    # each unordered neighbour pair once
            continue
        src, dst = _shift(o)
        a, b = basin[src], basin[dst]
        cut = a != b
        if not cut.any():
            continue
        lo, hi = np.minimum(a[cut], b[cut]), np.maximum(a[cut], b[cut])
        pair_list.append(lo.astype(np.int64) * m + hi)
        pass_list.append(np.minimum(v[src][cut], v[dst][cut]))
    dyn = np.full(m, np.inf)
    if not pair_list:
        return roots, dyn
    pair, sad = np.concatenate(pair_list), np.concatenate(pass_list)
    order = np.argsort(pair)                            # one key (lexsort of two is 3x slower here)
    pair, sad = pair[order], sad[order]
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]])
    pair, sad = pair[first], np.maximum.reduceat(sad, first)   # each pair's highest saddle
    order = np.argsort(-sad, kind="stable")
    # Kruskal on plain Python lists (numpy scalar indexing is ~10x slower in this loop)
    key = list(zip(v.ravel()[roots].tolist(), roots.tolist()))   # ties: the lower root index, as above
    top = [k[0] for k in key]
    lo_l, hi_l, sad_l = (pair[order] // m).tolist(), (pair[order] % m).tolist(), sad[order].tolist()
    uf = list(range(m))
    peak = list(range(m))                               # each component's highest maximum
    out = [np.inf] * m
    for i, j, s in zip(lo_l, hi_l, sad_l):
        while uf[i] != i:
            uf[i] = uf[uf[i]]
            i = uf[i]
        while uf[j] != j:
            uf[j] = uf[uf[j]]
            j = uf[j]
        if i == j:
            continue
        pi, pj = peak[i], peak[j]
        # the lower peak meets a higher one at this saddle: its dynamic
        low, high = (pi, pj) if key[pi] < key[pj] else (pj, pi)
        out[low] = top[low] - s
        uf[i] = j
        peak[j] = high
    dyn = np.asarray(out, dtype=np.float64)
    return roots, dyn


def _interior_distance(b, *, threshold, sigma, sampling, mask=None):
    """Interior (``b < threshold``, within ``mask``) and its smoothed distance transform (float32)."""
    interior = b < threshold
    if mask is not None:
        interior &= np.asarray(mask, dtype=bool)
    dist = ndi.distance_transform_edt(interior, sampling=sampling).astype(np.float32)
    if sigma > 0:
        dist = ndi.gaussian_filter(dist, sigma=[sigma / s for s in sampling])
    return interior, dist


def max_distance(boundary, *, threshold: float = 0.5, sigma: float = 1.0, sampling=None, region=None) -> float:
    """The largest smoothed distance to a membrane, which the watershed's height map is divided by.

    The ``distance`` that :func:`distance_seeds` returns, reduced to its maximum over ``region``
    (a tuple of slices; default everywhere) without placing seeds: what a blockwise run needs
    from every block before any block floods (:func:`mire.segment.segment_blockwise`).

    Examples
    --------
    >>> b = np.zeros((9, 20), np.float32); b[:, 9:11] = 1
    >>> round(max_distance(b, sigma=0), 3)
    9.0
    """
    b = check_boundary_map(boundary)
    sampling = tuple(float(s) for s in sampling) if sampling is not None else (1.0,) * b.ndim
    dist = _interior_distance(b, threshold=threshold, sigma=sigma, sampling=sampling)[1]
    dist = dist if region is None else dist[tuple(region)]
    return float(dist.max()) if dist.size else 0.0


def _argmax_per_label(values, labels, which):
    """Flat index of the largest ``values`` voxel of each label in ``which`` (ties: the first in C
    order). Only the voxels of those labels are sorted: the unseeded pieces are few and small, and
    ``ndi.maximum_position`` sorts the whole volume."""
    flat = labels.ravel()
    sel = np.flatnonzero(np.isin(flat, which))
    lab = flat[sel]
    order = np.lexsort((sel, -values.ravel()[sel], lab))
    first = np.r_[True, lab[order][1:] != lab[order][:-1]]
    return sel[order[first]]


def distance_seeds(boundary, *, threshold: float = 0.5, min_distance: float = 3.0, sigma: float = 1.0,
                   sampling=None, mask=None, dynamic_height: float = 1.0):
    """Seeds at the maxima of the distance transform of ``boundary < threshold``.

    Parameters
    ----------
    boundary : (Z, Y, X) or (Y, X) float array in [0, 1]
    threshold : float
        Voxels below it are cell interior.
    min_distance : float
        Maxima closer than this (in ``sampling`` units) are merged: one seed per window of
        ``2 * min_distance + 1``. Larger values give fewer, bigger fragments.
        ``"dynamic"``: no window; seeds are the regional maxima whose dynamic (height above the
        highest saddle to a higher maximum, :func:`maxima_dynamics`) is at least ``dynamic_height``
        voxels (in ``sampling`` units of the smallest spacing). The distance transform is quantized
        to about a voxel, so a maximum rising less than that above its saddle is discretization
        noise of the boundary, while a cell centre rises by about its radius; the seed set changes
        one maximum at a time as the map changes, not all at once as a window's floor step does.
    dynamic_height : float
        ``h`` of ``min_distance="dynamic"``, in voxels of the smallest spacing (default 1).
    sigma : float
        Gaussian smoothing of the distance transform before finding maxima: removes the
        spurious ridges that a noisy boundary map creates. 0 to disable.
    sampling : sequence of float, optional
        Voxel size per axis (e.g. ``(5, 1, 1)`` for ssTEM), used by the distance transform.
    mask : bool array, optional
        Only put seeds where ``mask`` is True.

    Returns
    -------
    (seeds, distance) : int32 label array of connected seed plateaus (0 elsewhere), and the
    smoothed distance transform (float32).

    Examples
    --------
    >>> b = np.zeros((9, 20), np.float32); b[:, 9:11] = 1
    >>> seeds, _ = distance_seeds(b, min_distance=2, sigma=0)
    >>> int(seeds.max())
    2
    """
    b = check_boundary_map(boundary)
    sampling = tuple(float(s) for s in sampling) if sampling is not None else (1.0,) * b.ndim
    if len(sampling) != b.ndim:
        raise ValueError(f"sampling has {len(sampling)} values for a {b.ndim}D boundary map")
    # out-of-range values ran silently: a negative spacing as 1 voxel, a threshold above 1 as "no membrane"
    dynamic = isinstance(min_distance, str)
    if dynamic and min_distance != "dynamic":
        raise ValueError(f"min_distance must be a distance or 'dynamic', got {min_distance!r}")
    if not dynamic and not (np.isfinite(min_distance) and min_distance >= 0):
        raise ValueError(f"min_distance must be a distance >= 0 in voxels, got {float(min_distance):g}")
    if not (np.isfinite(dynamic_height) and dynamic_height > 0):
        raise ValueError(f"dynamic_height must be > 0 voxels, got {float(dynamic_height):g}")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be >= 0, got {float(sigma):g}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a boundary probability in [0, 1], got {float(threshold):g}")
    interior, dist = _interior_distance(b, threshold=threshold, sigma=sigma, sampling=sampling, mask=mask)
    # Plateau maxima of a maximum filter: vectorized, and a flat ridge gives one connected seed
    # rather than many (what skimage's peak_local_max would need extra work for).
    if dynamic:
        # plateaus of local maxima that hold a maximum rising >= h above its saddle to a higher one
        maxima = (dist == ndi.maximum_filter(dist, size=3)) & interior & (dist > 0)
        plateaus, _ = ndi.label(maxima, structure=ndi.generate_binary_structure(b.ndim, b.ndim))
        roots, dyn = maxima_dynamics(dist)
        h = dynamic_height * min(sampling)
        keep = np.zeros(int(plateaus.max()) + 1, dtype=bool)
        keep[plateaus.ravel()[roots[dyn >= h * (1 - 1e-6)]]] = True
        keep[0] = False
        maxima = keep[plateaus]
    else:
        maxima = (dist == ndi.maximum_filter(dist, size=_anisotropic_size(min_distance, sampling))) & interior
        maxima &= dist > 0
    # The window can hide a thin cell's maximum behind a fatter neighbour's: give every connected
    # piece of interior that got no seed one at its own distance maximum, so no cell is flooded
    # from a neighbour (a merge that no agglomeration can undo).
    pieces, n_pieces = ndi.label(interior)
    if n_pieces:
        seeded = np.zeros(n_pieces + 1, dtype=bool)
        seeded[pieces[maxima]] = True
        missing = np.flatnonzero(~seeded[1:]) + 1
        if missing.size:
            maxima.ravel()[_argmax_per_label(dist, pieces, missing)] = True
    seeds, _ = ndi.label(maxima, structure=ndi.generate_binary_structure(b.ndim, b.ndim))
    return seeds.astype(np.int32), dist


def _watershed_one(b, *, threshold, min_distance, sigma, sampling, alpha, mask, seeds, dist_scale):
    dist = None
    if seeds is None:
        seeds, dist = distance_seeds(b, threshold=threshold, min_distance=min_distance, sigma=sigma,
                                     sampling=sampling, mask=mask)
    scale = None if dist is None else (dist.max() if dist_scale is None else dist_scale)
    if alpha < 1 and dist is not None and scale > 0:
        height = alpha * b + (1 - alpha) * (1 - dist / scale)
    else:
        height = b
    return _sk_watershed(height, markers=seeds, mask=mask).astype(np.uint32)


def seeded_watershed(boundary, *, threshold: float = 0.5, min_distance: float = 3.0, sigma: float = 1.0,
                     alpha: float = 0.9, per_slice: bool = False, sampling=None, seeds=None, mask=None,
                     dist_scale=None):
    """Over-segment a boundary map into fragments with a distance-transform seeded watershed.

    Parameters
    ----------
    boundary : (Z, Y, X) or (Y, X) float array in [0, 1]
        Membrane / boundary probability (1 on membranes).
    threshold, min_distance, sigma, sampling
        Seed placement, see :func:`distance_seeds`.
    alpha : float
        Height map flooded = ``alpha * boundary + (1 - alpha) * (1 - normalized distance)``;
        1 floods the boundary map alone.
    per_slice : bool
        Run a 2D watershed on each z-slice (ssTEM with thick sections); fragment ids stay unique.
    seeds : int array, optional
        Your own markers (0 = no seed); skips the distance transform.
    mask : bool array, optional
        Voxels outside it get label 0.
    dist_scale : float or sequence of float, optional
        The distance that normalizes the distance term of the height map (with ``per_slice``:
        one per z-slice, or one for all); default the largest distance in ``boundary`` (per
        slice). A window of a larger volume passes the volume's, so that it floods as the whole
        volume would (:func:`mire.segment.segment_blockwise`).

    Returns
    -------
    uint32 fragment labels of ``boundary.shape``, 1..N with no gaps in 3D mode.

    Examples
    --------
    >>> b = np.zeros((9, 20), np.float32); b[:, 9:11] = 1
    >>> frag = seeded_watershed(b, min_distance=2)
    >>> np.unique(frag[:, :9]).tolist(), np.unique(frag[:, 11:]).tolist()
    ([1], [2])
    """
    b = check_boundary_map(boundary)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != b.shape:
            raise ValueError(f"mask shape {mask.shape} does not match boundary map shape {b.shape}")
    if seeds is not None:
        seeds = np.asarray(seeds)
        if seeds.shape != b.shape:
            raise ValueError(f"seeds shape {seeds.shape} does not match boundary map shape {b.shape}")
    kw = dict(threshold=threshold, min_distance=min_distance, sigma=sigma, alpha=alpha)
    scales = None
    if dist_scale is not None:
        scales = np.broadcast_to(np.asarray(dist_scale, dtype=np.float64), (b.shape[0],) if per_slice else ())
        if not np.all(np.isfinite(scales)) or np.any(scales < 0):
            raise ValueError(f"dist_scale must be finite and >= 0, got {dist_scale!r}")
    if not per_slice:
        return _watershed_one(b, sampling=sampling, mask=mask, seeds=seeds,
                              dist_scale=None if scales is None else float(scales), **kw)
    if b.ndim != 3:
        raise ValueError(f"per_slice=True needs a 3D (Z, Y, X) boundary map, got {b.ndim}D")
    out = np.zeros(b.shape, dtype=np.uint32)
    offset = 0
    for z in range(b.shape[0]):
        sl = _watershed_one(b[z], sampling=None if sampling is None else tuple(sampling)[1:],
                            mask=None if mask is None else mask[z], seeds=None if seeds is None else seeds[z],
                            dist_scale=None if scales is None else float(scales[z]), **kw)
        nz = sl > 0
        out[z][nz] = sl[nz] + offset
        offset = int(out[z].max()) if nz.any() else offset
    return out
