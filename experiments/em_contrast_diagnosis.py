"""Why the label-free segmentation of the neuroproof cube moves under a monotone contrast change (issue #17).

For the cube as is and its gamma 0.5 / 2 copies (the shipped model's affinities, cached), this reports each stage of
the label-free pipeline -- the seed threshold and fragments, the auto threshold, the edge scores near it -- and
swaps one stage at a time between the as-is run and a gamma run, so the ARAND to the as-is segmentation can be laid
at the door of the stage that moved. No ground truth: everything is segmentation vs segmentation.

It also prints the *fragility* of the segmentation at a threshold t: the ARAND between the segmentations at
``t - delta`` and ``t + delta`` (nested, so it follows from the merge history and the fragment sizes alone), i.e. how
much the segmentation would move if every merge decided within ``delta`` of t went the other way.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_contrast_diagnosis.py --out em_contrast_diagnosis
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"
CACHE = Path.home() / ".cache" / "mire" / "em17" / "contrast"
GAMMAS = (1.0, 0.5, 2.0)
TOP = 0.82  # agglomerate once up to past AUTO_RANGE's top; any lower threshold is replayed from the history


def affinities(g):
    """The shipped model's affinities of the neuroproof cube after gamma ``g`` (cached: prediction is the slow part)."""
    f = CACHE / f"np_affs_g{g}.npy"
    if not f.exists():
        from em_contrast_invariance import gamma

        from mire.io import imread
        from mire.segment import Segmenter

        img = imread(DATA / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif")
        a = Segmenter.load("fibsem3d-affinity").predict(img if g == 1.0 else gamma(img, g))
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(CACHE / ".tmp.npy", a)
        (CACHE / ".tmp.npy").replace(f)
    return np.load(f)


def fragments(a):
    """The pipeline's fragments (segment_affinities with the shipped post-processing: seeds 'auto', spacing 3)."""
    from mire.segment.pipeline import auto_seed_threshold
    from mire.segment.watershed import affinities_to_boundaries, seeded_watershed

    b = affinities_to_boundaries(a, reduce="max")
    st = auto_seed_threshold(b)
    return seeded_watershed(b, threshold=st, min_distance=3.0, sigma=1.0, alpha=0.9), st


def s_curve(frag, history):
    """(scores, S) with S[k] = sum of squared segment sizes after the first k merges (S[0]: the fragments)."""
    sizes = np.bincount(frag.ravel()).astype(np.float64)
    parent = np.arange(len(sizes))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    s = [float(np.sum(sizes[1:] ** 2))]
    for a, b, _ in history.tolist():
        ra, rb = find(int(a)), find(int(b))
        s.append(s[-1] + 2 * sizes[ra] * sizes[rb])
        parent[rb] = ra
        sizes[ra] += sizes[rb]
    return history["score"].astype(np.float64), np.array(s), int(np.count_nonzero(frag))


def fragility(scores, S, n, t, delta):
    """ARAND between the segmentations at t - delta and t + delta (nested: (S_c - S_f) / (S_c + S_f - 2 n))."""
    lo = S[np.searchsorted(scores, t - delta, side="left")]
    hi = S[np.searchsorted(scores, t + delta, side="left")]
    return float((hi - lo) / (hi + lo - 2 * n))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    from mire.metrics import adapted_rand_error
    from mire.segment.adapt import auto_threshold
    from mire.segment.agglomerate import agglomerate, region_graph, segmentation_at

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    affs = {g: affinities(g) for g in GAMMAS}
    frag, seed_t, thr, hist = {}, {}, {}, {}
    rec = {"stages": {}, "swaps": {}, "fixed_threshold": {}, "fragility": {}}
    for g in GAMMAS:
        frag[g], seed_t[g] = fragments(affs[g])
        res = agglomerate(frag[g], affinities=affs[g], thresholds=[TOP], scoring="median")
        # the shipped auto threshold: contact-weighted Otsu of the fragment graph's exact median scores
        g2 = region_graph(frag[g], affinities=affs[g], quantiles=(0.5,))
        sc, cnt = g2.quantiles[0.5], g2.count
        thr[g] = auto_threshold(sc, cnt)
        hist[g] = res.history
        t = thr[g]
        hs = res.history["score"]
        st = {"seed_threshold": seed_t[g], "fragments": int(frag[g].max()), "edges": int(g2.n_edges),
              "auto_threshold": t, "merges_below_t": int(np.sum(hs < t))}
        for d in (0.01, 0.02):
            near = np.abs(sc - t) <= d
            st[f"graph_edges_within_{d}"] = int(near.sum())
            st[f"graph_contact_share_within_{d}"] = float(cnt[near].sum() / cnt.sum())
            st[f"merges_within_{d}"] = int(np.sum(np.abs(hs - t) <= d))
        sco, S, n = s_curve(frag[g], res.history)
        for d in (0.01, 0.02):
            st[f"fragility_{d}"] = fragility(sco, S, n, t, d)
        rec["stages"][str(g)] = st
        rec["fragility"][str(g)] = {f"{x:.3f}": fragility(sco, S, n, x, 0.02) for x in np.arange(0.05, 0.801, 0.01)}
        print(g, json.dumps(st), flush=True)
    # the fragility formula against the metric, once
    sco, S, n = s_curve(frag[1.0], hist[1.0])
    t = thr[1.0]
    rec["fragility_check"] = {"formula": fragility(sco, S, n, t, 0.02), "adapted_rand_error": float(adapted_rand_error(
        segmentation_at(frag[1.0], hist[1.0], t - 0.02), segmentation_at(frag[1.0], hist[1.0], t + 0.02))[0])}
    print("fragility check", rec["fragility_check"], flush=True)

    ref = segmentation_at(frag[1.0], hist[1.0], thr[1.0])
    for g in (0.5, 2.0):
        sw = {}
        # everything from the gamma run (what em_contrast_invariance.py measures)
        sw["all_from_gamma"] = float(adapted_rand_error(ref, segmentation_at(frag[g], hist[g], thr[g]))[0])
        # as-is fragments and scores, the gamma run's threshold only
        sw["threshold_only"] = float(adapted_rand_error(ref, segmentation_at(frag[1.0], hist[1.0], thr[g]))[0])
        # as-is fragments and threshold, the gamma affinities' edge scores only
        r = agglomerate(frag[1.0], affinities=affs[g], thresholds=[TOP], scoring="median")
        sw["edge_scores_only"] = float(adapted_rand_error(ref, segmentation_at(frag[1.0], r.history, thr[1.0]))[0])
        # the gamma run's fragments, the as-is affinities and threshold
        r2 = agglomerate(frag[g], affinities=affs[1.0], thresholds=[TOP], scoring="median")
        sw["fragments_only"] = float(adapted_rand_error(ref, segmentation_at(frag[g], r2.history, thr[1.0]))[0])
        sw["fragments_arand"] = float(adapted_rand_error(frag[1.0], frag[g])[0])
        rec["swaps"][str(g)] = sw
        print(g, "swaps", json.dumps(sw), flush=True)
        # the same thresholds on both: is the instability specific to the threshold chosen?
        rec["fixed_threshold"][str(g)] = {
            f"{x:.2f}": float(adapted_rand_error(segmentation_at(frag[1.0], hist[1.0], x),
                                                 segmentation_at(frag[g], hist[g], x))[0])
            for x in np.arange(0.25, 0.601, 0.025)}
        print(g, "fixed", json.dumps(rec["fixed_threshold"][str(g)]), flush=True)
    rec["seconds"] = round(time.perf_counter() - t0)
    rec["argv"] = " ".join(sys.argv)
    if args.out:
        tmp = RESULTS / f".{args.out}.json.tmp"
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(RESULTS / f"{args.out}.json")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "experiments"))
    sys.exit(main())
