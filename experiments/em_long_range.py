"""Long-range affinities (Lee et al. 2017): agglomeration vs a mutex watershed with long-range repulsive edges.

Issue #17 item 1. For each model given, on gala test under em_adaptation.py's microscope changes:

- ``agglomeration``: the shipped pipeline with the label-free settings (``Segmenter.segment``), which reads
  the nearest-neighbour channels only;
- ``mws long-range``: a mutex watershed (Wolf et al. 2018) on the same fragments, parameter-free: every
  fragment pair in contact is an attractive edge weighted by its median nearest-neighbour affinity,
  every fragment pair that a long-range offset joins is a mutex (repulsive) edge weighted by the mean of
  ``1 - affinity`` over the voxel pairs of that offset (all long-range channels pooled); edges by decreasing
  weight, an attractive edge merges unless a mutex separates the clusters, a mutex edge forbids the merge.
- ``mws long-range + nearest``: the same, and every contact edge also a mutex edge weighted by its median
  ``1 - affinity`` (so a contact merges only if its affinity is above 0.5 before its own mutex is met;
  with a nearest-only model this is the only repulsion there is, em_adaptation_mws.md's "bias 0.5").

    nice -n 10 python experiments/em_long_range.py --models fibsem3d-affinity,/tmp/emlr/fibsem3d-affinity-lr
Writes experiments/results/em_long_range_mws.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
RESULTS = ROOT / "experiments" / "results"


def long_range_edges(frag, affs, offsets):
    """Fragment pairs joined by the long-range offsets (channels ``ndim`` on) and the mean ``1 - affinity``
    over their voxel pairs. Returns ``(uv (E, 2) int64 with u < v, weight (E,))``."""
    from mire.segment.targets import _pair_slices

    nd = frag.ndim
    us, vs, ws = [], [], []
    for c in range(nd, len(offsets)):
        src, dst = _pair_slices(offsets[c])
        u, v = frag[src].ravel(), frag[dst].ravel()
        sel = (u != v) & (u > 0) & (v > 0)
        us.append(np.minimum(u[sel], v[sel]))
        vs.append(np.maximum(u[sel], v[sel]))
        ws.append(1.0 - affs[c][src].ravel()[sel].astype(np.float64))
    if not us:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    u, v, w = (np.concatenate(x) for x in (us, vs, ws))
    key = u.astype(np.int64) * (int(frag.max()) + 1) + v
    uniq, inv = np.unique(key, return_inverse=True)
    total = np.bincount(inv, weights=w)
    count = np.bincount(inv)
    n = int(frag.max()) + 1
    return np.stack([uniq // n, uniq % n], 1), total / count


def run_model(name, shifts, log):
    from em_adaptation import load_volumes, microscope, mutex_watershed, scores

    from mire.segment import Segmenter, region_graph, segment_affinities

    v = load_volumes(["gala-test"])["gala-test"]
    rows = []
    for shift in shifts:
        m = Segmenter.load(name)
        raw, gt = microscope(v["raw"], v["gt"], shift)
        t0 = time.perf_counter()
        seg, a = m.segment(raw, return_probabilities=True)
        t_seg = time.perf_counter() - t0
        p = m._postprocess({})
        _, frag = segment_affinities(a, thresholds=p["threshold"], seed_threshold=p["seed_threshold"],
                                     min_distance=m._min_distance(p["min_distance"], raw), sigma=p["sigma"],
                                     scoring=p["scoring"] or "median", return_fragments=True)
        row = {"model": name, "shift": shift, "channels": int(a.shape[0]),
               "threshold": float(m.last_settings["threshold"]), "seconds": round(t_seg, 1),
               "agglomeration": scores(gt, seg, False)}
        g = region_graph(frag, affinities=a, quantiles=(0.5,))
        s = g.quantiles[0.5]  # median 1 - affinity of each contact
        n = int(frag.max()) + 1
        lr_uv, lr_w = long_range_edges(frag, a, m.offsets)
        variants = {"mws long-range + nearest": (np.concatenate([g.edges, g.edges, lr_uv]),
                                                 np.concatenate([1 - s, s, lr_w]),
                                                 np.r_[np.zeros(len(s), bool), np.ones(len(s), bool),
                                                       np.ones(len(lr_w), bool)])}
        if len(lr_w):
            variants = {"mws long-range": (np.concatenate([g.edges, lr_uv]), np.concatenate([1 - s, lr_w]),
                                           np.r_[np.zeros(len(s), bool), np.ones(len(lr_w), bool)]), **variants}
        for label, (uv, w, mx) in variants.items():
            t0 = time.perf_counter()
            lab = mutex_watershed(uv, w, mx, n)
            out = (lab[frag] * (frag > 0)).astype(np.int64)
            row[label] = dict(scores(gt, out, False), seconds=round(time.perf_counter() - t0, 1))
        row["edges"] = {"contact": int(len(s)), "long_range": int(len(lr_w))}
        log(f"{Path(name).name} {shift:8s} " + ", ".join(
            f"{k} {row[k]['arand']:.4f}" for k in row if isinstance(row[k], dict) and "arand" in row[k]))
        rows.append(row)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="fibsem3d-affinity", help="comma-separated names or path stems")
    p.add_argument("--shifts", default="none,contrast,noise,blur,coarser")
    p.add_argument("--out", default="em_long_range_mws")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for name in args.models.split(","):
        rows += run_model(name, args.shifts.split(","), print)
    kinds = ["agglomeration", "mws long-range", "mws long-range + nearest"]
    lines = ["# Agglomeration vs mutex watershed with long-range repulsive edges (gala test, label-free)", "",
             "ARAND (VOI split + merge), GT 0 ignored; the same fragments for every column of a row. "
             "See experiments/em_long_range.py for the edge weights.", "",
             "| model | change | channels | agglomeration | mws long-range | mws long-range + nearest |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]['arand']:.4f} ({r[k]['voi_split']:.2f} + {r[k]['voi_merge']:.2f})" if k in r else "n/a"
                 for k in kinds]
        lines.append(f"| {Path(r['model']).name} | {r['shift']} | {r['channels']} | " + " | ".join(cells) + " |")
    lines.append(f"\nCommand: `python {' '.join(sys.argv)}`")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{args.out}.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
