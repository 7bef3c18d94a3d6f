"""The 3D restorers on the whole held-out DIADEM stacks OP_5 (76x512x512) and OP_6 (101x512x512).

Table 2 scores central 32x192x192 crops (TV deconvolution is too slow on whole stacks on this CPU);
this checks the learned models on everything, at N1-B1, N2-B2, N3-B3 (seed = the condition's index,
as in paper2020_table2.py). PSNR with data range = the stack's peak, SSIM over 5x5x5 windows.
``--previous STEM`` adds an earlier model file (e.g. the weights before a retrain, from git).

    python experiments/fluo3d_whole_stacks.py [--previous /tmp/old/fluo3d-neurite-restore]
"""

import argparse
from pathlib import Path

import time

import numpy as np
import tifffile

from mire.metrics import psnr, ssim
from mire.optics import CONDITIONS, simulate
from mire.restore import Restorer

ROOT = Path(__file__).resolve().parent
ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--previous", default=None, help="an earlier model file to compare")
args = ap.parse_args()
models = {"U-Net (shipped)": Restorer.load("fluo3d-neurite-restore"),
          "encoder-decoder": Restorer.load(ROOT / "models" / "fluo3d-neurite-encdec")}
if args.previous:
    models["U-Net (previous)"] = Restorer.load(args.previous)
for stack in ("OP_5", "OP_6"):
    gt = tifffile.imread(ROOT.parents[1] / "shared" / "data" / "diadem_op_neurons" / f"{stack}.tif").astype(np.float64)
    peak = gt.max()
    for cond in ("N1-B1", "N2-B2", "N3-B3"):
        noisy = simulate(gt, condition=cond, seed=CONDITIONS.index(cond))
        row = [f"input {psnr(gt, noisy, data_range=peak):.2f}", f"zeros {psnr(gt, 0*gt, data_range=peak):.2f}"]
        for name, m in models.items():
            t = time.perf_counter(); out = m.predict(noisy.astype(np.float32), axes="ZYX"); dt = time.perf_counter() - t
            row.append(f"{name} {psnr(gt, out, data_range=peak):.2f} / {ssim(gt, out, data_range=peak, window=5):.3f} ({dt:.0f} s)")
        print(stack, cond, " | ".join(row), flush=True)
