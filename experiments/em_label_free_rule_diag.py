"""Post-gate diagnosis of em_label_free_rule_gate.md criterion 3a (gala train, after the gate; not a gate):
contrast ARAND with the seed spacing held fixed on both sides, mean and median scoring.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_label_free_rule_diag.py
"""
import json, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent)); torch.set_num_threads(1)
from em_adaptation import load_volumes
from em_contrast_invariance import gamma
from mire.metrics import adapted_rand_error
from mire.segment import Segmenter
v = load_volumes(["gala-train"])["gala-train"]["raw"]
m = Segmenter.load("fibsem3d-affinity")
for sc in ("mean", "median"):
    for md in (3.0, 2.93):
        a = m.segment(v, scoring=sc, min_distance=md); b = m.segment(gamma(v, 0.5), scoring=sc, min_distance=md); c = m.segment(gamma(v, 2.0), scoring=sc, min_distance=md)
        print(json.dumps({"scoring": sc, "min_distance": md, "gamma0.5": float(adapted_rand_error(a, b)[0]), "gamma2": float(adapted_rand_error(a, c)[0])}), flush=True)
