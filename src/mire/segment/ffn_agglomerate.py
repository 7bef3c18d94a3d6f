"""FFN agglomeration: fix an over-segmentation (e.g. the affinity pipeline's) with a flood-filling network.

For every pair of face-adjacent segments with at least ``min_contact`` contact faces, a
subvolume of one FOV plus one move step on each side is cut around the middle of their contact.
The FFN is run there twice, from a seed inside each segment (its most interior voxel within the
central FOV), on a fresh canvas and for at most ``max_evals`` FOV evaluations. Inside the central
FOV, the run from ``a`` recovers a fraction ``f_ab`` of ``b``'s voxels and the run from ``b`` a
fraction ``f_ba`` of ``a``'s. The two segments are merged when both runs agree that they are one
object: ``min(f_ab, f_ba) >= agreement`` (Januszewski et al. 2018 merge when the two runs
recover each other's segments). Each run's object is the connected piece around its seed, so a
mask that leaks across a membrane without connecting does not count.

Merges are applied with :class:`mire.segment.Proofreader` (each one ``{"op": "merge", ...}`` in
its log), so they can be undone, saved and replayed with ``mire proofread`` like manual edits.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from mire.segment.targets import check_labels

__all__ = ["ffn_agglomerate", "ffn_pair_scores", "apply_merges", "contact_pairs"]


def contact_pairs(segmentation):
    """Face-adjacent pairs of non-zero segments, their number of contact faces and a contact voxel.

    Returns ``(pairs, counts, points)``: ``pairs`` (M, 2) with ``a < b``, sorted; ``points`` (M, ndim),
    the lower voxel of the pair's middle contact face (in C order of the faces along each axis).

    Examples
    --------
    >>> pairs, counts, points = contact_pairs(np.array([[1, 1, 2], [1, 3, 2]]))
    >>> pairs.tolist(), counts.tolist()
    ([[1, 2], [1, 3], [2, 3]], [1, 2, 1])
    """
    seg = check_labels(segmentation, name="segmentation").astype(np.int64)
    keys, where = [], []
    n = int(seg.max()) + 1
    for d in range(seg.ndim):
        lo = [slice(None)] * seg.ndim
        hi = [slice(None)] * seg.ndim
        lo[d], hi[d] = slice(None, -1), slice(1, None)
        u, v = seg[tuple(lo)], seg[tuple(hi)]
        sel = (u != v) & (u > 0) & (v > 0)
        a, b = np.minimum(u[sel], v[sel]), np.maximum(u[sel], v[sel])
        keys.append(a * n + b)
        where.append(np.stack(np.nonzero(sel), axis=1))
    if not keys or sum(k.size for k in keys) == 0:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros((0, seg.ndim), np.int64)
    key = np.concatenate(keys)
    pts = np.concatenate(where)
    order = np.argsort(key, kind="stable")
    key, pts = key[order], pts[order]
    uniq, start, counts = np.unique(key, return_index=True, return_counts=True)
    mid = pts[start + counts // 2]
    return np.stack([uniq // n, uniq % n], axis=1), counts, mid


def _run_from(cv, seed, *, max_evals, segment_threshold):
    box, padded_seed, _ = cv.fill(seed, max_evals=max_evals)
    mask = np.zeros(cv.owner.shape, bool)
    mask[box] = cv.object_mask(box, padded_seed, segment_threshold)
    return mask[cv.inner]


def ffn_agglomerate(filler, image, segmentation, *, normalization=None, agreement: float | None = None,
                    min_contact: int | None = None, max_evals: int | None = None, proofreader=None,
                    device=None, progress: bool = False, return_decisions: bool = False):
    """Merge the segments of ``segmentation`` that FFN runs from both sides say are one object.

    Parameters
    ----------
    filler : :class:`mire.segment.FloodFiller`
    image : array
        Raw EM of ``segmentation``'s shape.
    segmentation : int array
        The over-segmentation (0 = unlabelled, never merged).
    agreement, min_contact, max_evals
        Default the model's ``metadata["agglomeration"]`` (0.6, 20, 8).
    proofreader : :class:`mire.segment.Proofreader`, optional
        Record the merges in this proofreader's history (its ``seg`` must be ``segmentation``);
        default a new one.
    return_decisions : bool
        Also return one dict per pair examined: ``ids``, ``contact``, ``f_ab``, ``f_ba``, ``merged``.

    Returns
    -------
    proofreader : :class:`mire.segment.Proofreader`
        ``.seg`` is the agglomerated segmentation, ``.log`` the merges.
    """
    opts = dict(filler.metadata.get("agglomeration") or {})
    agreement = float(opts.get("agreement", 0.6) if agreement is None else agreement)
    decisions = ffn_pair_scores(filler, image, segmentation, normalization=normalization, min_contact=min_contact,
                                max_evals=max_evals, device=device, progress=progress)
    pr = apply_merges(segmentation, decisions, agreement=agreement, proofreader=proofreader)
    return (pr, decisions) if return_decisions else pr


def apply_merges(segmentation, decisions, *, agreement: float, proofreader=None):
    """Merge every pair of ``decisions`` (:func:`ffn_pair_scores`) with ``min(f_ab, f_ba) >= agreement``
    through a :class:`mire.segment.Proofreader` (new, or the one given); sets each decision's ``merged``."""
    from mire.segment.proofread import Proofreader

    if not 0 < agreement <= 1:
        raise ValueError(f"agreement must be in (0, 1], got {agreement}")
    seg = check_labels(segmentation, name="segmentation")
    if proofreader is None:
        proofreader = Proofreader(seg)
    elif proofreader.seg.shape != seg.shape:
        raise ValueError("the proofreader edits a segmentation of another shape")
    parent: dict[int, int] = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for d in decisions:
        d["merged"] = bool(min(d["f_ab"], d["f_ba"]) >= agreement)
        if d["merged"]:
            ra, rb = find(d["ids"][0]), find(d["ids"][1])
            if ra != rb:
                target = proofreader.merge([ra, rb])
                parent[ra] = parent[rb] = target
                parent.setdefault(target, target)
    return proofreader


def ffn_pair_scores(filler, image, segmentation, *, normalization=None, min_contact: int | None = None,
                    max_evals: int | None = None, device=None, progress: bool = False) -> list[dict]:
    """The two FFN runs of every adjacent pair: ``[{"ids", "contact", "f_ab", "f_ba"}, ...]`` (see the module)."""
    import torch

    from mire._progress import progress_bar
    from mire.segment.ffn import _Canvas

    opts = dict(filler.metadata.get("agglomeration") or {})
    min_contact = int(opts.get("min_contact", 20) if min_contact is None else min_contact)
    max_evals = int(opts.get("max_evals", 8) if max_evals is None else max_evals)
    seg = check_labels(segmentation, name="segmentation")
    img = filler.normalize(image, normalization)
    if img.shape != seg.shape:
        raise ValueError(f"segmentation shape {seg.shape} does not match image shape {img.shape}")
    inf = filler.metadata["inference"]
    device = torch.device(device) if device is not None else torch.device("cpu")
    filler.model.to(device).eval()
    fov = np.asarray(filler.model.config["fov"])
    half = fov // 2
    reach = half + np.asarray(filler.delta)
    pairs, counts, points = contact_pairs(seg)
    keep = counts >= min_contact
    pairs, counts, points = pairs[keep], counts[keep], points[keep]
    decisions = []
    with progress_bar(progress, len(pairs), "FFN agglomeration") as bar:
        for (a, b), n, p in zip(pairs.tolist(), counts.tolist(), points):
            bar.advance()
            lo = np.maximum(p - reach, 0)
            hi = np.minimum(p + reach + 1, seg.shape)
            box = tuple(slice(int(x), int(y)) for x, y in zip(lo, hi))
            sub_seg, sub_img = seg[box], img[box]
            centre = tuple(slice(int(max(c - h - l, 0)), int(c + h + 1 - l)) for c, h, l in zip(p, half, lo))
            core = np.zeros(sub_seg.shape, bool)
            core[centre] = True
            seeds, masks = [], []
            for s in (a, b):
                inside = (sub_seg == s) & core
                if not inside.any():
                    break
                dist = ndi.distance_transform_edt(sub_seg == s)
                dist[~inside] = -1
                seeds.append(np.unravel_index(int(np.argmax(dist)), sub_seg.shape))
                masks.append(inside)
            if len(seeds) < 2:
                continue
            cv = _Canvas(filler.model, sub_img, delta=filler.delta, move_threshold=inf["move_threshold"],
                         device=device)
            run_a = _run_from(cv, seeds[0], max_evals=max_evals, segment_threshold=inf["segment_threshold"])
            run_b = _run_from(cv, seeds[1], max_evals=max_evals, segment_threshold=inf["segment_threshold"])
            decisions.append({"ids": [a, b], "contact": n, "f_ab": float((run_a & masks[1]).sum() / masks[1].sum()),
                              "f_ba": float((run_b & masks[0]).sum() / masks[0].sum())})
    return decisions
