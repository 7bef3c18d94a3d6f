"""Why does the default TV weight move with the tile-sample seed? (issue #20, helper task 5; design half)

For a design-half case of experiments/tv_weight_stress.py: the SURE curve of EVERY tile of the
default tiling (each tile solved with its context margin, warm-started down a weight grid 0.3 / sqrt(2)^k,
40 ADMM iterations per weight, as a search trial), with the tile's standard deviation (what the
stratification sorts by), its share of the truth's signal, and its stratum. From these curves any
sampling design can be evaluated offline: the whole-stack SURE (all tiles, the quantity the sample
estimates), the Horvitz-Thompson estimate of each seed's draw, and its argmin. Then, with the tiles of
one seed fixed, the probe vector b is varied (probe seeds) to separate its share of the scatter.

    cd experiments && PYTHONPATH=../src OMP_NUM_THREADS=1 nice -n 8 python tv_tile_draw_diagnosis.py "OP_2 128 PG-B2"
Writes experiments/results/tv_tile_draw_<case>.npz.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from tv_weight_stress import OUT, cases

GRID = 0.3 / np.sqrt(2.0) ** np.arange(0, 12)  # 0.3 .. 0.0066


def tile_curves(img_n, psf, tiles, *, probe_seed=0):
    """Per-tile SURE terms (resid - var + 2 div, summed over the tile) at every GRID weight."""
    import copy

    import torch

    from mire.restore._weight import _SURE_EPS, SEARCH_ITER, _Sample
    from mire.restore.tv import SEARCH_ADAPT, SEARCH_RHO, _admm, _blur

    s = _Sample(img_n, psf, spacing=(1.0,) * img_n.ndim, positivity=True, seed=0, device=torch.device("cpu"),
                tiles=[(sl, 1.0) for sl in tiles], probe_seed=probe_seed)
    opts = dict(n_iter=SEARCH_ITER, tol=0, rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT, objective_every=0,
                log_change=False)
    out = np.zeros((len(tiles), len(GRID)))
    for i, t in enumerate(s.tiles):
        st = None
        for j, w in enumerate(GRID):
            st_p, _ = _admm(t["prob_p"], float(w), state=copy.deepcopy(st) if st is not None else None, **opts)
            st, _ = _admm(t["prob"], float(w), state=st, **opts)
            p = t["prob"]
            hx, hxp = _blur(p, st.x), _blur(p, st_p.x)
            resid = float((t["inner"] * (hx - t["y"]) ** 2).sum())
            div = float((t["probe"] * (hxp - hx)).sum()) / _SURE_EPS
            out[i, j] = resid - t["var"] + 2.0 * div
    n = np.array([float(t["inner"].sum()) for t in s.tiles])
    return out, n


def argmin_log(curve):
    k = int(np.argmin(curve))
    if 0 < k < len(curve) - 1:
        x = np.log(GRID[k - 1:k + 2])
        a, b, _ = np.polyfit(x, curve[k - 1:k + 2], 2)
        if a > 0:
            return float(np.exp(np.clip(-b / (2 * a), min(x), max(x))))
    return float(GRID[k])


def main():
    from mire.restore._common import intensity_scale
    from mire.restore._weight import SEARCH_VOXELS, sample_tiles, tiling

    name = sys.argv[1]
    make = dict(cases("design"))[name]
    truth, y, psf, kind = make()
    y = y.astype(np.float32)
    img_n = y / intensity_scale(y)
    tiles = tiling(img_n.shape, SEARCH_VOXELS // 6)
    sd = np.array([float(np.std(img_n[sl])) for sl in tiles])
    sig = np.array([float(truth[sl].sum()) for sl in tiles]) / truth.sum()
    t0 = time.perf_counter()
    curves, n = tile_curves(img_n, psf, tiles)
    print(f"{len(tiles)} tiles, curves in {time.perf_counter() - t0:.0f} s", flush=True)
    np.savez(OUT / f"tv_tile_draw_{name.replace(' ', '_')}_curves.npz", curves=curves, n=n, sd=sd, sig=sig, grid=GRID)
    key = {repr(sl): i for i, sl in enumerate(tiles)}
    draws = {}
    for seed in range(6):
        tl = sample_tiles(img_n, psf_shape=np.shape(psf), seed=seed, strata="count")  # main's draw
        draws[seed] = [(key[repr(sl)], w) for sl, w in tl]
    # probe scatter: tiles of seeds 0 and 1 fixed, probe seeds 0..3 (the default uses probe = tile seed)
    probe = {}
    for seed in (0, 1):
        idx = [i for i, _ in draws[seed]]
        for ps in range(4):
            c, _ = tile_curves(img_n, psf, [tiles[i] for i in idx], probe_seed=100 + ps)
            probe[(seed, ps)] = c
    np.savez(OUT / f"tv_tile_draw_{name.replace(' ', '_')}.npz", curves=curves, n=n, sd=sd, sig=sig, grid=GRID,
             draws=np.array([[seed, i, w] for seed, d in draws.items() for i, w in d]),
             probe=np.array([[s_, ps, *row] for (s_, ps), c in probe.items() for row in c.ravel()[None]]),
             probe_keys=np.array(list(probe)))
    full = curves.sum(0) / n.sum()
    print(f"whole-stack SURE (all tiles) argmin {argmin_log(full):.4g}")
    order = np.argsort(-sd, kind="stable")
    stratum = np.empty(len(tiles), int)
    stratum[order[:3]] = -1
    for k, st in enumerate(np.array_split(order[3:], 3)):
        stratum[st] = k
    for seed, d in draws.items():
        est = sum(w * curves[i] for i, w in d) / sum(w * n[i] for i, w in d)
        desc = ", ".join(f"t{i}(str {stratum[i]}, w {w:.0f}, sd {sd[i]:.4f}, sig {sig[i]:.3f})" for i, w in d[3:])
        print(f"seed {seed}: HT argmin {argmin_log(est):.4g}; drawn {desc}")
    for seed in (0, 1):
        d = draws[seed]
        ws = np.array([w for _, w in d])
        for ps in range(4):
            c = probe[(seed, ps)]
            est = (ws[:, None] * c).sum(0) / sum(w * n[i] for i, w in d)
            print(f"tiles of seed {seed}, probe seed {100 + ps}: argmin {argmin_log(est):.4g}")
    # per-stratum: spread of the tiles' own argmins and of their curve shapes
    for k in (-1, 0, 1, 2):
        idx = np.where(stratum == k)[0]
        am = [argmin_log(curves[i]) for i in idx]
        print(f"stratum {k}: {len(idx)} tiles, sd {sd[idx].min():.4f}..{sd[idx].max():.4f}, signal share "
              f"{sig[idx].sum():.3f} (max tile {sig[idx].max():.3f}), tile argmins {np.min(am):.3g}..{np.max(am):.3g}")


if __name__ == "__main__":
    main()
