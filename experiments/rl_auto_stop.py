"""Richardson-Lucy's automatic stop and acceleration on stacks nobody tuned them on.

For each case (a clean stack, a PSF, a noise model): simulate the data, run RL for ``--max-iter``
iterations (plain and Biggs-Andrews accelerated) recording the PSNR against the clean stack at every
iteration and the Poisson deviance per voxel the automatic stop watches; the automatic stop is the
result of the step taken from the first point whose deviance is <= 1 (what ``richardson_lucy(n_iter="auto")`` returns, checked in
tests/restore/test_rl_accelerated.py). Reported: the stop's PSNR against the best iteration's.

Cases (``--part design`` / ``--part report``):

* DIADEM OP_1..OP_3 (design) and OP_4..OP_6 (report): the whole Z range, a 128 x 128 window at the
  brightest place and one at a random place (seeded), paper-2020 N2-B2 and N3-B3 (Gaussian noise of
  SD peak/7, 3 peak/14; true Gaussian PSF) and a Poisson-Gaussian N2-B2 (``noise="poisson-gaussian"``).
* report only: flowdec's Purkinje widefield stack (50 x 128 x 128 crop) taken as the object, blurred
  with flowdec's *measured* bead PSF (cropped to 31^3), 12-bit-like Poisson-Gaussian data with an
  offset; a W2S 400-frame average (FOV 25, channel 0) as a 2D object, Gaussian PSF 2 px, Poisson
  noise. Each report case is also run on the data x 0.01 and as 12-bit integers (x 4 + 1000 offset, rounded, clipped to 0..4095):
  the stop must not move.

Usage::

    nice -n 10 python experiments/rl_auto_stop.py --part design
    nice -n 10 python experiments/rl_auto_stop.py --part report
    python experiments/rl_auto_stop.py --part table     # writes experiments/results/rl_auto_stop.md
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATA = Path(os.environ.get("MIRE_DATA", HERE.parents[1] / "shared" / "data"))
if not DATA.exists():
    DATA = Path("/work/shared/data")


def densest_window(image, size):
    from scipy import ndimage

    proj = image.astype(np.float32).mean(axis=0)
    sm = ndimage.uniform_filter(proj, size, mode="constant")
    cy, cx = np.unravel_index(np.argmax(sm), sm.shape)
    y0 = int(np.clip(cy - size // 2, 0, image.shape[1] - size))
    x0 = int(np.clip(cx - size // 2, 0, image.shape[2] - size))
    return y0, x0


def diadem_cases(stacks, size=128, seed=0):
    import tifffile

    from mire.optics import gaussian_psf, simulate
    from mire.optics.simulate import parse_condition

    rng = np.random.default_rng(seed)
    for st in stacks:
        full = tifffile.imread(DATA / "diadem_op_neurons" / f"{st}.tif").astype(np.float64)
        y0, x0 = densest_window(full, size)
        ry, rx = (int(v) for v in rng.integers(0, full.shape[1] - size, 2))
        for where, (a, b) in (("bright", (y0, x0)), ("random", (ry, rx))):
            truth = full[:, a:a + size, b:b + size]
            if truth.max() <= 0:
                continue
            for cond, noise in (("N2-B2", None), ("N3-B3", None), ("N2-B2", "poisson-gaussian")):
                sigma, _ = parse_condition(cond)
                y = simulate(truth, condition=cond, seed=seed, noise=noise)
                name = f"{st} {where}@{a},{b} {cond}{' PG' if noise else ''}"
                yield name, truth, y, gaussian_psf(sigma, ndim=3)


def extra_cases(seed=0):
    import tifffile
    from scipy import ndimage

    from mire.optics import gaussian_psf, simulate

    rng = np.random.default_rng(seed)
    fd = DATA / "flowdec_widefield_deconvolution"
    if fd.exists():
        obj = tifffile.imread(fd / "purkinje_neuron_25pct_data.tif").astype(np.float64)[:, 64:192, 64:192]
        psf = tifffile.imread(fd / "bead_25pct_kernel_psf.tif").astype(np.float64)
        c = np.array(np.unravel_index(np.argmax(ndimage.gaussian_filter(psf, 1)), psf.shape))
        psf = psf[tuple(slice(max(0, int(v) - 15), int(v) + 16) for v in c)]
        psf = np.clip(psf - np.median(psf), 0, None)
        psf /= psf.sum()
        obj = obj - obj.min()
        truth = obj / obj.max() * 400.0  # 400 photons at the peak
        y = simulate(truth, condition=None, psf=psf, noise="poisson-gaussian", gain=1.0, noise_sigma=3.0, seed=seed)
        yield "flowdec purkinje, measured PSF, PG", truth, y, psf
    w2 = DATA / "w2s_widefield_denoising_8bit"
    if w2.exists():
        import tifffile as tf

        ids = [int(v) for v in (w2 / "fov_ids.txt").read_text().split()]
        tgt = tf.imread(w2 / "target_avg400.tif")[ids.index(25), 0].astype(np.float64)
        truth = tgt / tgt.max() * 200.0
        y = simulate(truth, condition=None, blur_sigma=2.0, noise="poisson", gain=1.0, seed=seed)
        yield "W2S FOV25 c0 (2D), Gaussian PSF 2, Poisson", truth, y, gaussian_psf(2.0, ndim=2)


def run_curve(y, psf, truth, acceleration, max_iter, scale=1.0, offset=0.0):
    from mire.metrics import psnr
    from mire.restore import richardson_lucy

    peak = float(truth.max())
    curve = []
    t0 = time.perf_counter()
    richardson_lucy(y.astype(np.float32), psf, n_iter=max_iter, acceleration=acceleration,
                              callback=lambda k, x: curve.append(psnr(truth, (x - offset) / scale, data_range=peak)))
    secs = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, info = richardson_lucy(y.astype(np.float32), psf, acceleration=acceleration, return_info=True)
    secs_auto = time.perf_counter() - t0
    stop = info["n_iter"]
    best = int(np.argmax(curve)) + 1
    return {"curve": curve, "stop": stop, "stop_psnr": psnr(truth, (x - offset) / scale, data_range=peak),
            "iterations_run": info["iterations_run"], "best": best, "best_psnr": curve[best - 1],
            "seconds_curve": secs, "seconds_auto": secs_auto,
            "model": {k: info[k] for k in ("background", "shift", "gain")}}


def table() -> str:
    """Markdown table of the saved runs (both halves)."""
    lines = []
    for part in ("design", "report"):
        path = RESULTS / f"rl_auto_stop_{part}.jsonl"
        if not path.exists():
            continue
        recs = [json.loads(v) for v in path.read_text().splitlines() if v.strip()]
        lines += [f"### {part} half", "",
                  "| case | auto stop: iterations, PSNR | best iteration, PSNR | auto - best (dB) |"
                  + (" x0.01: iter., PSNR | 12-bit + 1000: iter., PSNR |" if part == "report" else ""),
                  "|---|---|---|---:|" + ("---|---|" if part == "report" else "")]
        gaps = []
        for r in recs:
            b = r["biggs"]
            gap = b["stop_psnr"] - b["best_psnr"]
            gaps.append(gap)
            row = f"| {r['case']} | {b['stop']}, {b['stop_psnr']:.2f} | {b['best']}, {b['best_psnr']:.2f} | {gap:+.2f} |"
            if part == "report" and "x0.01" in r:
                row += "".join(f" {r[t]['stop']}, {r[t]['stop_psnr']:.2f} |" for t in ("x0.01", "12bit+1000"))
            lines.append(row)
        g = np.array(gaps)
        lines += ["", f"{part}: {len(g)} cases, auto - best: mean {g.mean():+.2f} dB, worst {g.min():+.2f} dB, "
                  f"{int(np.sum(g >= -0.3))} within 0.3 dB", ""]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("design", "report", "table"), default="design")
    ap.add_argument("--max-iter", type=int, default=120)
    ap.add_argument("--plain", action="store_true", help="also run plain RL (slow to converge)")
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args(argv)
    if args.part == "table":
        text = table()
        (RESULTS / "rl_auto_stop.md").write_text("# RL automatic stop vs best iteration (experiments/rl_auto_stop.py)\n\n"
                                                 + text + "\n")
        print(text)
        return
    import torch

    torch.set_num_threads(1)
    stacks = ["OP_1", "OP_2", "OP_3"] if args.part == "design" else ["OP_4", "OP_5", "OP_6"]
    cases = list(diadem_cases(stacks))
    if args.part == "report":
        cases += list(extra_cases())
    if args.limit:
        cases = cases[:args.limit]
    RESULTS.mkdir(exist_ok=True)
    out_path = RESULTS / f"rl_auto_stop_{args.part}.jsonl"
    for name, truth, y, psf in cases:
        rec = {"case": name, "shape": list(truth.shape)}
        accs = ["biggs", None] if args.plain else ["biggs"]
        for acc in accs:
            r = run_curve(y, psf, truth, acc, args.max_iter)
            rec[str(acc)] = r
            print(f"{name:45s} {str(acc):6s} stop {r['stop']:4d} {r['stop_psnr']:.2f} dB | best {r['best']:4d} "
                  f"{r['best_psnr']:.2f} dB | auto {r['seconds_auto']:.1f}s", flush=True)
        if args.part == "report":
            for tag, sc, off, quant in (("x0.01", 0.01, 0.0, False), ("12bit+1000", 4.0, 1000.0, True)):
                yy = y * sc + off
                if quant:
                    yy = np.clip(np.round(yy), 0, 4095)
                r = run_curve(yy, psf, truth, "biggs", args.max_iter, scale=sc, offset=off)
                rec[tag] = {k: r[k] for k in ("stop", "stop_psnr", "best", "best_psnr", "model")}
                print(f"{'':45s} {tag:9s} stop {r['stop']:4d} {r['stop_psnr']:.2f} dB | best {r['best']:4d} "
                      f"{r['best_psnr']:.2f}", flush=True)
        with open(out_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
