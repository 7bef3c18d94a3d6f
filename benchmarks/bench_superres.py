"""Time of multi-frame super-resolution per method, and how it grows with image size.

15 frames of N x N -> 4N x 4N (the issue's size is N = 128 -> 512), known registration (so
only the solvers are timed), fixed iteration counts so that sizes are comparable:
ML 8 CG steps; MAP Laplacian 40 CG steps; MAP TV / BTV 20 L-BFGS steps; Bayesian 3 rounds
(mean + 4 Hutchinson probes, <= 40 preconditioned CG steps each; no posterior SD);
Bayesian-registration (Pickup) 20 L-BFGS steps and one registration update. The peer is bicubic upsampling of one frame
(scipy.ndimage.zoom), the single-frame baseline. The growth exponent is
log(t2 / t1) / log(pixels2 / pixels1) between consecutive sizes (1 = linear, 3 = cubic).

Run:  nice -n 10 python benchmarks/bench_superres.py [--sizes 32,64,128] [--threads 1]
Writes benchmarks/results/bench_superres.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from skimage import data, transform

from mire.optics import simulate_frames
from mire.superres import relative_registration, superresolve

METHODS = {
    "ml": dict(method="ml", n_iter=8, n_outer=1),
    "map-laplacian": dict(method="map", prior="laplacian", n_iter=40, n_outer=1),
    "map-tv": dict(method="map", prior="tv", n_iter=20, n_outer=1),
    "map-btv": dict(method="map", prior="btv", n_iter=20, n_outer=1),
    "bayesian": dict(method="bayesian", n_iter=40, n_outer=3, sd_distance=None),
    "bayesian robust": dict(method="bayesian", robust=True, n_iter=40, n_outer=3, sd_distance=None),
    "bayesian-registration": dict(method="bayesian-registration", n_iter=20, n_outer=1),
}
SLOW = ("bayesian", "bayesian robust", "bayesian-registration")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="32,64,128", help="low-res frame sizes N (high-res is 4N)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--slow-max", type=int, default=32,
                    help="largest N for the Bayesian methods (their largest sizes are extrapolated)")
    ap.add_argument("--out", default="benchmarks/results/bench_superres")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")]
    rows = {}
    for n in sizes:
        img = transform.resize(data.camera().astype(float) / 255, (4 * n, 4 * n), anti_aliasing=True)
        frames, truth = simulate_frames(img, n_frames=15, factor=4, shift=4.0, rotation=0.05, noise=0.03, seed=0)
        reg = relative_registration(truth["shifts"], truth["rotations"])
        t0 = time.perf_counter()
        ndimage.zoom(frames[0], 4, order=3)
        rows[(n, "bicubic (scipy, 1 frame)")] = time.perf_counter() - t0
        for name, kw in METHODS.items():
            if name in SLOW and n > args.slow_max:
                continue
            t0 = time.perf_counter()
            superresolve(frames, factor=4, registration=reg, refine_registration=False, **kw)
            rows[(n, name)] = time.perf_counter() - t0
            print(f"N={n:4d} -> {4 * n:4d}: {name:10s} {rows[(n, name)]:8.2f} s", flush=True)
    names = ["bicubic (scipy, 1 frame)"] + list(METHODS)
    lines = [f"15 frames, x4, {args.threads} torch thread(s), known registration, fixed iteration counts", "",
             "| method | " + " | ".join(f"{n}->{4 * n} (s)" for n in sizes)
             + " | ratio to bicubic at largest | growth exponent (1 = linear in pixels) |",
             "|" + "---|" * (len(sizes) + 3)]
    big = sizes[-1]
    for name in names:
        done = [n for n in sizes if (n, name) in rows]
        times = [rows[(n, name)] for n in done]
        exps = [np.log(t2 / t1) / np.log((n2 / n1) ** 2) for (n1, t1), (n2, t2) in
                zip(zip(done, times), list(zip(done, times))[1:])]
        cells = []
        for n in sizes:
            if (n, name) in rows:
                cells.append(f"{rows[(n, name)]:.3f}")
            elif exps:  # extrapolated with the last measured growth exponent
                cells.append(f"~{times[-1] * ((n / done[-1]) ** 2) ** exps[-1]:.0f} (extrap.)")
            else:
                cells.append("-")
        ratio = f"{rows[(big, name)] / rows[(big, 'bicubic (scipy, 1 frame)')]:.0f}x" if (big, name) in rows else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} | " + ", ".join(f"{e:.2f}" for e in exps) + " |")
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("# bench_superres\n\n" + text)
    out.with_suffix(".json").write_text(json.dumps(
        {"threads": args.threads, "sizes": sizes,
         "seconds": {name: [rows.get((n, name)) for n in sizes] for name in names}}, indent=1))


if __name__ == "__main__":
    main()
