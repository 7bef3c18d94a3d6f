"""Stress set for the automatic TV weight (issue #20): default ``tv_deconvolve`` against the best grid weight.

Stacks that differ the way users' stacks do, built from ``../shared/data`` only:

* DIADEM OP stacks, the **whole Z range**, cropped in XY at a random place that holds some neuron
  (128 x 128, and the issue's 256 x 256 geometry once per half), paper-2020 conditions N2-B2 and N3-B3
  (Gaussian noise), Poisson-Gaussian noise (PG-B2), a 12-bit stack with an offset, and a stack scaled
  by 0.01;
* W2S widefield images (2D, real noise; the target is the 400-frame average, compared after an affine
  least-squares fit because each image was min-max stretched) with a delta PSF: pure denoising;
* flowdec's Purkinje widefield stack re-blurred by its **measured** bead PSF, Poisson-Gaussian noise
  (report half only).

Design half: OP_1..OP_3 and W2S FOVs 1..3 (these were looked at while the rule was designed).
Report half: OP_4..OP_6, W2S FOVs 25..27 and flowdec (never looked at while designing).

For every case: PSNR / SSIM of the default call, and of ``tv_deconvolve(weight=w, bregman=0)`` over a
geometric grid around the default weight (factors 2^(k/2), k = -3..3, extended while the best is at
an end): the best grid PSNR is the oracle.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_weight_stress.py --half design
    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_weight_stress.py --half report
    python experiments/tv_weight_stress.py --table      # writes experiments/results/tv_weight_stress.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "experiments" / "results"
RECORDS = OUT / "tv_weight_stress.jsonl"
RULE_VERSION = "tiles-sure-v2-margin1r"

HALVES = {"design": {"op": ["OP_1", "OP_2", "OP_3"], "w2s": [0, 1]},
          "report": {"op": ["OP_4", "OP_5", "OP_6"], "w2s": [24, 25], "flowdec": True}}


def records(half: str) -> dict:
    """The current rule's stress-set records of one half, by case name (the last record of a case wins)."""
    out = {}
    for line in RECORDS.read_text().splitlines():
        r = json.loads(line)
        if r["rule"] == RULE_VERSION and r["half"] == half:
            out[r["case"]] = r
    return out


def design_cases(only: str):
    """The design half's cases whose name contains ``only``, made: (name, truth, noisy, psf, kind, record)."""
    rec = records("design")
    for name, make in cases("design"):
        if only in name:
            yield (name, *make(), rec[name])


def op_crop(stack: str, size: int, seed: int) -> np.ndarray:
    """Whole Z range, XY crop of ``size`` centred near a random bright voxel (so it holds some neuron)."""
    import tifffile

    full = tifffile.imread(DATA / "diadem_op_neurons" / f"{stack}.tif").astype(np.float64)
    rng = np.random.default_rng(seed)
    bright = np.argwhere(full > 0.3 * full.max())
    c = bright[rng.integers(len(bright))]
    sl = [slice(None)]
    for ax in (1, 2):
        a = int(np.clip(c[ax] - size // 2 + rng.integers(-size // 4, size // 4 + 1), 0, full.shape[ax] - size))
        sl.append(slice(a, a + size))
    return full[tuple(sl)]


def cases(half: str):
    """(name, make) pairs; ``make()`` returns (truth, noisy, psf, kind) with kind 'plain' or 'affine'."""
    from mire.optics import gaussian_psf, simulate

    h = HALVES[half]
    out = []
    for i, st in enumerate(h["op"]):
        for cond in ("N2-B2", "N3-B3"):
            def make(st=st, cond=cond, i=i):
                t = op_crop(st, 128, seed=10 * i + 1)
                from mire.optics.simulate import parse_condition
                return t, simulate(t, condition=cond, seed=i), gaussian_psf(parse_condition(cond)[0], ndim=3), "plain"
            out.append((f"{st} 128 {cond}", make))
    st0, st1, st2 = h["op"]

    def big(st=st0):
        t = op_crop(st, 256, seed=7)
        return t, simulate(t, condition="N2-B2", seed=3), gaussian_psf(0.8, ndim=3), "plain"
    out.append((f"{st0} 256 N2-B2", big))

    def pg(st=st1):
        t = op_crop(st, 128, seed=5)
        return t, simulate(t, condition="N2-B2", noise="poisson-gaussian", seed=4), gaussian_psf(0.8, ndim=3), "plain"
    out.append((f"{st1} 128 PG-B2", pg))

    def bits12(st=st2):
        t = op_crop(st, 128, seed=9) * 16.0 + 100.0  # 12-bit range with a camera offset
        y = np.round(simulate(t - 100.0, condition="N2-B2", seed=5) + 100.0)
        return t, y, gaussian_psf(0.8, ndim=3), "plain"
    out.append((f"{st2} 128 N2-B2 12bit+offset", bits12))

    def tiny(st=st0):
        t = op_crop(st, 128, seed=11) * 0.01
        return t, simulate(t, condition="N3-B3", seed=6), gaussian_psf(1.2, ndim=3), "plain"
    out.append((f"{st0} 128 N3-B3 x0.01", tiny))

    for fov in h["w2s"]:
        def w2s(fov=fov):
            import tifffile
            d = DATA / "w2s_widefield_denoising_8bit"
            y = tifffile.imread(d / "noisy_avg1.tif")[fov, 1, 128:384, 128:384].astype(np.float64)
            t = tifffile.imread(d / "target_avg400.tif")[fov, 1, 128:384, 128:384].astype(np.float64)
            return t, y, np.ones((1, 1)), "affine"
        out.append((f"W2S FOV {fov + 1} ch1 2D", w2s))

    if h.get("flowdec"):
        def flowdec():
            import tifffile
            from mire.optics import add_noise
            from mire.optics.simulate import blur
            d = DATA / "flowdec_widefield_deconvolution"
            t = tifffile.imread(d / "purkinje_neuron_25pct_data.tif").astype(np.float64)
            k = tifffile.imread(d / "bead_25pct_kernel_psf.tif").astype(np.float64)
            k = np.clip(k - np.median(k), 0, None)
            c = np.array(k.shape) // 2  # the central 21^3 holds the PSF's core
            k = k[c[0] - 10:c[0] + 11, c[1] - 10:c[1] + 11, c[2] - 10:c[2] + 11]
            k /= k.sum()
            y = add_noise(blur(t, k), model="poisson-gaussian", gain=t.max() / 400, sigma=0.02 * t.max(), seed=8)
            return t, y, k, "plain"
        out.append(("flowdec Purkinje measured PSF PG", flowdec))
    return out


def score(truth, r, kind):
    from mire.metrics import psnr, ssim

    if kind == "affine":  # W2S: images were min-max stretched independently
        A = np.stack([r.ravel(), np.ones(r.size)], 1)
        a, b = np.linalg.lstsq(A, truth.ravel(), rcond=None)[0]
        r = a * r + b
    peak = float(truth.max() - truth.min()) if kind == "affine" else float(truth.max())
    win = 5 if truth.ndim == 3 else 7
    return psnr(truth, r, data_range=peak), ssim(truth, r, data_range=peak, window=win)


def run_case(name, make):
    from mire.restore import tv_deconvolve

    truth, y, psf, kind = make()
    y = y.astype(np.float32)
    t0 = time.perf_counter()
    out, info = tv_deconvolve(y, psf, return_info=True)
    sec = time.perf_counter() - t0
    d_psnr, d_ssim = score(truth, out, kind)
    w0 = info["weight"] * info["scale"]  # weight in image units, so grid solves can use any scale
    grid = {}

    def at(k):
        if k not in grid:
            w = info["weight"] * 2 ** (k / 2)
            r = tv_deconvolve(y, psf, weight=w, bregman=0)
            grid[k] = (w, *score(truth, r, kind))
        return grid[k]

    for k in range(-3, 4):
        at(k)
    while True:
        ks = sorted(grid)
        best = max(ks, key=lambda k: grid[k][1])
        if best == ks[0] and ks[0] > -12:
            at(ks[0] - 1)
        elif best == ks[-1] and ks[-1] < 12:
            at(ks[-1] + 1)
        else:
            break
    kb = max(grid, key=lambda k: grid[k][1])
    return {"case": name, "rule": RULE_VERSION, "shape": list(y.shape), "default_weight": info["weight"],
            "bregman": info["bregman"], "default_psnr": d_psnr, "default_ssim": d_ssim, "seconds": sec,
            "best_weight": grid[kb][0], "best_psnr": grid[kb][1], "best_ssim": grid[kb][2],
            "grid": {str(k): list(v) for k, v in sorted(grid.items())}, "scale_w": w0}


def table():
    recs = {}
    for line in RECORDS.read_text().splitlines():
        r = json.loads(line)
        if r["rule"] == RULE_VERSION:
            recs[(r["half"], r["case"])] = r
    lines = ["# TV automatic weight: stress set", "",
             f"Rule `{RULE_VERSION}`. Default = `tv_deconvolve(y, psf)`; best = best PSNR of "
             "`tv_deconvolve(y, psf, weight=w, bregman=0)` over a geometric grid around the default weight.", "",
             "Reproduce: see the docstring of experiments/tv_weight_stress.py.", ""]
    for half in ("design", "report"):
        rows = [r for (h, _), r in recs.items() if h == half]
        if not rows:
            continue
        lines += [f"## {half} half", "", "| case | shape | default w | bregman | best w | default PSNR / SSIM |"
                  " best PSNR / SSIM | default - best dB | seconds |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['case']} | {'x'.join(map(str, r['shape']))} | {r['default_weight']:.4g} | "
                         f"{r['bregman']} | {r['best_weight']:.4g} | {r['default_psnr']:.2f} / {r['default_ssim']:.3f} |"
                         f" {r['best_psnr']:.2f} / {r['best_ssim']:.3f} | {r['default_psnr'] - r['best_psnr']:+.2f} |"
                         f" {r['seconds']:.0f} |")
        d = np.array([r["default_psnr"] - r["best_psnr"] for r in rows])
        s = np.array([r["default_ssim"] - r["best_ssim"] for r in rows])
        lines += ["", f"{len(rows)} cases: default - best PSNR mean {d.mean():+.2f} dB, worst {d.min():+.2f} dB; "
                  f"SSIM difference worst {s.min():+.3f}.", ""]
    (OUT / "tv_weight_stress.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=list(HALVES))
    ap.add_argument("--only", default=None, help="substring of the case names to run")
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    if a.table:
        return table()
    done = set()
    if RECORDS.exists():
        for line in RECORDS.read_text().splitlines():
            r = json.loads(line)
            if r["rule"] == RULE_VERSION:
                done.add((r["half"], r["case"]))
    for name, make in cases(a.half):
        if (a.half, name) in done or (a.only and a.only not in name):
            continue
        r = run_case(name, make)
        r["half"] = a.half
        with open(RECORDS, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{name}: default w {r['default_weight']:.4g} (bregman {r['bregman']}) {r['default_psnr']:.2f} dB"
              f" / best w {r['best_weight']:.4g} {r['best_psnr']:.2f} dB  ({r['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
