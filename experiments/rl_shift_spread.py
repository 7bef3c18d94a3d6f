"""Diagnostic: the estimated shift across noise seeds on the Gaussian-noise design windows, and RL with it vs the cap.

For DIADEM design windows (OP_2 / OP_3 random, N2-B2 and N3-B3: Gaussian noise, whose true shift is infinite, i.e.
the data's range once capped) and three noise seeds each: the estimated model's shift, and RL's PSNR at n_iter 2, 5
and the automatic call with the estimated model and with the shift set to the cap (the data's range, what
``poisson_model`` gives when the variance does not rise with the intensity). Found (results/rl_shift_spread.log): the
estimate is at the cap on all 12 (so both columns agree); the sampled estimate of rl_noise_sample.md was not.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice python experiments/rl_shift_spread.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main():
    import tifffile
    import torch
    from scipy import ndimage

    from mire.metrics import psnr
    from mire.optics import gaussian_psf, simulate
    from mire.optics.simulate import parse_condition
    from mire.restore import richardson_lucy
    from mire.restore._common import _haar_mean_detail
    from mire.restore.richardson_lucy import poisson_model
    from rl_auto_stop import DATA

    torch.set_num_threads(1)
    windows = {"OP_2": (196, 103), "OP_3": (118, 15)}  # rl_auto_stop.py's random windows (seed 0)
    for st, (a, b) in windows.items():
        full = tifffile.imread(DATA / "diadem_op_neurons" / f"{st}.tif").astype(np.float64)
        truth = full[:, a:a + 128, b:b + 128]
        peak = float(truth.max())
        for cond in ("N2-B2", "N3-B3"):
            sigma, _ = parse_condition(cond)
            psf = gaussian_psf(sigma, ndim=3)
            for seed in (0, 1, 2):
                y = simulate(truth, condition=cond, seed=seed).astype(np.float32)
                m = poisson_model(y)
                cap = dict(m)
                # the cap poisson_model applies when the variance line has no slope: the local means' range
                mean, _ = _haar_mean_detail(y)
                local = ndimage.uniform_filter(mean, 3, mode="nearest")
                cap["shift"] = float(local.max() - local.min())
                row = []
                for mod in (m, cap):
                    p = [psnr(truth, richardson_lucy(y, psf, n_iter=k, noise_model=mod), data_range=peak)
                         for k in (2, 5)]
                    x, info = richardson_lucy(y, psf, noise_model=mod, return_info=True)
                    p.append(psnr(truth, x, data_range=peak))
                    row.append((mod["shift"], p, info["n_iter"]))
                (s0, p0, n0), (s1, p1, n1) = row
                print(f"{st} random@{a},{b} {cond} seed {seed}: shift est {s0:7.4g} (gain {m['gain']:.3g}) | "
                      f"cap {s1:7.4g} | PSNR n2/n5/auto est {p0[0]:.2f} {p0[1]:.2f} {p0[2]:.2f} ({n0} it) | "
                      f"cap {p1[0]:.2f} {p1[1]:.2f} {p1[2]:.2f} ({n1} it)", flush=True)


if __name__ == "__main__":
    main()
