"""End-to-end post-processing: boundary map or affinities -> fragments -> agglomeration -> cleanup.

These are what :class:`mire.segment.Segmenter` and ``mire segment`` run after a network; with
:func:`baseline_segmentation` the same chain runs on the smoothed raw image, the no-learning
baseline that learned models are compared against.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mire._validate import check_image
from mire.segment.adapt import AUTO, auto_threshold, is_auto, weighted_otsu
from mire.segment.agglomerate import agglomerate, merge_small, region_graph, scoring_quantile
from mire.segment.watershed import affinities_to_boundaries, check_boundary_map, seeded_watershed

__all__ = ["segment_boundaries", "segment_affinities", "baseline_boundary_map", "baseline_segmentation",
           "auto_seed_threshold"]


def _thresholds(threshold):
    """``(single, values)``; ``"auto"`` entries are kept, to be resolved on the fragment graph."""
    single = np.isscalar(threshold)
    thr = [threshold] if single else list(threshold)
    if not thr:
        raise ValueError("threshold list is empty")
    out = []
    for t in thr:
        if is_auto(t):
            out.append(AUTO)
            continue
        try:
            out.append(float(t))
        except (TypeError, ValueError):
            raise ValueError(f"threshold must be a number or 'auto', got {t!r}") from None
    return single, out


def _resolve_auto(thr, frag, *, scoring, per_slice=False, **evidence):
    """Replace ``"auto"`` thresholds by the weighted Otsu split of the fragment graph's edge scores
    (:func:`mire.segment.adapt.auto_threshold`), scored as the agglomeration scores them."""
    if not any(t == AUTO for t in thr):
        return thr
    q = scoring_quantile(scoring)
    g = region_graph(frag, quantiles=() if q is None else (q,), per_slice=per_slice, **evidence)
    t = auto_threshold(g.mean if q is None else g.quantiles[q], g.count)
    return [t if x == AUTO else x for x in thr]


def auto_seed_threshold(boundary_map) -> float:
    """Seed threshold from the boundary map itself: the Otsu split of its values (strided
    subsample), clipped to [0.1, 0.9]."""
    from mire.learn.normalize import subsample

    return float(np.clip(weighted_otsu(subsample(boundary_map, max_elements=2**21)), 0.1, 0.9))


def _seed_threshold(value, b):
    return auto_seed_threshold(b) if is_auto(value) else float(value)


def _finish(frag, result, single, min_size, evidence, return_fragments, return_result, per_slice=False):
    segs = result.segmentations
    if min_size:
        segs = [merge_small(s, min_size=min_size, per_slice=per_slice, **evidence) for s in segs]
    out = segs[0] if single else segs
    if return_result:
        result.segmentations = segs
        return (out, frag, result)
    if return_fragments:
        return out, frag
    return out


def segment_boundaries(boundary_map, *, threshold=0.5, seed_threshold: float = 0.5, min_distance: float = 3.0,
                       sigma: float = 1.0, alpha: float = 0.9, per_slice: bool = False, sampling=None,
                       scoring: str = "mean", min_size: int = 0, return_fragments: bool = False,
                       return_result: bool = False):
    """Segment a boundary probability map: seeded watershed, agglomeration, small-fragment cleanup.

    Parameters
    ----------
    boundary_map : (Z, Y, X) or (Y, X) float array in [0, 1]
        Membrane probability (1 on membranes).
    threshold : float or sequence of float
        Agglomeration threshold(s) on the boundary score (see :func:`mire.segment.agglomerate`);
        a sequence returns one segmentation per threshold, from one agglomeration. 0: fragments only.
        ``"auto"``: chosen from this volume's fragment graph, the contact-weighted Otsu split of its
        edge scores (:func:`mire.segment.adapt.auto_threshold`; the value used is in
        ``result.thresholds`` with ``return_result=True``).
    seed_threshold, min_distance, sigma, alpha, per_slice, sampling
        Fragment generation, see :func:`mire.segment.seeded_watershed`; ``seed_threshold="auto"``:
        the Otsu split of the boundary map (:func:`auto_seed_threshold`).
    scoring : str
        Edge score: ``"mean"``, ``"median"``, ``"quantile:0.75"``, ...
    min_size : int
        Regions smaller than this (voxels) are merged into their strongest neighbour afterwards.
    return_fragments, return_result : bool
        Also return the fragments (``(seg, fragments)``), or the fragments and the full
        :class:`mire.segment.Agglomeration` with region graph and merge history
        (``(seg, fragments, result)``).

    Returns
    -------
    uint32 label array (or a list of them when ``threshold`` is a sequence).

    Examples
    --------
    >>> from mire.segment import boundaries
    >>> cells = np.repeat(np.arange(1, 5), 8)[None, :].repeat(12, axis=0)   # 4 bands of 8 px
    >>> seg = segment_boundaries(boundaries(cells, background=None), threshold=0.5, min_distance=2)
    >>> len(np.unique(seg))
    4
    """
    b = check_boundary_map(boundary_map)
    single, thr = _thresholds(threshold)
    frag = seeded_watershed(b, threshold=_seed_threshold(seed_threshold, b), min_distance=min_distance,
                            sigma=sigma, alpha=alpha, per_slice=per_slice, sampling=sampling)
    thr = _resolve_auto(thr, frag, scoring=scoring, per_slice=per_slice, boundary=b)
    # per_slice: slices are segmented independently, so only in-plane faces may merge fragments
    result = agglomerate(frag, boundary=b, thresholds=thr, scoring=scoring, per_slice=per_slice)
    return _finish(frag, result, single, min_size, {"boundary": b}, return_fragments, return_result, per_slice)


def segment_affinities(affs, *, thresholds=(0.5,), seed_threshold: float = 0.5, min_distance: float = 3.0,
                       sigma: float = 1.0, alpha: float = 0.9, sampling=None, scoring: str = "median",
                       min_size: int = 0, reduce: str = "max", return_fragments: bool = False,
                       return_result: bool = False):
    """Segment an affinity volume: watershed on the affinity boundary map, agglomeration on affinities.

    Parameters
    ----------
    affs : (C, Z, Y, X) or (C, Y, X) float array in [0, 1]
        Affinities, nearest-neighbour channels first (long-range channels, if any, are not used).
    thresholds : float, "auto" or sequence of them
        Thresholds on ``1 - affinity`` (waterz's convention); ``"auto"`` as in :func:`segment_boundaries`.
    reduce : {"max", "mean"}
        How the fragments' boundary map is made from the nearest-neighbour affinities (see
        :func:`mire.segment.affinities_to_boundaries`): ``"max"`` marks every voxel next to a cut
        edge, so seeds keep off all cuts; ``"mean"`` is smoother on noisy predictions.
    scoring : str
        Edge score; default the median of ``1 - affinity`` (waterz's ``HistogramQuantileAffinity<50>``;
        mire's ``quantile:q`` of ``1 - affinity`` is waterz's ``100 (1 - q)`` affinity percentile).
    other parameters
        As in :func:`segment_boundaries`.

    Returns
    -------
    uint32 label array, or a list of them when ``thresholds`` is a sequence.

    Examples
    --------
    >>> from mire.segment import affinities
    >>> cells = np.repeat(np.arange(1, 5), 8)[None, :].repeat(12, axis=0)
    >>> affs, _ = affinities(cells)
    >>> seg = segment_affinities(affs, thresholds=0.5, min_distance=2)
    >>> len(np.unique(seg))
    4
    """
    a = check_image(affs, name="affinities", ndim=(3, 4))
    a = np.asarray(a, dtype=np.float32)
    if a.min() < -1e-6 or a.max() > 1 + 1e-6:
        raise ValueError(f"affinities must be in [0, 1], got values in [{a.min():.4g}, {a.max():.4g}]")
    single, thr = _thresholds(thresholds)
    b = affinities_to_boundaries(a, reduce=reduce)
    frag = seeded_watershed(b, threshold=_seed_threshold(seed_threshold, b), min_distance=min_distance,
                            sigma=sigma, alpha=alpha, sampling=sampling)
    thr = _resolve_auto(thr, frag, scoring=scoring, affinities=a)
    result = agglomerate(frag, affinities=a, thresholds=thr, scoring=scoring)
    return _finish(frag, result, single, min_size, {"affinities": a}, return_fragments, return_result)


def baseline_boundary_map(raw, *, sigma: float = 1.0, membranes: str = "dark", per_slice: bool = False,
                          percentiles=(1.0, 99.0)) -> np.ndarray:
    """A boundary map without learning: the smoothed raw image, rescaled so membranes are 1.

    Parameters
    ----------
    raw : (Z, Y, X) or (Y, X) array
        EM image.
    sigma : float
        Gaussian smoothing (voxels) that removes the noise and vesicle texture inside cells.
    membranes : {"dark", "bright"}
        Membrane polarity: stained membranes are dark in most EM (heavy-metal staining).
    per_slice : bool
        Smooth each z-slice in 2D (anisotropic ssTEM).
    percentiles : (low, high)
        Intensity percentiles mapped to 0 and 1 (robust to a few saturated voxels).
    """
    img = check_image(raw, name="raw image", ndim=(2, 3)).astype(np.float32)
    if membranes not in ("dark", "bright"):
        raise ValueError(f"membranes must be 'dark' or 'bright', got {membranes!r}")
    if sigma > 0:
        s = (0,) + (sigma,) * (img.ndim - 1) if per_slice and img.ndim == 3 else sigma
        img = ndi.gaussian_filter(img, s)
    lo, hi = np.percentile(img, percentiles)
    if hi <= lo:
        raise ValueError("raw image is constant: there is nothing to segment")
    b = np.clip((img - lo) / (hi - lo), 0, 1)
    return (1 - b if membranes == "dark" else b).astype(np.float32)


def baseline_segmentation(raw, *, sigma: float = 1.0, membranes: str = "dark", threshold=0.5,
                          seed_threshold: float = 0.5, min_distance: float = 3.0, per_slice: bool = False,
                          scoring: str = "mean", min_size: int = 0, **kwargs):
    """No-learning baseline: watershed + agglomeration on the smoothed raw image.

    ``boundary = 1 - rescaled(gaussian(raw, sigma))`` for dark membranes (see
    :func:`baseline_boundary_map`), then :func:`segment_boundaries` with the other options.

    Examples
    --------
    >>> img = np.ones((40, 40)); img[:, 19:21] = 0       # one dark membrane
    >>> seg = baseline_segmentation(img, sigma=0.5, min_distance=3)
    >>> np.unique(seg[:, :18]).size, np.unique(seg[:, 22:]).size, bool(seg[0, 0] != seg[0, -1])
    (1, 1, True)
    """
    b = baseline_boundary_map(raw, sigma=sigma, membranes=membranes, per_slice=per_slice)
    return segment_boundaries(b, threshold=threshold, seed_threshold=seed_threshold, min_distance=min_distance,
                              per_slice=per_slice, scoring=scoring, min_size=min_size, **kwargs)
