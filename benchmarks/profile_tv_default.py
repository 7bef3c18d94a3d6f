"""Stage timings of the default ``tv_deconvolve(y, psf)`` call on the benchmark stack (1 thread).

Stages: noise model, tile sample (problems and probes), each SURE trial (two solves per tile), the
final solve.

Measured 2026-12-07 (OP_5 128², N2-B2, 1 thread, 2-core machine under load): total 16.0-17.8 s,
noise model + tile sample 0.07 s, search 12.5-14.1 s (8 trials of ~1.7 s: 6 tiles, grids 35..45 x 56
x 48..56, two 40-iteration solves each), final solve 3.2-3.4 s. One ADMM iteration costs the same
per voxel on a 35x56x48 grid as on a 70x72x64 one (28.6 vs 29.4 ns), so batching the tiles or the
data/probe pair into one solve would not pay (measured since: bit-identical, CPU time 0.98-1.05x,
experiments/tv_batch_pair.py): the search costs voxels x iterations x trials, and
only fewer of one of those (which changes the estimate and needs the design-stack check) cuts it.

After the tile margins went from two PSF radii to one (issue #20, experiments/results/tv_search_speed.md),
measured 2026-12-07 under heavier load (load average 4): total 12.2 s, search 8.8 s (8 trials of ~1.05 s,
tile grids 32..35 x 48 x 45..48), final solve 3.2 s. Fewer iterations per trial moved the chosen weight
on the design stacks (up to -0.5 dB), so the final solve is now about a quarter of the call. Quiet-machine split by stage and inside ADMM (FFTs / finite differences / other passes), 2026-12-07 22:03:
experiments/tv_iter_split.py, experiments/results/tv_default_profile.md (search 9.6 of 12.9 s CPU, final solve 3.0 s).
Usage: ``PYTHONPATH=src python benchmarks/profile_tv_default.py [--stack OP_5] [--size 128]``
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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    from tv_weight_stress import op_crop

    truth = op_crop(args.stack, args.size, seed=1)
    sigma, _ = parse_condition(args.condition)
    psf = gaussian_psf(sigma, ndim=3)
    y = simulate(truth, condition=args.condition, seed=0).astype(np.float32)
    times: dict[str, float] = {}

    def timed(name, f):
        def g(*a, **k):
            t0 = time.perf_counter()
            r = f(*a, **k)
            times[name] = times.get(name, 0.0) + time.perf_counter() - t0
            return r
        return g

    W.estimate_noise_model = timed("noise model", W.estimate_noise_model)
    W._Sample.__init__ = timed("tile sample (incl. noise model)", W._Sample.__init__)
    W._HoldoutSample.__init__ = timed("hold-out tile sample", W._HoldoutSample.__init__)
    admm = T._admm
    W_admm_calls = []

    def admm_timed(p, w, **kw):
        t0 = time.perf_counter()
        r = admm(p, w, **kw)
        dt = time.perf_counter() - t0
        key = "final solve" if kw.get("objective_every", 1) else "search solves"
        times[key] = times.get(key, 0.0) + dt
        if key == "search solves":
            W_admm_calls.append((w, dt, tuple(p.y.shape)))
        return r

    T._admm = admm_timed
    t0 = time.perf_counter()
    out, info = T.tv_deconvolve(y, psf, return_info=True)
    total = time.perf_counter() - t0
    print(f"shape {y.shape}, weight {info['weight']!r}, trials {info['search_trials']}, total {total:.2f} s")
    for k, v in times.items():
        print(f"  {k}: {v:.2f} s")
    per_w: dict[float, float] = {}
    for w, dt, _ in W_admm_calls:
        per_w[w] = per_w.get(w, 0.0) + dt
    for w, dt in per_w.items():
        print(f"  trial w={w:.4g}: {dt:.2f} s")
    print("  search tile grids:", sorted({s for _, _, s in W_admm_calls}))


if __name__ == "__main__":
    main()
