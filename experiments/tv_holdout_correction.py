"""Hand-made check of the checkerboard hold-out weight's correction (issue #20, route b).

The ``"cv"`` rule solves each trial with the data term on half of the voxels (checkerboard) and
scores ``H x`` on the other half. That half-data problem behaves like the whole-data problem with
the noise variance doubled and the data term halved, so its best weight ``w'`` relates to the
whole-data best weight ``w`` by ``w = w' / sqrt(q)`` (q = 1/2) if the best TV weight grows in
proportion to the noise SD (TV shrinks gradients by a soft threshold, whose best value is
proportional to the noise SD). This script checks that on synthetic stacks (random rods, not the
shared data): the rule's weight with and without the correction against the weight of least
prediction risk ``||H x - H x_true||^2`` (the risk both ``"cv"`` and SURE estimate; converged solves on a
grid of factor 2^(1/4), scored on the interior, one PSF radius from the border) and SURE's weight.
The best-PSNR weight of ``x`` is printed too (a different target: on these sharp rods it is lower).

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_holdout_correction.py
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def stack(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.zeros((40, 80, 80))
    for _ in range(40):
        c = [int(rng.integers(2, n - 2)) for n in t.shape]
        ax, half = int(rng.integers(3)), int(rng.integers(3, 15))
        sl = list(c)
        sl[ax] = slice(max(0, c[ax] - half), c[ax] + half)
        t[tuple(sl)] = rng.uniform(0.3, 1.0)
    t = ndimage.gaussian_filter(t, 0.5)
    return t / t.max()


def main():
    from mire.metrics import psnr
    from mire.optics import gaussian_psf
    from mire.restore import choose_tv_weight, tv_deconvolve
    from mire.restore._weight import HOLDOUT_CORRECTION

    torch.set_num_threads(1)
    print("| case | least-risk w | cv w (corrected) | cv w / correction | sure w | risk ratio to least: cv / uncorrected / sure |"
          " best-PSNR w of x |")
    print("|---|---|---|---|---|---|---|")
    for seed, blur_sd, noise in [(0, 0.8, 0.03), (1, 0.8, 0.06), (2, 1.2, 0.03), (3, 1.2, 0.06)]:
        truth = stack(seed)
        psf = gaussian_psf(blur_sd, ndim=3)
        rng = np.random.default_rng(100 + seed)
        y = (ndimage.convolve(truth, psf, mode="constant") + noise * rng.standard_normal(truth.shape)).astype(np.float32)
        s = float(np.abs(y).max())
        w_cv = choose_tv_weight(y / s, psf, method="cv")
        w_sure = choose_tv_weight(y / s, psf, method="sure")

        inner = tuple(slice(k // 2, n - k // 2) for k, n in zip(psf.shape, truth.shape))
        h_true = ndimage.convolve(truth, psf, mode="constant")[inner]

        def q(w):
            x = tv_deconvolve(y, psf, weight=w, bregman=0, tol=5e-4)
            risk = float(np.mean((ndimage.convolve(x, psf, mode="constant")[inner] - h_true) ** 2))
            return risk, psnr(truth, x, data_range=1.0)

        grid = {}
        k0 = int(round(4 * np.log2(w_cv)))
        for k in range(k0 - 5, k0 + 4):
            grid[k] = q(2 ** (k / 4))
        kr = min(grid, key=lambda k: grid[k][0])
        kp = max(grid, key=lambda k: grid[k][1])
        r0 = grid[kr][0]
        print(f"| seed {seed} blur {blur_sd} noise {noise} | {2 ** (kr / 4):.4g} | {w_cv:.4g} | {w_cv / HOLDOUT_CORRECTION:.4g} |"
              f" {w_sure:.4g} | {q(w_cv)[0] / r0:.3f} / {q(w_cv / HOLDOUT_CORRECTION)[0] / r0:.3f} / {q(w_sure)[0] / r0:.3f} |"
              f" {2 ** (kp / 4):.4g} |", flush=True)


if __name__ == "__main__":
    main()
