"""Neuroproof (design data, unlabeled; reported, not gated, em_label_free_rule_gate.md): contrast ARAND of the
present label-free defaults (D) and of the gated rule (R: mean scoring + min_distance "auto") through the public
API (Segmenter.segment on the whole 250^3 cube, no cache), segmentation vs segmentation.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_label_free_rule_neuroproof.py
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)
from em_adaptation import DATA, RESULTS
from em_contrast_invariance import gamma
from mire.io import imread
from mire.metrics import adapted_rand_error
from mire.segment import Segmenter

raw = imread(DATA / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif")
m = Segmenter.load("fibsem3d-affinity")
rows = []
for name, kw in (("D", {}), ("R", dict(scoring="mean", min_distance="auto"))):
    t = time.time(); segs = {}; info = {}
    for g in (1.0, 0.5, 2.0):
        x = raw if g == 1.0 else gamma(raw, g)
        segs[g] = m.segment(x, **kw)
        info[g] = {"threshold": float(m.last_settings["threshold"]), "min_distance": float(m.last_settings["min_distance"]),
                   "segments": int(np.count_nonzero(np.unique(segs[g])))}
    r = {"variant": name, "per_gamma": info, "arand_0.5": float(adapted_rand_error(segs[1.0], segs[0.5])[0]),
         "arand_2": float(adapted_rand_error(segs[1.0], segs[2.0])[0]), "seconds": round(time.time() - t)}
    rows.append(r)
    print(json.dumps(r), flush=True)
(RESULTS / "em_label_free_rule_neuroproof.json").write_text(json.dumps({"rows": rows, "argv": " ".join(sys.argv)}, indent=1))
