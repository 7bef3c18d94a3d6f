"""The whole default ``tv_deconvolve(y, psf)`` call (weight search included) against scikit-image's
``denoise_tv_chambolle`` at its best weight found by the same number of trials, in one run.

The stack is a DIADEM OP crop (whole Z range, ``--size`` x ``--size`` in XY around the neuron) under
the paper-2020 condition ``--condition`` (Gaussian blur and noise), or a generated one when the data
are absent. scikit-image gets the same number of weight trials as mire's search used (``info
["search_trials"]``), on a geometric grid over 1e-3..1 (in units of the image scaled to [0, 1]),
scored with the ground truth (an oracle mire does not have). Printed: seconds of each side, their
ratio (goal: mire within 2x), and the PSNR / SSIM of each result.

Usage::

    PYTHONPATH=src nice -n 10 python benchmarks/bench_tv_default.py [--stack OP_5] [--size 128]
        [--condition N2-B2] [--threads 1] [--weight-search cv]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", default="OP_5")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--condition", default="N2-B2")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and scipy.fft workers")
    ap.add_argument("--weight-search", default=None, help="tv_deconvolve's weight_search (default: its default)")
    args = ap.parse_args(argv)
    import scipy.fft
    import torch
    from skimage.restoration import denoise_tv_chambolle

    from mire.metrics import psnr, ssim
    from mire.optics import gaussian_psf, simulate
    from mire.optics.simulate import parse_condition
    from mire.restore import tv_deconvolve

    torch.set_num_threads(args.threads)
    root = Path(os.environ.get("MIRE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / "diadem_op_neurons" / f"{args.stack}.tif"
    if path.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
        from tv_weight_stress import op_crop

        truth = op_crop(args.stack, args.size, seed=1)
        source = f"DIADEM {args.stack}, whole Z, {args.size}x{args.size} XY crop"
    else:
        rng = np.random.default_rng(0)
        truth = np.zeros((48, args.size, args.size))
        for _ in range(30):
            z, y, x = rng.integers(4, 44), rng.integers(4, args.size - 4), rng.integers(4, args.size - 4)
            truth[z, y, x - 3:x + 3] = 200.0
        source = f"generated sparse stack {truth.shape} ({path} is absent)"
    sigma, _ = parse_condition(args.condition)
    psf = gaussian_psf(sigma, ndim=3)
    y = simulate(truth, condition=args.condition, seed=0).astype(np.float32)
    peak = float(truth.max())

    def score(r):
        return psnr(truth, r, data_range=peak), ssim(truth, r, data_range=peak, window=5)

    t0 = time.perf_counter()
    kw = {} if args.weight_search is None else {"weight_search": args.weight_search}
    out, info = tv_deconvolve(y, psf, return_info=True, **kw)
    t_mire = time.perf_counter() - t0
    trials = max(1, int(info["search_trials"]))

    s = float(np.abs(y).max())
    grid = np.geomspace(1e-3, 1.0, trials)
    with scipy.fft.set_workers(args.threads):
        t0 = time.perf_counter()
        best = None
        for w in grid:
            r = denoise_tv_chambolle(y / s, weight=float(w)) * s
            p = score(r)
            if best is None or p[0] > best[1][0]:
                best = (w, p)
        t_sk = time.perf_counter() - t0
    pm = score(out)
    print(f"stack: {source}, {args.condition}, shape {y.shape}, threads {args.threads}\n")
    print("| | seconds | weight | PSNR | SSIM |\n|---|---|---|---|---|")
    rule = args.weight_search or "default"
    print(f"| mire tv_deconvolve {rule} ({trials} search trials, bregman {info['bregman']}) | {t_mire:.1f} |"
          f" {info['weight']:.4g} | {pm[0]:.2f} | {pm[1]:.3f} |")
    print(f"| skimage denoise_tv_chambolle, best of {trials} weights | {t_sk:.1f} | {best[0]:.4g} |"
          f" {best[1][0]:.2f} | {best[1][1]:.3f} |")
    print(f"\ntime ratio mire / scikit-image: {t_mire / t_sk:.2f} (goal <= 2); PSNR gain {pm[0] - best[1][0]:+.2f} dB")


if __name__ == "__main__":
    main()
