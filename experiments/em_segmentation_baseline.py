"""EM segmentation without learning: what watershed + agglomeration reach on real data.

Three tables (ARAND = adapted Rand error, SNEMI3D / ISBI convention, ground-truth 0 ignored;
VOI split / merge in bits, ground-truth 0 ignored as well; lower is better everywhere):

1. gala FIB-SEM (``gala_fibsem_neurons``): the no-learning baseline (seeded watershed + mean
   agglomeration on the smoothed raw image). Its two parameters (smoothing sigma, threshold) are
   chosen on the *train* volume by ARAND; the *test* volume is reported at that choice, and over the
   whole threshold sweep for transparency.
2. snemi-mini (``snemi3d_mini_labels_gala``): agglomeration of the given ``train-fragments`` driven by
   ``1 - train-probabilities / 255`` (the map is high inside cells), mean and 75 % quantile scoring,
   per threshold, and the fragments alone. No held-out split exists: this measures post-processing.
3. ISBI 2012 (``isbi2012_em_membranes``) slices 20-29, 2D per slice: instance ground truth = the
   4-connected components of the label-255 (cell) regions of each slice; scores are per slice, then
   averaged. The baseline on the smoothed raw image (parameters chosen on slices 0-19) and the same
   pipeline on the ground-truth membrane map (an upper bound of the post-processing alone).

Run:  nice -n 10 python experiments/em_segmentation_baseline.py
Writes experiments/results/em_segmentation_baseline.{md,json}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from mire.io import imread
from mire.metrics import adapted_rand_error, variation_of_information
from mire.segment import agglomerate, baseline_boundary_map, segment_boundaries

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
# the raw-image baseline's boundary scores sit high (cytoplasm texture), so its sweep goes further up
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
SNEMI_THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def scores(gt, seg) -> dict:
    err, prec, rec = adapted_rand_error(gt, seg)
    split, merge = variation_of_information(gt, seg, ignore_labels=(0,))
    return {"arand": err, "precision": prec, "recall": rec, "voi_split": split, "voi_merge": merge,
            "voi": split + merge, "n_segments": int(np.count_nonzero(np.unique(seg)))}


def row(name, s) -> str:
    return (f"| {name} | {s['arand']:.4f} | {s['precision']:.4f} | {s['recall']:.4f} | {s['voi_split']:.3f} | "
            f"{s['voi_merge']:.3f} | {s['voi']:.3f} | {s['n_segments']} |")


HEADER = ("| setting | ARAND | precision | recall | VOI split | VOI merge | VOI | segments |\n"
          "|---|---|---|---|---|---|---|---|")


def gala(out: list, record: dict) -> None:
    folder = DATA / "gala_fibsem_neurons"
    train_raw, train_gt = imread(folder / "train-image.tif"), imread(folder / "train-gt.tif")
    test_raw, test_gt = imread(folder / "test-image.tif"), imread(folder / "test-gt.tif")
    best = None
    tune = []
    for sigma in (1.0, 2.0, 3.0):
        segs = segment_boundaries(baseline_boundary_map(train_raw, sigma=sigma), threshold=THRESHOLDS)
        for t, seg in zip(THRESHOLDS, segs):
            s = scores(train_gt, seg)
            tune.append({"sigma": sigma, "threshold": t, **s})
            if best is None or s["arand"] < best[2]["arand"]:
                best = (sigma, t, s)
    sigma, thr, _ = best
    t0 = time.perf_counter()
    segs = segment_boundaries(baseline_boundary_map(test_raw, sigma=sigma), threshold=THRESHOLDS)
    seconds = time.perf_counter() - t0
    out.append(f"\n## 1. gala FIB-SEM test volume {test_raw.shape}: no-learning baseline\n")
    out.append(f"Chosen on the train volume: sigma = {sigma}, threshold = {thr} "
               f"(train ARAND {best[2]['arand']:.4f}). Whole sweep on test: {seconds:.1f} s.\n")
    out.append(HEADER)
    test_rows = []
    for t, seg in zip(THRESHOLDS, segs):
        s = scores(test_gt, seg)
        test_rows.append({"threshold": t, **s})
        out.append(row(f"baseline sigma {sigma}, t {t}{'  (chosen)' if t == thr else ''}", s))
    record["gala"] = {"chosen": {"sigma": sigma, "threshold": thr}, "train_sweep": tune, "test": test_rows,
                      "seconds_test_sweep": seconds}


def snemi(out: list, record: dict) -> None:
    folder = DATA / "snemi3d_mini_labels_gala"
    frag = imread(folder / "train-fragments.tif")
    gt = imread(folder / "train-labels.tif")
    boundary = 1.0 - imread(folder / "train-probabilities.tif").astype(np.float32) / 255
    out.append(f"\n## 2. snemi-mini {frag.shape}: agglomeration of the given fragments\n")
    out.append("Boundary = 1 - train-probabilities / 255. Ground truth has no 0 label (every voxel scored).\n")
    out.append(HEADER)
    rows = [{"setting": "fragments alone", **scores(gt, frag)}]
    out.append(row("fragments alone", rows[0]))
    for scoring in ("mean", "quantile:0.75"):
        t0 = time.perf_counter()
        res = agglomerate(frag, boundary=boundary, thresholds=SNEMI_THRESHOLDS, scoring=scoring)
        seconds = time.perf_counter() - t0
        for t, seg in zip(SNEMI_THRESHOLDS, res.segmentations):
            s = scores(gt, seg)
            rows.append({"setting": f"{scoring} t {t}", "seconds": seconds, **s})
            out.append(row(f"{scoring}, t {t}", s))
        out.append(f"| ({scoring}: {len(res.history)} merges, {res.graph.n_edges} edges, {seconds:.2f} s "
                   f"for all thresholds) | | | | | | | |")
    record["snemi"] = rows


def _isbi_instances(labels):
    """Per-slice connected components of the cell (255) regions; 0 = membrane."""
    gt = np.zeros(labels.shape, np.int64)
    offset = 0
    for z in range(labels.shape[0]):
        cc, n = ndi.label(labels[z] > 127)
        gt[z] = np.where(cc > 0, cc + offset, 0)
        offset += n
    return gt


def _per_slice_scores(gt, seg) -> dict:
    per = [scores(gt[z], seg[z]) for z in range(gt.shape[0])]
    return {k: float(np.mean([p[k] for p in per])) for k in per[0]}


def isbi(out: list, record: dict) -> None:
    folder = DATA / "isbi2012_em_membranes"
    raw = imread(folder / "train-volume.tif")
    labels = imread(folder / "train-labels.tif")
    gt = _isbi_instances(labels)
    train, test = slice(0, 20), slice(20, 30)
    best = None
    for sigma in (1.0, 2.0, 3.0):
        b = baseline_boundary_map(raw[train], sigma=sigma, per_slice=True)
        segs = segment_boundaries(b, threshold=THRESHOLDS, per_slice=True, min_distance=5)
        for t, seg in zip(THRESHOLDS, segs):
            s = _per_slice_scores(gt[train], seg)
            if best is None or s["arand"] < best[2]["arand"]:
                best = (sigma, t, s)
    sigma, thr, _ = best
    out.append(f"\n## 3. ISBI 2012 slices 20-29 (2D per slice, 512 x 512): baseline and upper bound\n")
    out.append(f"Baseline chosen on slices 0-19: sigma = {sigma}, threshold = {thr} "
               f"(train ARAND {best[2]['arand']:.4f}). Scores are means over the 10 test slices.\n")
    out.append(HEADER)
    rows = []
    t0 = time.perf_counter()
    segs = segment_boundaries(baseline_boundary_map(raw[test], sigma=sigma, per_slice=True), threshold=THRESHOLDS,
                              per_slice=True, min_distance=5)
    secs = time.perf_counter() - t0
    for t, seg in zip(THRESHOLDS, segs):
        s = _per_slice_scores(gt[test], seg)
        rows.append({"setting": f"baseline t {t}", **s})
        out.append(row(f"baseline (smoothed raw), t {t}{'  (chosen)' if t == thr else ''}", s))
    membrane = (labels[test] <= 127).astype(np.float32)
    segs = segment_boundaries(membrane, threshold=THRESHOLDS, per_slice=True, min_distance=5)
    for t, seg in zip(THRESHOLDS, segs):
        s = _per_slice_scores(gt[test], seg)
        rows.append({"setting": f"GT membranes t {t}", **s})
        out.append(row(f"GT membrane map (upper bound), t {t}", s))
    out.append(f"\nBaseline sweep on the 10 test slices: {secs:.1f} s.")
    record["isbi"] = {"chosen": {"sigma": sigma, "threshold": thr}, "test": rows}


def main() -> int:
    needed = ["gala_fibsem_neurons", "snemi3d_mini_labels_gala", "isbi2012_em_membranes"]
    missing = [n for n in needed if not (DATA / n).exists()]
    if missing:
        print(f"shared data not found under {DATA}: {missing}", file=sys.stderr)
        return 1
    out = ["# EM segmentation without learning (mire.segment)\n",
           "ARAND: adapted Rand error (1 - Rand F-score, GT 0 ignored). VOI split / merge: conditional entropies "
           "in bits, GT 0 ignored. Lower is better."]
    record: dict = {}
    t0 = time.perf_counter()
    for part in (gala, snemi, isbi):
        part(out, record)
        print(f"[{part.__name__} done at {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    record["total_seconds"] = time.perf_counter() - t0
    out.append(f"\nTotal run time: {record['total_seconds']:.0f} s (2 shared CPU cores).")
    text = "\n".join(out)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "em_segmentation_baseline.md").write_text(text + "\n")
    (RESULTS / "em_segmentation_baseline.json").write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
