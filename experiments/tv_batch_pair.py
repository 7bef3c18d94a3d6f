"""Does solving a SURE trial's data and probe problems as ONE batched ADMM pay? (issue #20, time to quality)

The default weight search (:mod:`mire.restore._weight`) runs, per tile and trial weight, two 40-iteration
ADMM solves from the same state: one on the data, one on the data plus the Monte-Carlo probe. Here the
pair runs as one ADMM on ``(2, *grid)`` tensors (FFTs over the spatial axes, every pass once for both;
per-element penalties, so each element adapts as its own solve would). The script checks that every
iterate is bit for bit the unbatched one's, then times the search's first ``--trials`` trial weights
both ways, alternating, by **process CPU time** (the wall clock of the shared 2-core machine moves by
1.5x between runs; CPU time of a one-thread run does not see the other jobs' load as much).

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_batch_pair.py [--stack OP_5] [--size 128] [--reps 4]

Result (2026-12-07, OP_5 128^2 N2-B2, tile grids 32..35 x 48 x 45..48): bit-identical; CPU time batched /
separate 0.99, 0.99, 1.03, 1.04 over four alternations, and
1.035, 1.050, 0.984, 0.988 in a second run: no gain, so it was not put into the library. ``--group-tiles``
also batches every tile of one grid shape with its probe (6 tiles in 4 shapes here): bit-identical, and slower,
1.19, 1.08, 1.07x the separate solves (larger batches leave the cache)
(experiments/results/tv_search_speed.md).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _bgrad(x, out):
    """Periodic forward differences over the spatial axes of a batch ``(B, *grid)``, unit spacing."""
    from mire.restore._common import _axis_slices

    nd = x.ndim
    for a in range(nd - 1):
        sl = lambda i, j, ax=a + 1: _axis_slices(nd, ax, i, j)  # noqa: E731
        torch.sub(x[sl(1, None)], x[sl(0, -1)], out=out[a][sl(0, -1)])
        torch.sub(x[sl(0, 1)], x[sl(-1, None)], out=out[a][sl(-1, None)])
    return out


def _bgrad_adjoint(g, out):
    from mire.restore._common import _axis_slices

    nd = g.ndim - 1
    for a in range(nd - 1):
        ga = g[a]
        sl = lambda i, j, ax=a + 1: _axis_slices(nd, ax, i, j)  # noqa: E731
        if a == 0:
            torch.sub(ga[sl(0, -1)], ga[sl(1, None)], out=out[sl(1, None)])
            torch.sub(ga[sl(-1, None)], ga[sl(0, 1)], out=out[sl(0, 1)])
        else:
            out[sl(1, None)].add_(ga[sl(0, -1)]).sub_(ga[sl(1, None)])
            out[sl(0, 1)].add_(ga[sl(-1, None)]).sub_(ga[sl(0, 1)])
    return out


def stack_states(states):
    from mire.restore.tv import _State

    return _State(x=torch.stack([s.x for s in states]), tu=torch.stack([s.tu for s in states]),
                  tz=torch.stack([s.tz for s in states], 1), ts=torch.stack([s.ts for s in states]),
                  a=torch.stack([s.a for s in states]), b=torch.stack([s.b for s in states], 1),
                  e=torch.stack([s.e for s in states]), rho=[list(s.rho) for s in states])


def admm_batch(probs, weight, st, *, n_iter, adapt_every):
    """The search's ADMM (L2, positivity, unit spacing, no logs) on a batch of problems on one grid;
    the same arithmetic as :func:`mire.restore.tv._admm` element by element."""
    from mire._fft import irfftn, rfftn
    from mire.restore.tv import _Coefficients

    p, nb = probs[0], len(probs)
    grid = p.domain.grid
    dims = tuple(range(1, len(grid) + 1))

    def coefficients():
        cs = [_Coefficients(q, r) for q, r in zip(probs, st.rho)]
        return (cs, torch.stack([c.inv_den for c in cs]), torch.stack([c.cotf_den for c in cs]),
                torch.stack([c.ka for c in cs]), torch.stack([c.neg_kay for c in cs]))

    cl, inv_den, cotf_den, ka, neg_kay = coefficients()
    rhs, v_z = torch.empty_like(st.x), torch.empty_like(st.tz)
    for it in range(1, n_iter + 1):
        check = it % adapt_every == 0
        _bgrad_adjoint(st.tz, rhs)
        for i in range(nb):
            rhs[i].add_(st.ts[i], alpha=cl[i].cs)
        x_f = rfftn(rhs, dim=dims).mul_(inv_den)
        x_f.addcmul_(rfftn(st.tu, dim=dims), cotf_den)
        x = irfftn(x_f, s=grid, dim=dims)
        hx = irfftn(x_f.mul_(p.otf), s=grid, dim=dims)
        del x_f
        gx = _bgrad(x, v_z)
        if check:
            old = (st.tu + st.a, st.tz + st.b, st.ts + st.e)
            old_duals = (st.a, st.b.clone(), st.e.clone())
        v = hx.add_(st.a)
        st.a = torch.addcmul(neg_kay, v, ka, out=st.tu)
        st.tu = v.sub_(st.a, alpha=2)
        v = gx.add_(st.b)
        g = torch.mul(v[0], v[0], out=rhs)
        for k in range(1, v.shape[0]):
            g.addcmul_(v[k], v[k])
        g.rsqrt_()
        for i in range(nb):
            g[i].mul_(weight / st.rho[i][1]).clamp_max_(1)
        torch.mul(v, g, out=st.b)
        v_z, st.tz = st.tz, v.sub_(st.b, alpha=2)
        v = st.e.add_(x)
        torch.abs(v, out=st.ts)
        st.e = v.clamp_max_(0)
        st.x = x
        if check:
            changed = False
            pick = lambda t, i: t[:, i] if t.ndim > x.ndim else t[i]  # noqa: E731
            new = (st.tu + st.a, st.tz + st.b, st.ts + st.e)
            for i in range(nb):
                res = [float(torch.dist(pick(n, i), pick(o, i))) for n, o in zip((st.a, st.b, st.e), old_duals)]
                dres = [r * float(torch.dist(pick(n, i), pick(o, i))) for r, n, o in zip(st.rho[i], new, old)]
                for k, (rp, rd) in enumerate(zip(res, dres)):
                    f = 2.0 if rp > 10 * rd else 0.5 if rd > 10 * rp else None
                    if f is None:
                        continue
                    changed = True
                    st.rho[i][k] *= f
                    dual, target = ("a", "tu") if k == 0 else ("b", "tz") if k == 1 else ("e", "ts")
                    d, t = pick(getattr(st, dual), i), pick(getattr(st, target), i)
                    split = t + d
                    d.div_(f)
                    torch.sub(split, d, out=t)
            if changed:
                cl, inv_den, cotf_den, ka, neg_kay = coefficients()
    return st


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stack", default="OP_5")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--condition", default="N2-B2")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--group-tiles", action="store_true", help="also batch all tiles of one grid shape")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import mire.restore._weight as W
    import mire.restore.tv as T
    from mire.optics import gaussian_psf, simulate
    from mire.optics.simulate import parse_condition
    from tv_weight_stress import op_crop

    truth = op_crop(args.stack, args.size, seed=1)
    sigma, _ = parse_condition(args.condition)
    psf = gaussian_psf(sigma, ndim=3)
    y = simulate(truth, condition=args.condition, seed=0).astype(np.float32)
    sample = W._Sample(y / np.abs(y).max(), psf, spacing=(1.0,) * 3, positivity=True, seed=0, device="cpu")
    ws = [0.3 / 2**k for k in range(args.trials)]  # the search's first trials
    opts = dict(n_iter=W.SEARCH_ITER, tol=0, rho0=T.SEARCH_RHO, adapt_every=T.SEARCH_ADAPT, objective_every=0,
                log_change=False)

    def separate():
        states, out = [None] * len(sample.tiles), []
        for w in ws:
            for i, t in enumerate(sample.tiles):
                start = states[i]
                st_p, _ = T._admm(t["prob_p"], w, state=copy.deepcopy(start) if start is not None else None, **opts)
                st, _ = T._admm(t["prob"], w, state=start, **opts)
                states[i] = st
                out.append((st.x.clone(), st_p.x.clone()))
        return out

    def batched():
        states, out = [None] * len(sample.tiles), []
        for w in ws:
            for i, t in enumerate(sample.tiles):
                bs = states[i]
                if bs is None:
                    bs = stack_states([T._init_state(t["prob"], w, T.SEARCH_RHO),
                                       T._init_state(t["prob_p"], w, T.SEARCH_RHO)])
                else:  # both start from the data solve's state, as the search does
                    for name in ("x", "tu", "ts", "a", "e"):
                        getattr(bs, name)[1] = getattr(bs, name)[0]
                    for name in ("tz", "b"):
                        getattr(bs, name)[:, 1] = getattr(bs, name)[:, 0]
                    bs.rho[1] = list(bs.rho[0])
                states[i] = admm_batch([t["prob"], t["prob_p"]], w, bs, n_iter=W.SEARCH_ITER,
                                       adapt_every=T.SEARCH_ADAPT)
                out.append((bs.x[0].clone(), bs.x[1].clone()))
        return out

    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(sample.tiles):
        groups.setdefault(tuple(t["y"].shape), []).append(i)

    def grouped():
        """The tiles of one grid shape and their probes as one batch (same OTF, window and Laplacian)."""
        states, out = {}, {}
        for w in ws:
            for shape, idx in groups.items():
                probs = [q for i in idx for q in (sample.tiles[i]["prob"], sample.tiles[i]["prob_p"])]
                bs = states.get(shape)
                if bs is None:
                    bs = stack_states([T._init_state(q, w, T.SEARCH_RHO) for q in probs])
                else:
                    for j in range(0, len(probs), 2):
                        for name in ("x", "tu", "ts", "a", "e"):
                            getattr(bs, name)[j + 1] = getattr(bs, name)[j]
                        for name in ("tz", "b"):
                            getattr(bs, name)[:, j + 1] = getattr(bs, name)[:, j]
                        bs.rho[j + 1] = list(bs.rho[j])
                states[shape] = admm_batch(probs, w, bs, n_iter=W.SEARCH_ITER, adapt_every=T.SEARCH_ADAPT)
                for k, i in enumerate(idx):
                    out[(w, i)] = (bs.x[2 * k].clone(), bs.x[2 * k + 1].clone())
        return [out[(w, i)] for w in ws for i in range(len(sample.tiles))]

    print(f"{args.stack} {args.size}^2 {args.condition}: tile grids {sorted({tuple(t['y'].shape) for t in sample.tiles})}")
    for rep in range(args.reps):
        t0 = time.process_time()
        a = separate()
        t1 = time.process_time()
        b = batched()
        t2 = time.process_time()
        c = grouped() if args.group_tiles else b
        t3 = time.process_time()
        same = all(torch.equal(u[0], v[0]) and torch.equal(u[1], v[1]) for u, v in zip(a, b))
        same_g = all(torch.equal(u[0], v[0]) and torch.equal(u[1], v[1]) for u, v in zip(a, c))
        print(f"rep {rep}: separate {t1 - t0:.2f} s, batched {t2 - t1:.2f} s CPU, ratio {(t2 - t1) / (t1 - t0):.3f},"
              f" bit-identical {same}" + (f"; tiles grouped by shape {t3 - t2:.2f} s, ratio"
                                          f" {(t3 - t2) / (t1 - t0):.3f}, bit-identical {same_g}"
                                          if args.group_tiles else ""))


if __name__ == "__main__":
    main()
