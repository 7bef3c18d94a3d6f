"""Region-adjacency graph and hierarchical agglomeration of fragments (waterz-like).

Units: every edge carries a *boundary score* in [0, 1], low = the two regions are one object.
With a boundary map a face between voxels ``u`` and ``v`` scores ``(b[u] + b[v]) / 2``; with
nearest-neighbour affinities it scores ``1 - aff`` (waterz's ``OneMinus<...Affinity>``). Thresholds
are in the same units: an agglomeration at threshold ``t`` merges, lowest score first, every edge
scoring ``< t`` (so ``t = 0`` returns the fragments).

The graph is gathered in one vectorized pass (face pairs -> ``np.unique`` -> ``bincount``). The
agglomeration is a priority queue over edges; when two regions merge, their edges to a common
neighbour are combined *exactly* (sums and counts for the mean; per-edge histograms for quantiles,
as waterz does), so the score of a merged edge is the score of the union of its faces.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from mire._validate import check_image
from mire.segment.targets import check_labels

__all__ = ["RegionGraph", "Agglomeration", "region_graph", "agglomerate", "segmentation_at", "merge_small",
           "face_scores", "agglomerate_graph", "merge_small_graph"]

HISTORY_DTYPE = np.dtype([("a", np.uint64), ("b", np.uint64), ("score", np.float64)])


@dataclass
class RegionGraph:
    """Region-adjacency graph of a fragment volume with per-edge statistics.

    Attributes
    ----------
    edges : (E, 2) array of fragment ids, ``edges[:, 0] < edges[:, 1]``, sorted.
    count : (E,) int64, number of voxel faces between the two fragments (contact area).
    mean : (E,) float64, mean boundary score over those faces.
    quantiles : dict ``{q: (E,) float64}``, exact quantiles (``numpy.quantile``'s default,
        linear interpolation) of the face scores.
    sizes : (max_id + 1,) int64, voxel count of every id (index = id).
    """

    edges: np.ndarray
    count: np.ndarray
    mean: np.ndarray
    quantiles: dict = field(default_factory=dict)
    sizes: np.ndarray | None = None

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def neighbors(self, region: int) -> np.ndarray:
        """Ids adjacent to ``region``."""
        e = self.edges
        return np.sort(np.concatenate([e[e[:, 0] == region, 1], e[e[:, 1] == region, 0]]))


@dataclass
class Agglomeration:
    """Result of :func:`agglomerate`.

    ``segmentations[i]`` is the segmentation at ``thresholds[i]``; ``history`` holds one row per merge,
    in merge order, as a structured array with fields ``a``, ``b`` (region ``b`` was merged into ``a``;
    a region is named by its smallest fragment id, so ``a < b``) and ``score``; ``graph`` is the region graph of the fragments.
    """

    segmentations: list
    thresholds: list
    history: np.ndarray
    graph: RegionGraph


def _check_inputs(fragments, boundary, affinities):
    frag = check_labels(fragments, name="fragments")
    if boundary is not None and affinities is not None:
        raise ValueError("give either a boundary map or affinities, not both")
    if boundary is not None:
        boundary = check_image(boundary, name="boundary map", ndim=frag.ndim)
        if boundary.shape != frag.shape:
            raise ValueError(f"boundary map shape {boundary.shape} does not match fragments shape {frag.shape}")
    if affinities is not None:
        affinities = check_image(affinities, name="affinities", ndim=frag.ndim + 1)
        if affinities.shape[1:] != frag.shape:
            raise ValueError(f"affinities spatial shape {affinities.shape[1:]} does not match fragments shape "
                             f"{frag.shape} (affinities are (C, *spatial))")
        if affinities.shape[0] < frag.ndim:
            raise ValueError(f"affinities need {frag.ndim} nearest-neighbour channels, got {affinities.shape[0]}")
    return frag, boundary, affinities


def _axes(ndim: int, per_slice: bool):
    if per_slice and ndim != 3:
        raise ValueError(f"per_slice=True needs a 3D (Z, Y, X) volume, got {ndim}D")
    return range(1, ndim) if per_slice else range(ndim)


def face_scores(fragments, *, boundary=None, affinities=None, per_slice: bool = False):
    """Every nearest-neighbour face between two different non-zero fragments, and its score.

    Returns ``(a, b, score)`` arrays with ``a < b`` (fragment ids) and the face's boundary score
    (``0`` everywhere when neither a boundary map nor affinities are given). ``per_slice=True``
    keeps only in-plane (Y, X) faces: slices of a 2D-per-slice segmentation stay apart.
    """
    frag, boundary, affinities = _check_inputs(fragments, boundary, affinities)
    us, vs, ws = [], [], []
    for ax in _axes(frag.ndim, per_slice):
        lo = tuple(slice(None, -1) if i == ax else slice(None) for i in range(frag.ndim))
        hi = tuple(slice(1, None) if i == ax else slice(None) for i in range(frag.ndim))
        fu, fv = frag[lo], frag[hi]
        sel = (fu != fv) & (fu != 0) & (fv != 0)
        u, v = fu[sel], fv[sel]
        if boundary is not None:
            w = (boundary[lo][sel].astype(np.float64) + boundary[hi][sel]) / 2
        elif affinities is not None:
            # affs[c][v] relates v to v - e_c: exactly the face (lo, hi) stored at the hi voxel
            w = 1.0 - np.asarray(affinities[ax], dtype=np.float64)[hi][sel]
        else:
            w = np.zeros(u.size)
        us.append(np.minimum(u, v))
        vs.append(np.maximum(u, v))
        ws.append(w)
    return np.concatenate(us), np.concatenate(vs), np.clip(np.concatenate(ws), 0.0, 1.0)


def _group_faces(a, b):
    """Edge list and the edge index of every face, via one ``np.unique`` on a packed key."""
    a = a.astype(np.int64)
    b = b.astype(np.int64)
    base = int(b.max()) + 1 if b.size else 1
    if base > 2**31:
        raise ValueError("fragment ids above 2**31: relabel them to consecutive ids first "
                         "(skimage.segmentation.relabel_sequential)")
    keys, inverse = np.unique(a * base + b, return_inverse=True)
    edges = np.stack([keys // base, keys % base], axis=1)
    return edges, inverse.ravel()


def region_graph(fragments, *, boundary=None, affinities=None, quantiles=(0.5, 0.75),
                 per_slice: bool = False) -> RegionGraph:
    """Region-adjacency graph of ``fragments`` with contact area, mean and quantile boundary scores.

    Parameters
    ----------
    fragments : (Z, Y, X) or (Y, X) int array
        Over-segmentation; 0 is background and has no edges.
    boundary : float array of ``fragments.shape``, optional
        Boundary probability map; a face scores the mean of its two voxels.
    affinities : (C, *fragments.shape) float array, optional
        Affinities with the nearest-neighbour channels first; a face scores ``1 - affinity``.
    quantiles : sequence of float
        Exact face-score quantiles to gather per edge (e.g. 0.5 = median, 0.75).
    per_slice : bool
        Only in-plane adjacency (2D-per-slice segmentation of a (Z, Y, X) stack).

    Returns
    -------
    RegionGraph

    Examples
    --------
    >>> frag = np.array([[1, 1, 2, 2]])
    >>> b = np.array([[0.0, 0.2, 0.6, 0.0]])
    >>> g = region_graph(frag, boundary=b)
    >>> g.edges.tolist(), g.count.tolist(), g.mean.round(3).tolist()
    ([[1, 2]], [1], [0.4])
    """
    a, b, w = face_scores(fragments, boundary=boundary, affinities=affinities, per_slice=per_slice)
    graph, _, _ = _graph_from_faces(a, b, w, np.asarray(fragments), quantiles)
    return graph


def _graph_from_faces(a, b, w, frag, quantiles):
    sizes = np.bincount(frag.ravel().astype(np.int64))
    if a.size == 0:
        empty = np.zeros(0)
        graph = RegionGraph(np.zeros((0, 2), np.int64), empty.astype(np.int64), empty,
                            {float(q): empty for q in quantiles}, sizes)
        return graph, graph.edges, np.zeros(0, np.int64)
    edges, inv = _group_faces(a, b)
    count = np.bincount(inv, minlength=len(edges))
    mean = np.bincount(inv, weights=w, minlength=len(edges)) / count
    qs = {}
    if quantiles:
        order = np.lexsort((w, inv))  # faces grouped by edge, sorted by score within an edge
        ws = w[order]
        start = np.cumsum(count) - count
        for q in quantiles:
            if not 0 <= q <= 1:
                raise ValueError(f"quantile {q} is outside [0, 1]")
            pos = q * (count - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, count - 1)
            frac = pos - lo
            qs[float(q)] = ws[start + lo] * (1 - frac) + ws[start + hi] * frac
    return RegionGraph(edges, count, mean, qs, sizes), edges, inv


def scoring_quantile(scoring: str):
    """The quantile a scoring name asks for (``"median"`` 0.5, ``"quantile75"`` 0.75), None for
    ``"mean"``; a ValueError naming the accepted forms otherwise. Shared with the blockwise code."""
    s = str(scoring).lower().replace(" ", "")
    if s == "mean":
        return None
    if s == "median":
        return 0.5
    for prefix in ("quantile:", "quantile", "q"):
        if s.startswith(prefix):
            try:
                q = float(s[len(prefix):])
            except ValueError:
                break
            q = q / 100 if q > 1 else q
            if 0 <= q <= 1:
                return q
    raise ValueError(f"unknown scoring {scoring!r}; use 'mean', 'median' or 'quantile:0.75' (or 'quantile75')")


def _cumulative_scores(cum: np.ndarray, q: float, nbins: int) -> np.ndarray:
    """Quantile of each cumulative-histogram row: centre of the bin holding the face of rank floor(q (n - 1))."""
    out = np.empty(len(cum))
    for start in range(0, len(cum), 65536):
        c = cum[start:start + 65536]
        rank = np.floor(q * (c[:, -1].astype(np.float64) - 1))
        out[start:start + len(c)] = ((c <= rank[:, None]).sum(axis=1) + 0.5) / nbins
    return out


def _cumulative_score(row: np.ndarray, q: float, nbins: int) -> float:
    rank = np.floor(q * (float(row[-1]) - 1))
    return (int(row.searchsorted(rank, side="right")) + 0.5) / nbins


def _roots(parent: np.ndarray) -> np.ndarray:
    """Union-find roots of every node by pointer jumping (vectorized)."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def agglomerate(fragments, *, boundary=None, affinities=None, thresholds=(0.5,), scoring: str = "mean",
                nbins: int = 256, quantiles=(), per_slice: bool = False) -> Agglomeration:
    """Merge fragments greedily, lowest boundary score first, at one or several thresholds in one run.

    Parameters
    ----------
    fragments : (Z, Y, X) or (Y, X) int array
        Over-segmentation (e.g. from :func:`mire.segment.seeded_watershed`); 0 is left alone.
    boundary, affinities
        The evidence, see :func:`region_graph` (give one).
    thresholds : float or sequence of float
        Boundary-score thresholds (``1 - affinity``): at threshold ``t`` every edge scoring ``< t`` is
        merged. Several thresholds cost one agglomeration; one segmentation is returned per threshold.
    scoring : {"mean", "median", "quantile:Q"}
        Edge score: mean face score (exact), or the Q-quantile (0..1 or 0..100) of the face scores
        from a ``nbins`` histogram per edge. Face scores are ``1 - affinity``, so ``quantile:q`` is
        waterz's ``OneMinus<HistogramQuantileAffinity<100 (1 - q)>>`` (e.g. waterz's 75 = mire's 0.25).
    nbins : int
        Histogram bins for quantile scoring.
    quantiles : sequence of float
        Exact quantiles to gather in the returned fragment ``graph`` (see :func:`region_graph`); none by
        default (they cost a sort of all faces).
    per_slice : bool
        Merge only within z-slices (in-plane faces): the 2D pipeline for thick-section ssTEM.

    Returns
    -------
    Agglomeration
        ``segmentations`` (one per threshold, in the order given), ``history`` (a, b, score rows) and
        the fragments' ``graph``.

    Examples
    --------
    >>> frag = np.array([[1, 2, 3, 4]])
    >>> b = np.array([[0.0, 0.2, 0.9, 0.1]])     # faces score 0.1, 0.55, 0.5
    >>> res = agglomerate(frag, boundary=b, thresholds=[0.52, 0.6])
    >>> res.segmentations[0].tolist(), res.segmentations[1].tolist()
    ([[1, 1, 3, 3]], [[1, 1, 1, 1]])
    >>> [(int(a), int(b), round(s, 3)) for a, b, s in res.history.tolist()]
    [(1, 2, 0.1), (3, 4, 0.5), (1, 3, 0.55)]
    """
    thr = _check_thresholds(thresholds)
    q = scoring_quantile(scoring)
    _check_nbins(nbins)
    frag, boundary, affinities = _check_inputs(fragments, boundary, affinities)
    a_f, b_f, w = face_scores(frag, boundary=boundary, affinities=affinities, per_slice=per_slice)
    graph, edges, inv = _graph_from_faces(a_f, b_f, w, frag, quantiles)
    n_e = len(edges)
    counts = np.bincount(inv, minlength=n_e)
    sums = np.bincount(inv, weights=w, minlength=n_e)
    hist = None
    if q is not None:
        bins = np.minimum((w * nbins).astype(np.int64), nbins - 1)
        # sparse fill: np.unique on (edge, bin) keeps the temporary at faces, not E * nbins int64s
        cells, cell_n = np.unique(inv.astype(np.int64) * nbins + bins, return_counts=True)
        hist = np.zeros((n_e, nbins), dtype=np.uint32)
        hist.reshape(-1)[cells] = cell_n
    del a_f, b_f, w, inv
    luts, history = agglomerate_graph(edges, counts, sums, hist, thresholds=thr, scoring=scoring, nbins=nbins,
                                      n_nodes=int(frag.max()) + 1, overwrite_hist=True)
    dtype = frag.dtype if np.issubdtype(frag.dtype, np.unsignedinteger) else np.int64
    segs = [lut.astype(dtype)[frag] for lut in luts]
    return Agglomeration(segs, thr, history, graph)


def _check_thresholds(thresholds) -> list[float]:
    thr = [float(thresholds)] if np.isscalar(thresholds) else [float(t) for t in thresholds]
    if not thr:
        raise ValueError("thresholds is empty")
    if any(not np.isfinite(t) for t in thr):
        raise ValueError(f"thresholds must be finite numbers, got {thr}")
    return thr


def _check_nbins(nbins):
    if int(nbins) != nbins or nbins < 2:
        raise ValueError(f"nbins must be an integer >= 2, got {nbins}")


def agglomerate_graph(edges, counts, sums, hist=None, *, thresholds=(0.5,), scoring: str = "mean",
                      nbins: int = 256, n_nodes: int | None = None, overwrite_hist: bool = False):
    """Greedy agglomeration of a region graph given by its edge statistics.

    The core of :func:`agglomerate`, for graphs that are not gathered from one volume (e.g. the
    sum of the graphs of many blocks, :func:`mire.segment.segment_blockwise`). Lowest score
    first, every edge scoring ``< t`` is merged; when two regions merge, their edges to a common
    neighbour are combined exactly (sums and counts for the mean, histograms for quantiles).

    Parameters
    ----------
    edges : (E, 2) int array
        Node ids ``0 <= u, v < n_nodes`` of every edge, each pair once.
    counts : (E,) array
        Faces per edge (contact area).
    sums : (E,) float array
        Sum of the face scores per edge (score = ``sums / counts`` for ``"mean"``).
    hist : (E, nbins) uint32 array, optional
        Per-edge histograms of the face scores over ``nbins`` equal bins of [0, 1]; needed for
        quantile scoring. Counts, sums and histograms are additive: the statistics of an edge
        seen in several places are the sums of theirs.
    thresholds : float or sequence of float
        One result per threshold, in the order given, from one run.
    scoring, nbins
        As in :func:`agglomerate`.
    n_nodes : int, optional
        Number of nodes (default: the largest id in ``edges`` + 1).
    overwrite_hist : bool
        Let the run reuse ``hist``'s memory (it is left holding merged cumulative histograms).

    Returns
    -------
    (regions, history)
        ``regions[i]``: (n_nodes,) int64, the region of every node at ``thresholds[i]``, named by
        its smallest node id; ``history``: the merges, as in :class:`Agglomeration`.

    Examples
    --------
    >>> edges = np.array([[1, 2], [2, 3], [3, 4]])
    >>> counts = np.array([1, 1, 1]); sums = np.array([0.1, 0.55, 0.5])
    >>> regions, history = agglomerate_graph(edges, counts, sums, thresholds=0.52)
    >>> regions[0].tolist()
    [0, 1, 1, 3, 3]
    """
    thr = _check_thresholds(thresholds)
    q = scoring_quantile(scoring)
    _check_nbins(nbins)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    n_e = len(edges)
    if len(counts) != n_e or len(sums) != n_e:
        raise ValueError(f"{n_e} edges but {len(counts)} counts and {len(sums)} sums")
    if n_nodes is None:
        n_nodes = int(edges.max()) + 1 if n_e else 1
    counts = np.asarray(counts, dtype=np.float64)
    sums = np.asarray(sums, dtype=np.float64)
    if q is None:
        hist = None  # the mean needs no histograms (and the loop tells the scorings apart by them)
        scores = sums / np.maximum(counts, 1)
    else:
        if hist is None or np.shape(hist) != (n_e, nbins):
            raise ValueError(f"quantile scoring needs an ({n_e}, {nbins}) histogram per edge")
        hist = np.asarray(hist, dtype=np.uint32)
        if not overwrite_hist:
            hist = hist.copy()
        # Keep *cumulative* histograms: merging two edges is still a plain sum (cumsum is linear),
        # and a quantile is one searchsorted, with no cumsum per merge.
        np.cumsum(hist, axis=1, out=hist)
        scores = _cumulative_scores(hist, q, nbins)

    # Python-side state: plain lists and dicts are several times faster than numpy scalars here.
    eu = edges[:, 0].tolist()
    ev = edges[:, 1].tolist()
    score = scores.tolist()
    sums_l = sums.tolist()
    counts_l = counts.tolist()
    alive = [True] * n_e
    adj: dict[int, dict[int, int]] = {}
    for e, (u, v) in enumerate(zip(eu, ev)):
        adj.setdefault(u, {})[v] = e
        adj.setdefault(v, {})[u] = e
    heap = list(zip(score, range(n_e)))
    heapq.heapify(heap)
    parent = np.arange(n_nodes, dtype=np.int64)  # union-find over graph nodes
    # A merged region is *named* by its smallest node id, whichever node keeps the graph data:
    # names then do not depend on the data structure, and the history replays with plain union-find.
    name = np.arange(n_nodes, dtype=np.int64)
    history: list[tuple[int, int, float]] = []
    regions: dict[int, np.ndarray] = {}
    for k in np.argsort(thr, kind="stable"):
        t = thr[k]
        while heap and heap[0][0] < t:
            s, e = heapq.heappop(heap)
            if not alive[e] or score[e] != s:
                continue  # stale entry: the edge died or its score changed since it was pushed
            u, v = eu[e], ev[e]
            # keep the region with more neighbours: fewer dict moves (the "union by size" of the graph)
            if len(adj[u]) < len(adj[v]):
                u, v = v, u
            alive[e] = False
            au, av = adj[u], adj.pop(v)
            del au[v]
            del av[u]
            for n, eb in av.items():
                an = adj[n]
                del an[v]
                ea = au.get(n)
                if ea is None:  # v's edge simply moves to u
                    au[n] = eb
                    an[u] = eb
                    eu[eb], ev[eb] = u, n
                    continue
                # u and v both touch n: the two edges become one, statistics combined exactly
                alive[eb] = False
                sums_l[ea] += sums_l[eb]
                counts_l[ea] += counts_l[eb]
                if hist is None:
                    new = sums_l[ea] / counts_l[ea]
                else:
                    row = hist[ea]
                    row += hist[eb]
                    new = _cumulative_score(row, q, nbins)
                score[ea] = new
                heapq.heappush(heap, (new, ea))
            parent[v] = u
            nu, nv = int(name[u]), int(name[v])
            if nv < nu:
                nu, nv = nv, nu
            name[u] = nu
            history.append((nu, nv, s))
        regions[int(k)] = name[_roots(parent)]
    hist_arr = np.array(history, dtype=HISTORY_DTYPE) if history else np.zeros(0, HISTORY_DTYPE)
    return [regions[i] for i in range(len(thr))], hist_arr


def segmentation_at(fragments, history, threshold: float) -> np.ndarray:
    """Rebuild the segmentation at ``threshold`` from the fragments and a merge history.

    Every merge scoring ``< threshold`` is applied (edge scores only grow once a threshold is
    passed, so this equals the agglomeration stopped at ``threshold``).

    Examples
    --------
    >>> frag = np.array([[1, 2, 3, 4]])
    >>> hist = np.array([(1, 2, 0.1), (3, 4, 0.5), (1, 3, 0.55)], dtype=HISTORY_DTYPE)
    >>> segmentation_at(frag, hist, 0.52).tolist()
    [[1, 1, 3, 3]]
    """
    frag = check_labels(fragments, name="fragments")
    history = np.asarray(history)
    if history.dtype.names is None:
        history = np.array([tuple(r) for r in history], dtype=HISTORY_DTYPE)
    parent = np.arange(int(frag.max()) + 1, dtype=np.int64)
    for a, b, s in history.tolist():
        if s < threshold:
            if max(a, b) >= len(parent):
                raise ValueError(f"merge history names region {max(a, b)}, above the fragments' max id")
            parent[int(b)] = int(a)
    return _roots(parent).astype(frag.dtype)[frag]


def merge_small(segmentation, *, min_size: int, boundary=None, affinities=None, per_slice: bool = False,
                max_rounds: int = 50):
    """Merge every region smaller than ``min_size`` voxels into its strongest neighbour.

    The strongest neighbour is the one with the lowest mean boundary score (with neither a boundary
    map nor affinities: the largest contact area). Regions are merged in vectorized rounds (one
    region-graph pass each) until no small region has a neighbour; a merged group is named by its
    largest member, so big regions keep their ids. Isolated small regions are kept.
    ``per_slice=True``: only in-plane neighbours count (2D-per-slice segmentations).

    Examples
    --------
    >>> seg = np.array([[1, 1, 1, 2, 3, 3]])
    >>> merge_small(seg, min_size=2).tolist()      # region 2 touches 1 and 3 equally: lower id wins
    [[1, 1, 1, 1, 3, 3]]
    """
    if int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer, got {min_size}")
    seg, boundary, affinities = _check_inputs(segmentation, boundary, affinities)
    a, b, w = face_scores(seg, boundary=boundary, affinities=affinities, per_slice=per_slice)
    sizes = np.bincount(seg.ravel().astype(np.int64))
    if a.size == 0:
        return seg.copy()
    edges, inv = _group_faces(a, b)
    region = merge_small_graph(edges, np.bincount(inv, minlength=len(edges)),
                               np.bincount(inv, weights=w, minlength=len(edges)), sizes, min_size=min_size,
                               max_rounds=max_rounds)
    lut = region.astype(seg.dtype)
    lut[0] = 0
    return lut[seg]


def merge_small_graph(edges, counts, sums, sizes, *, min_size: int, regions=None, max_rounds: int = 50):
    """:func:`merge_small` on a region graph given by its edge statistics; the region of every node.

    Every region (a group of nodes) under ``min_size`` voxels joins its neighbour of lowest mean
    score (then largest contact, then lowest id), in vectorized rounds until no small region has
    a neighbour; a merged group is named by its largest member (lowest id on ties).

    Parameters
    ----------
    edges, counts, sums
        The graph, as in :func:`agglomerate_graph` (node ids ``< len(sizes)``).
    sizes : (N,) array
        Voxels of every node.
    min_size : int
    regions : (N,) int array, optional
        The region of every node to start from (e.g. an agglomeration's); default: each node alone.
    max_rounds : int

    Returns
    -------
    (N,) int64 array: the region of every node.

    Examples
    --------
    >>> edges = np.array([[1, 2], [2, 3]]); counts = np.array([1, 1]); sums = np.array([0.5, 0.5])
    >>> merge_small_graph(edges, counts, sums, np.array([0, 3, 1, 2]), min_size=2).tolist()
    [0, 1, 1, 3]
    """
    if int(min_size) != min_size or min_size < 0:
        raise ValueError(f"min_size must be a non-negative integer, got {min_size}")
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    counts = np.asarray(counts, dtype=np.float64)
    sums = np.asarray(sums, dtype=np.float64)
    n = len(sizes)
    region = np.arange(n, dtype=np.int64) if regions is None else np.asarray(regions, dtype=np.int64).copy()
    for _ in range(max_rounds):
        # the graph of the current regions: faces between two regions summed over their nodes' edges
        ru, rv = region[edges[:, 0]], region[edges[:, 1]]
        keep = ru != rv
        if not keep.any():
            break
        keys, inv = np.unique(np.minimum(ru, rv)[keep] * n + np.maximum(ru, rv)[keep], return_inverse=True)
        ct = np.bincount(inv, weights=counts[keep])
        mean = np.bincount(inv, weights=sums[keep]) / ct
        ea, eb = keys // n, keys % n
        rsize = np.bincount(region, weights=sizes, minlength=n)
        # both directions: (small region, neighbour, score, contact)
        node, nbr = np.concatenate([ea, eb]), np.concatenate([eb, ea])
        sc, cc = np.concatenate([mean, mean]), np.concatenate([ct, ct])
        small = rsize[node] < min_size
        if not small.any():
            break
        node, nbr, sc, cc = node[small], nbr[small], sc[small], cc[small]
        order = np.lexsort((nbr, -cc, sc, node))  # best = lowest score, then largest contact, then lowest id
        node, nbr = node[order], nbr[order]
        first = np.r_[True, node[1:] != node[:-1]]
        graph = sparse.coo_matrix((np.ones(int(first.sum())), (node[first], nbr[first])), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        # name each merged group by its largest member (lowest id on ties)
        ids = np.arange(n)
        best = np.lexsort((ids, -rsize, comp))
        lead = np.empty(comp.max() + 1, dtype=np.int64)
        lead[comp[best[::-1]]] = best[::-1]  # last write wins: the first in sorted order
        region = lead[comp][region]
    return region
