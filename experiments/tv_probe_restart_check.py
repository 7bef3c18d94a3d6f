"""Control for tv_probe_restart_gate.py: the SURE search on OP_1 128 N2-B2 (design half) with
``_weight.PROBE_RESTART`` = each argument ("None" = main's search): chosen weight and SURE curve (x 1e6).

    cd experiments && PYTHONPATH=../src:. OMP_NUM_THREADS=1 python tv_probe_restart_check.py 40 None
"""
import sys, numpy as np, torch
torch.set_num_threads(1)
import tv_weight_stress as S
import mire.restore._weight as W
from mire.restore._common import check_inputs, intensity_scale
name, make = [c for c in S.cases("design") if c[0] == "OP_1 128 N2-B2"][0]
truth, y, psf, kind = make()
img, kernel = check_inputs(y.astype(np.float32), psf)
img_n = img / intensity_scale(img)
for k in [int(a) if a != "None" else None for a in sys.argv[1:]]:
    W.PROBE_RESTART = k
    w, curve = W.choose_tv_weight(img_n, kernel, return_curve=True)
    print("k", k, "weight", round(w, 5), "curve", [(round(a, 5), round(b * 1e6, 3)) for a, b in curve], flush=True)
