"""The label-free settings under a monotone contrast change, on real volumes (issue #17's test, measured).

tests/segment/test_adapt.py checks ARAND <= 0.02 between the segmentations of a synthetic volume and its gamma 0.5 / 2
copies. This prints the same ARAND (segmentation vs segmentation, no ground truth needed) for a model on the gala
test volume and on the neuroproof cube, and the test's synthetic volume, so the margin under the 0.02 bound is known.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/em_contrast_invariance.py [--model NAME] [--out NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"


def gamma(img, g):
    return np.clip(255 * (img.astype(np.float64) / 255) ** g, 0, 255).astype(np.uint8)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fibsem3d-affinity")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    from mire.data import em_cells
    from mire.io import imread
    from mire.metrics import adapted_rand_error
    from mire.segment import Segmenter

    torch.set_num_threads(1)
    vols = {"synthetic em_cells (24,64,64) seed 3 (the test's)": em_cells((24, 64, 64), seed=3)[0],
            "gala test": imread(DATA / "gala_fibsem_neurons" / "test-image.tif"),
            "neuroproof 250^3": imread(DATA / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif")}
    m = Segmenter.load(args.model)
    rows = []
    for name, img in vols.items():
        a, pa = m.segment(img, return_probabilities=True)
        r = {"volume": name, "threshold": float(m.last_settings["threshold"]), "segments": int(np.count_nonzero(np.unique(a)))}
        x = m._matched_input(img).astype(np.float64)
        for g in (0.5, 2.0):
            b, pb = m.segment(gamma(img, g), return_probabilities=True)
            r[f"arand_gamma_{g}"] = float(adapted_rand_error(a, b)[0])
            r[f"threshold_gamma_{g}"] = float(m.last_settings["threshold"])
            r[f"segments_gamma_{g}"] = int(np.count_nonzero(np.unique(b)))
            # where the difference comes from: the matched network input (uint8 levels that gamma merges cannot be
            # told apart again) and the affinities
            r[f"input_max_diff_gamma_{g}"] = float(np.abs(x - m._matched_input(gamma(img, g))).max())
            d = np.abs(pa - pb)
            r[f"affinity_max_diff_gamma_{g}"], r[f"affinity_mean_diff_gamma_{g}"] = float(d.max()), float(d.mean())
        rows.append(r)
        print(json.dumps(r), flush=True)
    if args.out:
        tmp = RESULTS / f".{args.out}.json.tmp"
        tmp.write_text(json.dumps({"model": args.model, "rows": rows, "argv": " ".join(sys.argv)}, indent=1))
        tmp.replace(RESULTS / f"{args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
