"""Final-solve variants of the default TV call at the stress set's recorded default weights (issue #20).

The weight search is left as it is; only the final solve (``tv_deconvolve(y, psf, weight=w, bregman=k)``
with the default weight and refinements recorded by ``experiments/tv_weight_stress.py`` for the rule
``RULE_VERSION``) is re-run per variant ``relax`` (ADMM over-relaxation of the final solve,
``mire.restore.tv.FINAL_RELAX``). Prints PSNR / SSIM, iterations and seconds per case and variant.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_final_solve_gate.py --half design --relax 1.0 1.5 1.8
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    import torch

    import mire.restore.tv as T
    from tv_weight_stress import cases, records, score

    ap = argparse.ArgumentParser()
    ap.add_argument("--half", default="design")
    ap.add_argument("--relax", type=float, nargs="+", default=[1.0, 1.8])
    ap.add_argument("--only", default=None)
    ap.add_argument("--part", default="0/1", help="k/n: every n-th case from the k-th (parallel runs)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    rec = records(a.half)
    k, n = map(int, a.part.split("/"))
    for i, (name, make) in enumerate(cases(a.half)):
        if name not in rec or (a.only and a.only not in name) or i % n != k:
            continue
        truth, y, psf, kind = make()
        y = y.astype(np.float32)
        r = rec[name]
        row = []
        for relax in a.relax:
            T.FINAL_RELAX = relax
            t0 = time.perf_counter()
            out, info = T.tv_deconvolve(y, psf, weight=r["default_weight"], bregman=r["bregman"], return_info=True)
            sec = time.perf_counter() - t0
            p, s = score(truth, out, kind)
            row.append(f"relax {relax}: {p:.3f} dB / {s:.4f}, {info['n_iter']} it, {sec:.2f} s")
        print(f"{name} (recorded default {r['default_psnr']:.3f}): " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
