"""Seeds by dynamic (issue #17, task em7): present label-free defaults D vs R = min_distance "dynamic" + mean
scoring (and R0 = min_distance "dynamic" alone, reported). See experiments/results/em_dynamic_seeds_gate.md.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_dynamic_seeds.py design-gala   # gala test
    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_dynamic_seeds.py design-np     # neuroproof
    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_dynamic_seeds.py gate          # gala train + snemi3d mini
    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_dynamic_seeds.py timing        # seed step, 250^3

One JSON line per row, appended to experiments/results/em_dynamic_seeds.jsonl.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)
from em_adaptation import DATA, RESULTS, load_volumes, scores
from em_contrast_invariance import gamma
from mire.metrics import adapted_rand_error

VARIANTS = {"D": {}, "R": dict(scoring="mean", min_distance="dynamic"), "R0": dict(min_distance="dynamic")}


def emit(row):
    print(json.dumps(row), flush=True)
    with open(RESULTS / "em_dynamic_seeds.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def model_volume(name, raw, gt, phase):
    from mire.segment import Segmenter

    m = Segmenter.load("fibsem3d-affinity")
    for var, kw in VARIANTS.items():
        t = time.time()
        seg = m.segment(raw, **kw)
        row = {"phase": phase, "volume": name, "variant": var, "threshold": float(m.last_settings["threshold"]),
               "segments": int(np.count_nonzero(np.unique(seg)))}
        if gt is not None:
            row.update(scores(gt, seg, False))
        for g in (0.5, 2.0):
            row[f"gamma_{g}_arand"] = float(adapted_rand_error(seg, m.segment(gamma(raw, g), **kw))[0])
        row["seconds"] = round(time.time() - t, 1)
        emit(row)


def snemi(phase):
    from mire.io import imread
    from mire.segment.pipeline import segment_boundaries

    d = DATA / "snemi3d_mini_labels_gala"
    prob, gt = imread(d / "train-probabilities.tif"), imread(d / "train-labels.tif").astype(np.uint32)
    sampling = (5.0, 1.0, 1.0)   # SNEMI3D AC4: 6 x 6 x 30 nm (README); crop / downsampling undocumented
    base = dict(threshold="auto", seed_threshold="auto", scoring="mean", sampling=sampling)
    for var, kw in {"D": dict(min_distance=3.0), "R": dict(min_distance="dynamic")}.items():
        t = time.time()
        seg = lambda p: segment_boundaries(1 - p.astype(np.float32) / 255, **base, **kw)   # noqa: E731
        s = seg(prob)
        row = {"phase": phase, "volume": "snemi3d-mini", "variant": var, **scores(gt, s, False),
               "segments": int(np.count_nonzero(np.unique(s)))}
        for g in (0.5, 2.0):   # contrast: gamma on the 8-bit map itself (no raw EM ships)
            row[f"gamma_{g}_arand"] = float(adapted_rand_error(s, seg(gamma(prob, g)))[0])
        row["seconds"] = round(time.time() - t, 1)
        emit(row)


def main() -> int:
    what = sys.argv[1]
    if what == "design-gala":
        v = load_volumes(["gala-test"])["gala-test"]
        model_volume("gala-test", v["raw"], v["gt"], "design")
    elif what == "design-np":
        from mire.io import imread

        img = imread(DATA / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif")
        model_volume("neuroproof", img, None, "design")
    elif what == "timing":   # the seed step on a synthetic 250^3 map (cells: smoothed noise, 20 % membrane)
        from scipy import ndimage as ndi

        from mire.segment.watershed import distance_seeds

        rng = np.random.default_rng(0)
        b = ndi.gaussian_filter(rng.random((250, 250, 250)).astype(np.float32), 4)
        b = (b > np.quantile(b, 0.8)).astype(np.float32)
        for md in (3.0, "dynamic", 3.0, "dynamic"):
            t = time.perf_counter()
            seeds, _ = distance_seeds(b, min_distance=md)
            emit({"phase": "gate", "volume": "synthetic-250", "min_distance": md,
                  "seconds": round(time.perf_counter() - t, 2), "seeds": int(seeds.max())})
    elif what == "gate":
        v = load_volumes(["gala-train"])["gala-train"]
        model_volume("gala-train", v["raw"], v["gt"], "gate")
        snemi("gate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
