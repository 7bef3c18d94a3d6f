"""Offline comparison of tile-sampling designs on the per-tile SURE curves of tv_tile_draw_diagnosis.py
(issue #20, helper task 5; design half only).

For each design (proxy: raw tile SD as main / signal SD from the fitted noise model; strata: equal
counts as main / equal proxy sums) and tile seeds 0..199: the Horvitz-Thompson SURE curve of the draw,
its argmin (parabola in log w), and the PSNR at that weight, interpolated (quadratic in log w) in the
recorded grid of main's rule for that case (tv_weight_stress.jsonl), minus the best grid PSNR.
Same tile count and size in every design: the solve cost is unchanged.

    cd experiments && PYTHONPATH=../src python tv_tile_draw_designs.py "OP_2 128 PG-B2" "OP_1 128 N3-B3 x0.01"
"""

from __future__ import annotations

import sys

import numpy as np

from tv_tile_draw_diagnosis import argmin_log
from tv_weight_stress import OUT, cases, records

DESIGNS = {"main (sd, count)": (False, "count"), "sd, cumulative": (False, "cumulative"),
           "signal sd, count": (True, "count"), "signal sd, cumulative": (True, "cumulative")}


def psnr_at(rec, w):
    g = sorted((v[0], v[1]) for v in rec["grid"].values())
    x = np.log([a for a, _ in g]); p = np.array([b for _, b in g])
    k = int(np.clip(np.searchsorted(x, np.log(w)), 1, len(x) - 1))
    k = min(max(k, 1), len(x) - 2)
    c = np.polyfit(x[k - 1:k + 2], p[k - 1:k + 2], 2)
    return float(np.polyval(c, np.log(w)))


def main():
    from mire.restore._common import estimate_noise_model, intensity_scale
    from mire.restore._weight import SEARCH_VOXELS, sample_tiles, tiling

    rec = records("design")
    for name in sys.argv[1:]:
        d = np.load(OUT / f"tv_tile_draw_{name.replace(' ', '_')}_curves.npz")
        curves, n = d["curves"], d["n"]
        truth, y, psf, kind = dict(cases("design"))[name]()
        img_n = (y / intensity_scale(y.astype(np.float32))).astype(np.float32)
        noise = estimate_noise_model(img_n)
        key = {repr(sl): i for i, sl in enumerate(tiling(img_n.shape, SEARCH_VOXELS // 6))}
        full = argmin_log(curves.sum(0) / n.sum())
        best = rec[name]["best_psnr"]
        print(f"\n{name}: whole-stack SURE argmin {full:.4g} (loss {psnr_at(rec[name], full) - best:+.3f} dB); "
              f"best grid weight {rec[name]['best_weight']:.4g}")
        print("| design | weight median (5-95 %) | loss vs best: mean / 5 % quantile / worst | P(loss < -0.3 dB) |")
        for label, (sig, rule) in DESIGNS.items():
            ws, losses = [], []
            for seed in range(200):
                tl = sample_tiles(img_n, psf_shape=np.shape(psf), seed=seed, noise=noise if sig else None,
                                  strata=rule)
                est = sum(w * curves[key[repr(sl)]] for sl, w in tl) / sum(w * n[key[repr(sl)]] for sl, w in tl)
                w = argmin_log(est)
                ws.append(w)
                losses.append(psnr_at(rec[name], w) - best)
            ws, losses = np.array(ws), np.array(losses)
            q = np.quantile(ws, [0.05, 0.5, 0.95])
            print(f"| {label} | {q[1]:.4g} ({q[0]:.4g}-{q[2]:.4g}) | {losses.mean():+.3f} / "
                  f"{np.quantile(losses, 0.05):+.3f} / {losses.min():+.3f} | {np.mean(losses < -0.3):.2f} |", flush=True)


if __name__ == "__main__":
    main()
