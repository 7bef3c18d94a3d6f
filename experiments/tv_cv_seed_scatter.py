"""How far does the reference rule (SURE, main) move with its own random draw, against the gate's
limits? (issue #20, route b; companion of experiments/tv_cv_gate.py)

For each 3D design-half case of experiments/tv_weight_stress.py, the weight of ``"sure"`` (main's rule)
and of ``"cv"`` (checkerboard hold-out) with the tile-sample seeds 0, 1, 2, then the default solve at
that weight (``bregman=0``, as the default runs for these PSFs). Printed: PSNR / SSIM minus those of
SURE with seed 0 (main's default, which the gate compares with).

    cd experiments && PYTHONPATH=../src OMP_NUM_THREADS=1 nice -n 8 python tv_cv_seed_scatter.py
"""

from __future__ import annotations

import json

import numpy as np

from tv_weight_stress import OUT, cases, score


def main():
    from mire.restore import choose_tv_weight, tv_deconvolve
    from mire.restore._common import intensity_scale

    path = OUT / "tv_cv_seed_scatter.jsonl"
    print("| case | rule | seed | weight | PSNR - SURE seed 0 | SSIM - SURE seed 0 |\n|---|---|---|---|---|---|")
    for name, make in cases("design"):
        truth, y, psf, kind = make()
        if y.ndim != 3:
            continue  # the W2S cases have a delta PSF: the default there is SURE, unchanged
        y = y.astype(np.float32)
        img_n = y / intensity_scale(y)
        ref = None
        for rule in ("sure", "cv"):
            for seed in (0, 1, 2):
                w = float(choose_tv_weight(img_n, psf, method=rule, seed=seed))
                p, s = score(truth, tv_deconvolve(y, psf, weight=w, bregman=0), kind)
                if ref is None:
                    ref = (p, s)
                r = {"case": name, "rule": rule, "seed": seed, "weight": w, "psnr": p, "ssim": s,
                     "d_psnr": p - ref[0], "d_ssim": s - ref[1]}
                with open(path, "a") as f:
                    f.write(json.dumps(r) + "\n")
                print(f"| {name} | {rule} | {seed} | {w:.4g} | {p - ref[0]:+.3f} | {s - ref[1]:+.4f} |", flush=True)


if __name__ == "__main__":
    main()
