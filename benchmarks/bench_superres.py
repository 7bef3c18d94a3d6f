"""Time of multi-frame super-resolution per method, and how it grows with image size.

15 frames of N x N -> 4N x 4N (the issue's size is N = 128 -> 512), known registration (so
only the solvers are timed), fixed iteration counts so that sizes are comparable:
ML 8 CG steps; MAP Laplacian 40 CG steps; MAP TV / BTV 20 L-BFGS steps; Bayesian (Gaussian
prior, uniform and robust) one round: posterior mean, 4 Hutchinson probes, final mean, each
<= 10 preconditioned CG steps, no posterior SD; Bayesian TV (variational) one pass: mean,
8 gradient-variance probes, final mean, each <= 10 CG steps; Bayesian-registration (Pickup)
20 L-BFGS steps. A real Bayesian run makes 6-10 such rounds of up to 60-150 steps: its
time is about (rounds x steps / 10) times the one-round figure (the cost is per CG step,
O(N) each). The peer is bicubic upsampling of one frame (scipy.ndimage.zoom), the
single-frame baseline. The growth exponent is log(t2 / t1) / log(pixels2 / pixels1)
between consecutive sizes (1 = linear, 3 = cubic); the log-log slope is the least-squares
fit over all measured sizes.

Run:  OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_superres.py [--sizes 16,32,64,128] [--threads 1]
Writes benchmarks/results/bench_superres.{md,json} (the JSON after every measurement). The
machine's load average is recorded with the results: on a shared machine the absolute
times are inflated by the load, the ratios and slopes much less.
"""

from __future__ import annotations

import argparse
import json
import os
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
    "bayesian (gradient prior)": dict(method="bayesian", n_iter=10, n_outer=1, sd_distance=None),
    "bayesian robust (gradient prior)": dict(method="bayesian", robust=True, n_iter=10, n_outer=1, sd_distance=None),
    "bayesian TV (variational)": dict(method="bayesian", prior="tv", n_iter=10, n_outer=1, sd_distance=None),
    "bayesian-registration": dict(method="bayesian-registration", n_iter=20, n_outer=1),
}
# same cost per step as the uniform Bayesian row (robust only adds elementwise weights): not repeated at the largest size
SLOW = ("bayesian robust (gradient prior)",)


def _table(rows, sizes, names, threads, loads):
    lines = [f"15 frames, x4, {threads} torch thread(s), known registration, fixed iteration counts "
             f"(see the script's docstring); load average (1 min) during the sizes: "
             + ", ".join(f"{n}: {loads[n]:.1f}" for n in sizes if n in loads), "",
             "| method | " + " | ".join(f"{n}->{4 * n} (s)" for n in sizes)
             + " | ratio to bicubic at largest | growth exponents (1 = linear in pixels) | log-log slope |",
             "|" + "---|" * (len(sizes) + 4)]
    big = sizes[-1]
    slopes = {}
    for name in names:
        done = [n for n in sizes if (n, name) in rows]
        times = [rows[(n, name)] for n in done]
        exps = [np.log(t2 / t1) / np.log((n2 / n1) ** 2) for (n1, t1), (n2, t2) in
                zip(zip(done, times), list(zip(done, times))[1:])]
        if len(done) > 1:
            slopes[name] = float(np.polyfit(np.log(np.square(done)), np.log(times), 1)[0])
        cells = [f"{rows[(n, name)]:.3f}" if (n, name) in rows else "-" for n in sizes]
        ratio = f"{rows[(big, name)] / rows[(big, 'bicubic (scipy, 1 frame)')]:.0f}x" if (big, name) in rows else "-"
        slope = f"{slopes[name]:.2f}" if name in slopes else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} | " + ", ".join(f"{e:.2f}" for e in exps)
                     + f" | {slope} |")
    return "\n".join(lines) + "\n", slopes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16,32,64,128", help="low-res frame sizes N (high-res is 4N)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--slow-max", type=int, default=64, help="largest N for the rows in SLOW")
    ap.add_argument("--out", default="benchmarks/results/bench_superres")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the markdown from the JSON (e.g. of a run stopped part-way)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.sizes.split(",")]
    names = ["bicubic (scipy, 1 frame)"] + list(METHODS)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.render:
        saved = json.loads(out.with_suffix(".json").read_text())
        sizes = saved["sizes"]
        rows = {(n, nm): t for nm, ts in saved["seconds"].items() for n, t in zip(sizes, ts) if t is not None}
        loads = {int(k): v for k, v in saved["load_average_1min"].items()}
        text, _ = _table(rows, sizes, list(saved["seconds"]), saved["threads"], loads)
        missing = [f"{n}->{4 * n}: {nm}" for nm, ts in saved["seconds"].items() for n, t in zip(sizes, ts) if t is None]
        if missing:
            text += "\nNot measured (run stopped): " + "; ".join(missing) + ".\n"
        out.with_suffix(".md").write_text("# bench_superres\n\n" + text)
        print(text)
        return
    rows, loads = {}, {}
    for n in sizes:
        loads[n] = os.getloadavg()[0]
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
            print(f"N={n:4d} -> {4 * n:4d}: {name:34s} {rows[(n, name)]:8.2f} s  (load {os.getloadavg()[0]:.1f})",
                  flush=True)
            text, slopes = _table(rows, sizes, names, args.threads, loads)
            out.with_suffix(".json").write_text(json.dumps(
                {"threads": args.threads, "sizes": sizes, "load_average_1min": loads, "loglog_slope": slopes,
                 "seconds": {nm: [rows.get((k, nm)) for k in sizes] for nm in names}}, indent=1))
    text, _ = _table(rows, sizes, names, args.threads, loads)
    print("\n" + text)
    out.with_suffix(".md").write_text("# bench_superres\n\n" + text)


if __name__ == "__main__":
    main()
