"""Where the time of the default ``tv_deconvolve(y, psf)`` call goes, stage by stage and inside an ADMM
iteration (FFTs, finite differences, the other elementwise passes), on the benchmark stack, one thread.

Stages are timed by wrapping the library's functions (the call itself is unchanged); inside the loop
the FFT wrappers and ``grad`` / ``grad_adjoint`` are timed the same way and the rest of each solve is
the elementwise work (prox, shrinkage, positivity, residual checks). Process CPU time.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_iter_split.py [--stack OP_5] [--size 128]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", default="OP_5")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--condition", default="N2-B2")
    args = ap.parse_args(argv)
    import torch

    import mire.restore._weight as W
    import mire.restore.tv as T
    from mire.optics import gaussian_psf, simulate
    from mire.optics.simulate import parse_condition

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tv_weight_stress import op_crop

    truth = op_crop(args.stack, args.size, seed=1)
    sigma, _ = parse_condition(args.condition)
    psf = gaussian_psf(sigma, ndim=3)
    y = simulate(truth, condition=args.condition, seed=0).astype(np.float32)
    clock = time.process_time
    stage = {"name": "other"}
    acc: dict[tuple, float] = {}

    def add(key, dt):
        acc[key] = acc.get(key, 0.0) + dt

    def timed(kind, f):
        def g(*a, **k):
            t0 = clock()
            r = f(*a, **k)
            add((stage["name"], kind), clock() - t0)
            return r
        return g

    T.rfftn = timed("rfftn", T.rfftn)
    T.irfftn = timed("irfftn", T.irfftn)
    T.grad = timed("grad", T.grad)
    T.grad_adjoint = timed("grad_adjoint", T.grad_adjoint)
    admm = T._admm
    iters: dict[str, int] = {}
    calls = {"n": 0}

    def admm_timed(p, w, **kw):
        name = "final solve" if kw.get("objective_every", 1) else "search solves"
        if name == "search solves":
            # the SURE trial solves the probe problem first, then the data problem (same grid, same iterations)
            calls["n"] += 1
            name = "search solves, probe" if calls["n"] % 2 else "search solves, data"
        prev, stage["name"] = stage["name"], name
        t0 = clock()
        st, info = admm(p, w, **kw)
        add((name, "total"), clock() - t0)
        iters[name] = iters.get(name, 0) + info["n_iter"]
        stage["name"] = prev
        return st, info

    T._admm = admm_timed
    risk = W._Sample.risk

    def risk_timed(self, xs, xps):
        prev, stage["name"] = stage["name"], "SURE scores"
        t0 = clock()
        r = risk(self, xs, xps)
        add(("SURE scores", "total"), clock() - t0)
        stage["name"] = prev
        return r

    W._Sample.risk = risk_timed
    t0, w0 = clock(), time.perf_counter()
    out, info = T.tv_deconvolve(y, psf, return_info=True)
    total, wall = clock() - t0, time.perf_counter() - w0
    print(f"stack {args.stack} {args.size}, {args.condition}, shape {y.shape}; weight {info['weight']:.5g}, "
          f"trials {info['search_trials']}, bregman {info['bregman']}")
    print(f"call: CPU {total:.2f} s (wall {wall:.2f} s)\n")
    print("| stage | CPU s | share | iterations | FFTs s | grad / grad^T s | other elementwise s |")
    print("|---|---|---|---|---|---|---|")
    rest = total
    for name in ("search solves, data", "search solves, probe", "SURE scores", "final solve"):
        t = acc.get((name, "total"), 0.0)
        rest -= t
        fft = acc.get((name, "rfftn"), 0.0) + acc.get((name, "irfftn"), 0.0)
        gr = acc.get((name, "grad"), 0.0) + acc.get((name, "grad_adjoint"), 0.0)
        el = t - fft - gr if name != "SURE scores" else float("nan")
        print(f"| {name} | {t:.2f} | {t / total:.0%} | {iters.get(name, '')} | {fft:.2f} | {gr:.2f} | {el:.2f} |")
    print(f"| noise model, tile sample, setup, copies | {rest:.2f} | {rest / total:.0%} | | | | |")


if __name__ == "__main__":
    main()
