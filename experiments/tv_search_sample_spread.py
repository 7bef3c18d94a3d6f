"""Issue #20 diagnostic (design half only): SURE weight vs tile-sample size (max_voxels 240k vs 60k), seeds 0-1.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_search_sample_spread.py "OP_2 128 N2-B2"
"""
import sys, math, numpy as np, torch
sys.path.insert(0, 'experiments')
from mire.restore import choose_tv_weight
from mire.restore._common import check_inputs, intensity_scale
from tv_weight_stress import design_cases
torch.set_num_threads(1)
for name, truth, y, psf, kind, r in design_cases(sys.argv[1]):
    img, kernel = check_inputs(y.astype(np.float32), psf)
    img_n = img / intensity_scale(img)
    grid = {float(v[0]): (v[1], v[2]) for v in r["grid"].values()}
    best = max(grid.values())
    for mv in (240_000, 60_000):
        for s in (0, 1):
            w = float(choose_tv_weight(img_n, kernel, seed=s, max_voxels=mv))
            g = min(grid, key=lambda gw: abs(math.log(gw / w)))
            print(f"{name} max_voxels {mv} seed {s}: weight {w:.4g} (best {r['best_weight']:.4g}); nearest grid {g:.4g}: {grid[g][0]-best[0]:+.3f} dB", flush=True)
