"""Score a trace against a gold standard: the tracing protocol of Ishii et al. 2020 (Table 3).

Two views of the same question, "how much of the neuron did the trace find?":

- **foreground** (the paper's): grow a region from each trace on the *clean* image with one
  shared threshold (:func:`mire.trace.region_grow`: geodesic growth through bright voxels, 12 px
  by default), then precision / recall of the test region's voxels against the gold region's. Traces are compared by the neurite they cover, so a centre
  line one pixel off the gold one costs nothing.
- **nodes**: resample both traces every pixel and count the points of one lying within
  ``tolerance`` of the other (as DIADEM-style node matching does, without its topology terms).
- **distance** (:func:`distance_score`): the same count, but each point is measured to the other
  arbor's *segments* (its centre line), not to its resampled points, and summarised as F1 at 5 px;
  it needs no image, so it scores a trace the same whatever the stack's brightness.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from mire._validate import check_image
from mire.trace.region_grow import MAX_DISTANCE, SNAP_DISTANCE, default_threshold, region_grow
from mire.trace.swc import _parent_index, check_swc, resample_points
from mire.trace.vesselness import normalized_spacing


def match_nodes(test_swc, gold_swc, *, tolerance: float = 4.0, spacing=None) -> tuple[float, float]:
    """Node precision and recall of a trace within a distance tolerance.

    Both traces are resampled every pixel along their segments (so long and short segments weigh
    by their length, not by how densely they were clicked). precision = fraction of test points
    within ``tolerance`` of a gold point, recall = fraction of gold points within ``tolerance`` of
    a test point. An empty test trace scores precision 1.0 and recall 0.0 (as
    :func:`mire.metrics.foreground_precision_recall` does for an empty mask).

    Parameters
    ----------
    test_swc, gold_swc : (N, 7) arrays
    tolerance : float
        In units of the finest axis' pixel after ``spacing`` (e.g. x-y pixels for a stack whose
        z step is 3 pixels, ``spacing=(3, 1, 1)``).
    spacing : sequence of 3 floats, optional
        Voxel size for (z, y, x); only ratios matter.

    Examples
    --------
    >>> import numpy as np
    >>> gold = np.array([[1, 2, 0, 0, 0, 1, -1], [2, 2, 10, 0, 0, 1, 1]])
    >>> half = np.array([[1, 2, 0, 1, 0, 1, -1], [2, 2, 5, 1, 0, 1, 1]])   # 1 px off, half as long
    >>> match_nodes(half, gold, tolerance=2.0)   # gold x = 0..6 are within 2 px: 7 of 11 points
    (1.0, 0.6363636363636364)
    """
    if tolerance <= 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    sp = normalized_spacing(spacing, 3)
    test = check_swc(test_swc, name="test_swc")
    gold = check_swc(gold_swc, name="gold_swc")
    a = resample_points(test, step=1.0, spacing=sp)[0] * sp
    b = resample_points(gold, step=1.0, spacing=sp)[0] * sp
    if len(a) == 0:
        return 1.0, 0.0 if len(b) else 1.0
    if len(b) == 0:
        return 0.0, 1.0
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float(np.mean(da <= tolerance)), float(np.mean(db <= tolerance))


def _segments(swc, sp, step):
    """Resampled points (M, 3) and the sub-segments (K, 2, 3) between them, physical (z, y, x) units.

    Every parent-child segment is cut into equal pieces no longer than ``step``; every node also
    gives a zero-length segment, so an isolated node (a root without children) is still a place
    the other arbor can be near.
    """
    zyx = swc[:, [4, 3, 2]] * sp
    pidx = _parent_index(swc)
    child = np.flatnonzero(pidx >= 0)
    a, b = zyx[child], zyx[pidx[child]]
    n = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / step).astype(int), 1)
    seg = np.repeat(np.arange(len(child)), n)
    k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # piece index 0..n-1 within its segment
    t0 = (k / n[seg])[:, None]
    t1 = ((k + 1) / n[seg])[:, None]
    p0 = a[seg] + t0 * (b[seg] - a[seg])
    p1 = a[seg] + t1 * (b[seg] - a[seg])
    pieces = np.concatenate([np.stack([p0, p1], axis=1), np.stack([zyx, zyx], axis=1)])
    # the points scored: every node and every interior cut (p0 with k > 0)
    points = np.concatenate([zyx, p0[k > 0]])
    return points, pieces


def _distance_to_segments(points, pieces, reach):
    """Distance from each point to the nearest of ``pieces`` (capped at ``reach``: inf beyond it)."""
    out = np.full(len(points), np.inf)
    if len(points) == 0 or len(pieces) == 0:
        return out
    mid = pieces.mean(axis=1)
    half = float(np.max(np.linalg.norm(pieces[:, 1] - pieces[:, 0], axis=1))) / 2
    # a piece whose midpoint is farther than reach + half its length cannot be within reach
    pairs = cKDTree(points).sparse_distance_matrix(cKDTree(mid), reach + half + 1e-9, output_type="ndarray")
    if len(pairs) == 0:
        return out
    i, j = pairs["i"], pairs["j"]
    p, a, b = points[i], pieces[j, 0], pieces[j, 1]
    ab = b - a
    den = np.einsum("ij,ij->i", ab, ab)
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.where(den > 0, den, 1.0), 0.0, 1.0)
    d = np.linalg.norm(p - (a + t[:, None] * ab), axis=1)
    np.minimum.at(out, i, d)
    out[out > reach] = np.inf
    return out


def distance_score(test_swc, gold_swc, *, tolerance: float = 5.0, spacing=None, step: float = 1.0) -> dict:
    """Precision, recall and F1 of a trace by its distance to the gold arbor.

    Both arbors are resampled every ``step`` (at most) along their segments, so every pixel of cable
    weighs the same however densely it was clicked. A test point is *matched* when the gold arbor's
    centre line (its segments, not only its nodes) passes within ``tolerance`` of it; precision is
    the matched fraction of test points, recall the fraction of gold points within ``tolerance`` of
    the test arbor's segments, F1 their harmonic mean. Distances are physical: z is scaled by
    ``spacing`` (a z step of 3 px counts 3 px). An empty test trace scores precision 1.0, recall 0.0,
    F1 0.0.

    Parameters
    ----------
    test_swc, gold_swc : (N, 7) arrays
        SWC rows, x = column, y = row, z = slice.
    tolerance : float
        Match distance, in units of the finest axis' pixel after ``spacing``.
    spacing : sequence of 3 floats, optional
        Voxel size for (z, y, x); only ratios matter (e.g. ``(3.03, 1, 1)`` for the DIADEM OP stacks).
    step : float
        Resampling step (finest-axis pixels).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``test_points``, ``gold_points`` (the resampled counts),
        ``tolerance``.

    Examples
    --------
    >>> import numpy as np
    >>> gold = np.array([[1, 2, 0, 0, 0, 1, -1], [2, 2, 10, 0, 0, 1, 1]])     # x = 0..10 on y = 0
    >>> test = np.array([[1, 2, 0, 3, 0, 1, -1], [2, 2, 20, 3, 0, 1, 1]])     # 3 px off, x = 0..20
    >>> r = distance_score(test, gold, tolerance=5.0)
    >>> r["precision"], r["recall"]   # test x = 0..14 lie within 5 px of the gold segment: 15 of 21
    (0.7142857142857143, 1.0)
    """
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    sp = normalized_spacing(spacing, 3)
    test = check_swc(test_swc, name="test_swc")
    gold = check_swc(gold_swc, name="gold_swc")
    if len(gold) == 0:
        raise ValueError("gold_swc is empty: there is nothing to score against")
    gold_pts, gold_seg = _segments(gold, sp, step)
    out = {"tolerance": float(tolerance), "gold_points": len(gold_pts)}
    if len(test) == 0:
        return {"precision": 1.0, "recall": 0.0, "f1": 0.0, "test_points": 0, **out}
    test_pts, test_seg = _segments(test, sp, step)
    precision = float(np.mean(np.isfinite(_distance_to_segments(test_pts, gold_seg, tolerance))))
    recall = float(np.mean(np.isfinite(_distance_to_segments(gold_pts, test_seg, tolerance))))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": float(f1), "test_points": len(test_pts), **out}


def evaluate_tracing(clean, test_swc, gold_swc, *, tolerance: float = 4.0, spacing=None, threshold=None,
                     max_distance: float = MAX_DISTANCE, snap_distance: float = SNAP_DISTANCE,
                     distance_tolerance: float = 5.0) -> dict:
    """Foreground and node precision / recall of a test trace against a gold trace.

    The paper protocol: both traces are projected onto the **clean** image and region-grown on it
    with the *same* intensity threshold (default: Otsu of the clean image near the gold trace, see
    :func:`mire.trace.region_grow.default_threshold`); the test region is scored against the gold
    region with :func:`mire.metrics.foreground_precision_recall`.

    Parameters
    ----------
    clean : array_like, 2D or 3D
        The clean (ground-truth) image.
    test_swc, gold_swc : (N, 7) arrays
        Traces in pixel / slice coordinates (x = column, y = row, z = slice).
    tolerance : float
        Node-matching distance (see :func:`match_nodes`).
    spacing : sequence of float, optional
        Voxel size per axis (ZYX); only ratios matter.
    threshold : float, optional
        Region-growing intensity threshold shared by both traces.
    max_distance, snap_distance : float
        How far (geodesically) from a trace the region may grow, and from how far off the trace a
        bright voxel seeds it (see :func:`mire.trace.region_grow`).
    distance_tolerance : float
        Match distance of the distance score (see :func:`distance_score`).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (foreground voxels); ``node_precision``,
        ``node_recall``; ``distance_precision``, ``distance_recall``, ``distance_f1``
        (:func:`distance_score`); ``threshold``; ``gold_voxels``, ``test_voxels``; ``gold_nodes``,
        ``test_nodes``.

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.zeros((3, 20, 60)); clean[1, 9:12, 2:58] = 1.0     # a bar, x = 2..57
    >>> gold = np.array([[1, 2, 2, 10, 1, 1, -1], [2, 2, 57, 10, 1, 1, 1]])
    >>> test = np.array([[1, 2, 2, 10, 1, 1, -1], [2, 2, 29, 10, 1, 1, 1]])  # ends at x = 29
    >>> r = evaluate_tracing(clean, test, gold, threshold=0.5)
    >>> r["precision"], r["recall"]   # its region reaches max_distance = 12 px further: 118 of 168
    (1.0, 0.7023809523809523)
    """
    from mire.metrics import foreground_precision_recall

    img = check_image(clean, name="clean", ndim=(2, 3))
    test = check_swc(test_swc, name="test_swc")
    gold = check_swc(gold_swc, name="gold_swc")
    if len(gold) == 0:
        raise ValueError("gold_swc is empty: there is nothing to score against")
    sp = normalized_spacing(spacing, img.ndim)
    if threshold is None:
        threshold = default_threshold(img, gold, spacing=sp)
    kw = dict(threshold=threshold, max_distance=max_distance, snap_distance=snap_distance, spacing=sp)
    gold_mask = region_grow(img, gold, **kw)
    test_mask = region_grow(img, test, **kw)
    precision, recall = foreground_precision_recall(gold_mask, test_mask)
    sp3 = sp if img.ndim == 3 else (1.0, *sp)
    node_p, node_r = match_nodes(test, gold, tolerance=tolerance, spacing=sp3)
    dist = distance_score(test, gold, tolerance=distance_tolerance, spacing=sp3)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "precision": float(precision), "recall": float(recall), "f1": float(f1),
        "node_precision": node_p, "node_recall": node_r,
        "distance_precision": dist["precision"], "distance_recall": dist["recall"], "distance_f1": dist["f1"],
        "threshold": float(threshold),
        "gold_voxels": int(gold_mask.sum()), "test_voxels": int(test_mask.sum()),
        "gold_nodes": len(gold), "test_nodes": len(test),
    }
