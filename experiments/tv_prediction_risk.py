"""Is the SURE weight's gap to the best-PSNR weight variance or target? (issue #20, design half only)

SURE estimates the prediction risk ``||H x - H x_true||^2``; the stress set scores ``x`` against the truth.
For one case, over the stress run's recorded grid weights: the true prediction risk (truth known, the blur
applied with mire's own forward model) and the PSNR of ``x``. If the prediction risk's minimum sits at the
SURE default's weight rather than at the best-PSNR weight, the gap is the target of the estimate, and a
lower-variance SURE (more probes) cannot close it.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_prediction_risk.py --only "OP_2 128 N2-B2"
"""

from __future__ import annotations

import argparse

import numpy as np


def main():
    import torch

    from mire.optics.simulate import blur
    from mire.restore import tv_deconvolve
    from tv_weight_stress import design_cases, score

    ap = argparse.ArgumentParser()
    ap.add_argument("--only", required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    for name, truth, y, psf, kind, r in design_cases(a.only):
        y = y.astype(np.float32)
        ht = blur(truth, psf)
        print(f"{name}: default weight {r['default_weight']:.4g}, best-PSNR grid weight {r['best_weight']:.4g}")
        for k, (w, p, s) in sorted(r["grid"].items(), key=lambda kv: kv[1][0]):
            x = tv_deconvolve(y, psf, weight=w, bregman=0)
            d = blur(x.astype(np.float64), psf) - ht
            d = d[tuple(slice(k // 2, n - k // 2) for k, n in zip(np.shape(psf), d.shape))]  # interior only
            pr = float(np.mean(d ** 2)) / float(truth.max()) ** 2
            print(f"  w {w:.4g}: PSNR {p:.3f} SSIM {s:.4f}  prediction risk / peak^2 {pr:.4e}  "
                  f"(recomputed PSNR {score(truth, x, kind)[0]:.3f})", flush=True)


if __name__ == "__main__":
    main()
