"""Design loop for a cheaper SURE weight search (issue #20, time to quality): design half only.

For each design-half case of experiments/tv_weight_stress.py, run only the weight search with the
settings under test and read the PSNR / SSIM the full solve would have at the chosen weight off the
stress run's recorded grid (rule ``--ref-rule``; piecewise linear in log weight between the grid's
factor-sqrt(2) points). Prints chosen weight, search seconds and default-minus-best per case.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_search_speed.py --n-iter 20
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tv_weight_stress as S  # noqa: E402


def at_weight(ref, w):
    """PSNR, SSIM at weight ``w`` from the recorded grid: a parabola in log weight through the three
    grid points nearest to ``w`` (the curve is smooth and peaked; linear interpolation would
    understate the peak)."""
    g = sorted(ref["grid"].values())
    lw = np.log([v[0] for v in g])
    x = np.log(w)
    if x <= lw[0] or x >= lw[-1]:
        k = 0 if x <= lw[0] else len(g) - 1
        return g[k][1], g[k][2]
    k = int(np.clip(np.argmin(np.abs(lw - x)), 1, len(g) - 2))
    out = []
    for j in (1, 2):
        c = np.polyfit(lw[k - 1:k + 2], [v[j] for v in g[k - 1:k + 2]], 2)
        out.append(float(np.polyval(c, x)))
    return out[0], out[1]


def nearest_start_search(img, psf, *, n_iter, bounds=(1e-4, 0.3)):
    """The default SURE search, except that every trial starts from the state of the nearest weight
    solved so far (in log weight) instead of the last one (an option under test, not the default)."""
    import copy
    import math

    import mire.restore._weight as W
    from mire.restore.tv import SEARCH_ADAPT, SEARCH_RHO, _admm

    sample = W._Sample(img.astype(np.float32), psf, spacing=(1.0,) * img.ndim, positivity=True, seed=0,
                       device="cpu")
    states: dict[float, list] = {}
    opts = dict(n_iter=n_iter, tol=0, rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT, objective_every=0, log_change=False)
    curve = []

    def score(w):
        near = min(states, key=lambda v: abs(math.log(v / w))) if states else None
        xs, xps, new = [], [], []
        for i, t in enumerate(sample.tiles):
            start = states[near][i] if near is not None else None
            st_p, _ = _admm(t["prob_p"], w, state=copy.deepcopy(start) if start is not None else None, **opts)
            st, _ = _admm(t["prob"], w, state=copy.deepcopy(start) if start is not None else None, **opts)
            new.append(st)
            xs.append(st.x)
            xps.append(st_p.x)
        states[w] = new
        s = sample.risk(xs, xps)
        curve.append((w, s))
        return s

    w = W._minimize_log_weight(score, start=bounds[1], lo=bounds[0], hi=100 * bounds[1])
    return w, curve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-iter", type=int, default=None, help="ADMM iterations per trial solve (SEARCH_ITER)")
    ap.add_argument("--margin-radii", type=float, default=None, help="tile margin in PSF radii (MARGIN_RADII)")
    ap.add_argument("--only", default=None)
    ap.add_argument("--ref-rule", default="tiles-sure-v1")
    ap.add_argument("--half", default="design")
    ap.add_argument("--tag", default="")
    ap.add_argument("--nearest", action="store_true", help="start each trial from the nearest weight's state")
    a = ap.parse_args()
    import torch

    import mire.restore._weight as W
    from mire.restore._common import check_inputs, intensity_scale

    torch.set_num_threads(1)
    if a.margin_radii is not None:
        W.MARGIN_RADII = a.margin_radii
    n_iter = W.SEARCH_ITER if a.n_iter is None else a.n_iter
    refs = {}
    for line in S.RECORDS.read_text().splitlines():
        r = json.loads(line)
        if r["rule"] == a.ref_rule and r["half"] == a.half:
            refs[r["case"]] = r
    rows = []
    for name, make in S.cases(a.half):
        if a.only and a.only not in name:
            continue
        truth, y, psf, kind = make()
        img, kernel = check_inputs(y.astype(np.float32), psf)
        if min(kernel.shape) == 1:
            kernel = np.pad(kernel, [(1, 1) if n == 1 else (0, 0) for n in kernel.shape])
        img_n = img / intensity_scale(img)
        t0 = time.perf_counter()
        if a.nearest:
            w, curve = nearest_start_search(img_n, kernel, n_iter=n_iter)
        else:
            w, curve = W.choose_tv_weight(img_n, kernel, n_iter=n_iter, return_curve=True)
        sec = time.perf_counter() - t0
        ref = refs[name]
        p, s = at_weight(ref, w)
        rows.append((name, w, ref["default_weight"], p - ref["best_psnr"], s - ref["best_ssim"], sec, len(curve)))
        print(f"{name:34s} w {w:.4g} (ref {ref['default_weight']:.4g}) d {p - ref['best_psnr']:+.2f} dB"
              f" ssim {s - ref['best_ssim']:+.3f}  {sec:.1f} s {len(curve)} trials", flush=True)
    d = np.array([r[3] for r in rows])
    ss = np.array([r[4] for r in rows])
    print(f"{a.tag} n_iter {n_iter} margin radii {W.MARGIN_RADII}: mean {d.mean():+.3f} worst {d.min():+.2f} ssim worst "
          f"{ss.min():+.3f} search s total {sum(r[5] for r in rows):.1f}, weight ratio to ref: "
          + " ".join(f"{r[1] / r[2]:.2f}" for r in rows))


if __name__ == "__main__":
    main()
