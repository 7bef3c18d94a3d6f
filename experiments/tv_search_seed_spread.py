"""Spread of the SURE weight search over its random seed (tile draw + probe) on design-half cases (issue #20).

Diagnostic for a lower-variance SURE: if the chosen weight moves between seeds by more than the grid's
factor sqrt(2), averaging probes (or tiles) would narrow it. The weight is mapped to PSNR / SSIM with the
stress run's recorded grid (nearest grid weight in log scale). Design half only.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_search_seed_spread.py --only "OP_2 128 N2-B2" --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def main():
    import torch

    from mire.restore import choose_tv_weight
    from mire.restore._common import check_inputs, intensity_scale
    from tv_weight_stress import design_cases

    ap = argparse.ArgumentParser()
    ap.add_argument("--only", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    a = ap.parse_args()
    torch.set_num_threads(1)
    for name, truth, y, psf, kind, r in design_cases(a.only):
        img, kernel = check_inputs(y.astype(np.float32), psf)
        img_n = img / intensity_scale(img)
        grid = {float(v[0]): (v[1], v[2]) for v in r["grid"].values()}
        best = max(grid.values())
        for s in a.seeds:
            w = float(choose_tv_weight(img_n, kernel, seed=s))
            g = min(grid, key=lambda gw: abs(math.log(gw / w)))
            print(f"{name} seed {s}: weight {w:.4g} (recorded default {r['default_weight']:.4g}, best "
                  f"{r['best_weight']:.4g}); nearest grid {g:.4g}: {grid[g][0] - best[0]:+.3f} dB, "
                  f"SSIM {grid[g][1] - r['best_ssim']:+.3f}", flush=True)


if __name__ == "__main__":
    main()
