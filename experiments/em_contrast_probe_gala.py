"""Design probe on gala test (design data, issue #17): shipped defaults vs mean scoring + min_distance "auto".

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_contrast_probe_gala.py
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(1)
from em_adaptation import load_volumes, scores
from em_contrast_invariance import gamma
from mire.metrics import adapted_rand_error
from mire.segment import Segmenter
v = load_volumes(["gala-test"])["gala-test"]
m = Segmenter.load("fibsem3d-affinity")
for name, kw in (("default", {}), ("mean_auto_md", dict(scoring="mean", min_distance="auto"))):
    s = m.segment(v["raw"], **kw); md = m.last_settings["min_distance"]; t = m.last_settings["threshold"]
    r = scores(v["gt"], s, False)
    gs = [float(adapted_rand_error(s, m.segment(gamma(v["raw"], g), **kw))[0]) for g in (0.5, 2.0)]
    print(json.dumps({"variant": name, "min_distance": md, "threshold": t, **r, "gamma_arand": gs}), flush=True)
