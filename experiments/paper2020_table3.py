"""Ishii et al. 2020, Table 3: does restoration help neuron tracing?

Protocol (DESIGN.md "Tracing protocol"): degrade each DIADEM OP stack with the paper-2020
condition (``mire.optics.simulate``: N2-B2, N3-B3), restore it with each available method, trace the
result with ``mire.trace.trace``, and score the trace with ``mire.trace.evaluate_tracing``: region
grown from the trace on the *clean* stack vs region grown from the gold-standard SWC, precision and
recall of foreground voxels. Also reported: node precision / recall (4 px tolerance, z step = 3.03 px)
and, on the clean stacks, the tracer's node recall against the gold standard.

Two measurements of the same traces, in this order:

1. **Paper protocol** (the issue's goal is checked on it): each trace is one tree, the one with the most
   cable, as ``trace(..., single_tree=True)`` returns it. The paper traced with APP2 (Xiao & Peng 2013),
   which grows one tree from one seed and drops what it cannot reach, so a neurite the noise breaks loses
   everything beyond the break and restoration is credited for reconnecting it.
2. **All pieces** (``trace(...)``, the default forest tracer): every piece is kept, so the noisy stack's
   recall is already high and no restoration can gain more than 1 - noisy recall.

The script traces once and cuts the forest with ``largest_tree`` (``single_tree_scores``): that is exactly
what ``trace(..., single_tree=True)`` does (tests/trace; ``--check-single-tree`` compares the two on real
stacks), without tracing every image twice.

Run (about 60 CPU minutes on 2 busy cores with the default 160 x 160 px windows)::

    nice -n 10 python experiments/paper2020_table3.py            # writes experiments/results/paper2020_table3.{md,json}
    nice -n 10 python experiments/paper2020_table3.py --window 0  # whole 512 x 512 stacks (slow on CPU)

or in two halves run side by side, then merged::

    nice -n 10 python experiments/paper2020_table3.py --stacks 1,2,3 --tag part1 &
    nice -n 10 python experiments/paper2020_table3.py --stacks 4,5,6 --tag part2
    python experiments/paper2020_table3.py --merge experiments/results/paper2020_table3_part1.json,experiments/results/paper2020_table3_part2.json

Re-render the markdown (and the JSON's summary) from the stored per-stack results, tracing nothing::

    python experiments/paper2020_table3.py --render               # experiments/results/paper2020_table3.json

Check that ``trace(..., single_tree=True)`` scores as the table's ``largest_tree(trace(...))`` does::

    nice -n 10 python experiments/paper2020_table3.py --check-single-tree --stacks 5 --conditions N3-B3 --methods tv_deconvolve

Windows: to keep the run affordable on a CPU, each stack is cut (in memory) to the ``--window`` x
``--window`` px column (all slices) holding the most gold-standard nodes; the gold trace is cut to
the same window.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mire.trace.region_grow import MAX_DISTANCE, SNAP_DISTANCE

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MIRE_DATA", ROOT.parent / "shared" / "data")) / "diadem_op_neurons"
if not DATA.exists() and Path("/work/shared/data/diadem_op_neurons").exists():  # a worktree beside the checkout
    DATA = Path("/work/shared/data/diadem_op_neurons")
OUT = ROOT / "experiments" / "results"
SPACING = (3.03, 1.0, 1.0)  # z step 3.03 px (README of the data set); x/y 0.33 um
TOLERANCE = 4.0              # px (1.3 um) for node matching
CONDITIONS = ("N2-B2", "N3-B3")
PAPER_N3B3 = {"noisy": (0.98, 0.12), "TV": (0.98, 0.33), "CNN": (0.98, 0.45), "U-Net": (0.98, 0.51)}
# Issue #8: at N3-B3 the best restoration gains >= 0.3 recall at precision >= 0.95; clean node recall >= 0.8
GOAL_GAIN, GOAL_PRECISION, GOAL_NODE_RECALL = 0.3, 0.95, 0.8
RESULTS_JSON = OUT / "paper2020_table3.json"
KEYS = ("precision", "recall", "node_precision", "node_recall")


def cut_swc(swc, lo, hi):
    """The part of ``swc`` inside the window [lo, hi) (y, x), shifted to the window's origin.

    Segments crossing the window's edge are clipped at the edge (a node is added there) rather than
    dropped: dropping them would end the gold trace up to one node spacing (median 6 px, up to 15)
    short of the edge while the tracer, which sees the window, traces right up to it.
    """
    box_lo = np.array([lo[1], lo[0]], float)          # (x, y)
    box_hi = np.array([hi[1] - 1, hi[0] - 1], float)   # last pixel centre inside
    xy = swc[:, 2:4]
    inside = np.all((xy >= box_lo) & (xy <= box_hi), axis=1)
    row = {int(i): k for k, i in enumerate(swc[:, 0])}
    out = [r.copy() for r in swc[inside]]
    for r in out:
        if int(r[6]) != -1 and not inside[row[int(r[6])]]:
            r[6] = -1  # re-linked below to a node on the edge
    next_id = int(swc[:, 0].max()) + 1
    for k in range(len(swc)):
        p = int(swc[k, 6])
        if p == -1 or (inside[k] and inside[row[p]]):
            continue
        a, b = swc[k, 2:5], swc[row[p], 2:5]          # child, parent (x, y, z)
        t0, t1 = _clip_segment(a[:2], b[:2], box_lo, box_hi)
        if t0 > t1:
            continue  # the segment misses the window
        ends = []
        for t in (t0, t1):
            if 0 < t < 1 or (t == 0 and not inside[k]) or (t == 1 and not inside[row[p]]):
                pt = a + t * (b - a)
                out.append(np.array([next_id, swc[k, 1], pt[0], pt[1], pt[2], swc[k, 5], -1.0]))
                ends.append(next_id)
                next_id += 1
            else:
                ends.append(int(swc[k, 0]) if t == 0 else p)
        # child-side end hangs off the parent-side end
        child_end, parent_end = ends
        for r in out:
            if int(r[0]) == child_end:
                r[6] = parent_end
    if not out:
        return np.zeros((0, 7))
    res = np.array(out)
    res[:, 2] -= lo[1]
    res[:, 3] -= lo[0]
    return res


def _clip_segment(a, b, lo, hi):
    """Liang-Barsky: the parameter range [t0, t1] of a + t (b - a) inside the box (t0 > t1: none)."""
    t0, t1 = 0.0, 1.0
    d = b - a
    for i in range(len(a)):
        if d[i] == 0:
            if not lo[i] <= a[i] <= hi[i]:
                return 1.0, 0.0
            continue
        ta, tb = (lo[i] - a[i]) / d[i], (hi[i] - a[i]) / d[i]
        t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
    return t0, t1


def best_window(shape, swc, size):
    """(y0, x0) of the size x size window holding the most gold nodes (32 px search grid)."""
    if size <= 0 or size >= max(shape[1:]):
        return (0, 0), tuple(shape[1:])
    best, arg = -1, (0, 0)
    for y0 in range(0, shape[1] - size + 1, 32):
        for x0 in range(0, shape[2] - size + 1, 32):
            n = np.sum((swc[:, 2] >= x0) & (swc[:, 2] < x0 + size) & (swc[:, 3] >= y0) & (swc[:, 3] < y0 + size))
            if n > best:
                best, arg = n, (y0, x0)
    return arg, (arg[0] + size, arg[1] + size)


def restorers():
    """Name -> function(noisy, sigma_blur, noise_sd) for every restoration that exists now."""
    from skimage.restoration import denoise_tv_chambolle

    from mire.trace import noise_sigma

    def chambolle(y, blur, sd):
        scale = float(np.abs(y).max())
        # weight about the noise SD on the [0, 1] scale: the usual ROF rule of thumb
        return denoise_tv_chambolle(y / scale, weight=noise_sigma(y) / scale) * scale

    out = {"noisy": lambda y, blur, sd: y, "tv_chambolle (skimage)": chambolle}
    try:
        from mire.restore import tv_deconvolve

        def tv(y, blur, sd):
            w = 0.5 * noise_sigma(y) / float(np.abs(y).max())  # ~ noise SD / 2 on the solver's [0, 1] scale
            return tv_deconvolve(y, f"gaussian:{blur}", weight=w, n_iter=25, spacing=None)

        out["tv_deconvolve (mire)"] = tv
    except ImportError:
        pass
    try:
        from mire.restore import richardson_lucy

        richardson_lucy(np.ones((8, 8)), "gaussian:1.0", n_iter=1)  # a stub raises NotImplementedError

        def rl(y, blur, sd):
            return richardson_lucy(np.clip(y, 0, None), f"gaussian:{blur}", n_iter=20)

        out["richardson_lucy (mire)"] = rl
    except (ImportError, NotImplementedError, TypeError):
        pass
    try:
        from mire.restore import wiener

        wiener(np.ones((8, 8)), "gaussian:1.0")

        out["wiener (mire)"] = lambda y, blur, sd: wiener(y, f"gaussian:{blur}")
    except (ImportError, NotImplementedError, TypeError):
        pass
    try:  # shipped learned restorers for 3D stacks (mire.models), when there are any
        from mire import models
        from mire.restore import Restorer

        for name in models.available():
            meta = models.load_metadata(name)
            if meta.get("format") == "mire-restorer" and str(meta.get("axes", "")).upper().endswith("ZYX"):
                model = Restorer.load(name)
                out[f"{name} (learned, sha256 {model_hash(name)[:12]})"] = \
                    lambda y, blur, sd, m=model: m.predict(y, axes="ZYX")
    except ImportError:
        pass
    return out


def model_hash(name):
    """SHA-256 of a shipped model's weights: names the exact model a table row was measured with."""
    import hashlib

    from mire import models

    return hashlib.sha256(models.model_path(name).with_suffix(".safetensors").read_bytes()).hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=int, default=160, help="xy window in px (0: whole stacks)")
    ap.add_argument("--stacks", default="1,2,3,4,5,6")
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated, e.g. N3-B3")
    ap.add_argument("--methods", default="", help="comma-separated name fragments to run (default: all)")
    ap.add_argument("--tag", default="", help="suffix of the result files (paper2020_table3_<tag>.md)")
    ap.add_argument("--clean-only", action="store_true",
                    help="only trace the clean stacks (node recall vs gold, tracer time); writes *_clean.{md,json}")
    ap.add_argument("--seeded", action="store_true",
                    help="with --clean-only: seed the tracer at the gold root (as APP2 is seeded at the soma)")
    ap.add_argument("--merge", default="",
                    help="comma-separated result JSONs of partial runs (e.g. --stacks 1,2,3 --tag a and 4,5,6 --tag b)"
                         " to merge into one table, without re-running anything")
    ap.add_argument("--render", nargs="?", const=str(RESULTS_JSON), default="",
                    help=f"re-render the markdown from one result JSON (default {RESULTS_JSON.name}), tracing nothing")
    ap.add_argument("--check-single-tree", action="store_true",
                    help="score trace(..., single_tree=True) next to largest_tree(trace(...)) as the table does "
                         "(use with --stacks / --conditions / --methods); writes nothing")
    args = ap.parse_args(argv)
    torch_threads()
    if args.merge or args.render:
        files = args.merge.split(",") if args.merge else [args.render]
        parts = [json.loads(Path(f).read_text()) for f in files]
        per_stack = [p for part in parts for p in part["per_stack"]]
        order = list(dict.fromkeys(p["method"] for p in per_stack if p["method"] != "clean"))
        args.window = parts[0].get("window", _window_of(per_stack))
        args.merged = len(parts) if args.merge else 0
        if args.render and not args.tag:  # re-render in place: <stem>.md next to <stem>.json
            args.stem = Path(args.render).stem
        return write_table(per_stack, order, args, sum(p.get("elapsed", 0.0) for p in parts))

    from mire.optics import simulate
    from mire.optics.simulate import parse_condition
    from mire.trace import evaluate_tracing, trace

    methods = restorers()
    if args.methods:
        wanted = args.methods.split(",")
        methods = {n: f for n, f in methods.items() if n == "noisy" or any(w in n for w in wanted)}
    conditions = [c for c in args.conditions.split(",") if c]
    if args.check_single_tree:
        return check_single_tree(args, methods, conditions)
    per_stack = []
    t_start = time.time()
    for k in [int(s) for s in args.stacks.split(",")]:
        lo, hi, clean, gold = load_window(k, args.window)
        t0 = time.time()
        seeds = gold[gold[:, 6] == -1][:, 2:5] if args.seeded else None
        swc = trace(clean, spacing=SPACING, seeds=seeds)
        r = evaluate_tracing(clean, swc, gold, spacing=SPACING, tolerance=TOLERANCE)
        r.update(single_tree_scores(clean, swc, gold))
        per_stack.append(dict(stack=f"OP_{k}", window=[list(lo), list(hi)], condition="clean", method="clean",
                              seconds=round(time.time() - t0, 1), **r))
        print(f"OP_{k} clean: node P/R {r['node_precision']:.3f}/{r['node_recall']:.3f}  "
              f"voxel P/R {r['precision']:.3f}/{r['recall']:.3f}  "
              f"single tree {r['tree_precision']:.3f}/{r['tree_recall']:.3f}  ({per_stack[-1]['seconds']} s)",
              flush=True)
        for cond in () if args.clean_only else conditions:
            blur, frac = parse_condition(cond)
            noisy = simulate(clean, condition=cond, seed=k).astype(np.float32)
            for name, fn in methods.items():
                t0 = time.time()
                restored = np.asarray(fn(noisy, blur, frac * float(clean.max())), dtype=np.float32)
                t_restore = time.time() - t0
                swc = trace(restored, spacing=SPACING)
                r = evaluate_tracing(clean, swc, gold, spacing=SPACING, tolerance=TOLERANCE)
                r.update(single_tree_scores(clean, swc, gold))
                per_stack.append(dict(stack=f"OP_{k}", window=[list(lo), list(hi)], condition=cond, method=name,
                                      seconds=round(time.time() - t0, 1), restore_seconds=round(t_restore, 1), **r))
                print(f"OP_{k} {cond} {name:24s} single tree P/R {r['tree_precision']:.3f}/{r['tree_recall']:.3f}  "
                      f"all pieces P/R {r['precision']:.3f}/{r['recall']:.3f}  ({time.time() - t0:.0f} s)",
                      flush=True)

    if args.clean_only:
        return _write_clean(per_stack, args)

    write_table(per_stack, list(methods), args, time.time() - t_start)


def load_window(k, window):
    """Stack OP_k cut to its ``window`` px column with the most gold nodes: (lo, hi, clean, gold)."""
    from mire.io import imread, read_swc

    stack = np.asarray(imread(DATA / f"OP_{k}.tif"), dtype=np.float32)
    gold_full = read_swc(DATA / f"OP_{k}.swc")
    lo, hi = best_window(stack.shape, gold_full, window)
    return lo, hi, stack[:, lo[0]:hi[0], lo[1]:hi[1]], cut_swc(gold_full, lo, hi)


def single_tree_scores(clean, swc, gold):
    """The paper-protocol scores: only the traced tree with the most cable is scored.

    APP2, the paper's tracer, grows one tree from one seed and keeps nothing it cannot reach from
    it, so a neurite broken by noise loses every piece beyond the break. ``largest_tree`` of the
    forest is what ``trace(..., single_tree=True)`` returns (same spacing), so the forest traced
    once gives both measurements. Keys are prefixed ``tree_``.
    """
    from mire.trace import evaluate_tracing, largest_tree

    r = evaluate_tracing(clean, largest_tree(swc, spacing=SPACING), gold, spacing=SPACING, tolerance=TOLERANCE)
    return {f"tree_{k}": r[k] for k in ("precision", "recall", "node_precision", "node_recall", "test_nodes")}


def check_single_tree(args, methods, conditions):
    """Print, per stack / condition / method, ``trace(single_tree=True)`` scored directly next to the
    table's ``largest_tree(trace(...))`` scores, and whether the two traces are identical."""
    from mire.optics import simulate
    from mire.optics.simulate import parse_condition
    from mire.trace import evaluate_tracing, largest_tree, trace

    keys = ("precision", "recall", "node_precision", "node_recall", "test_nodes")
    all_same = True
    for k in [int(s) for s in args.stacks.split(",")]:
        lo, hi, clean, gold = load_window(k, args.window)
        for cond in conditions:
            blur, frac = parse_condition(cond)
            noisy = simulate(clean, condition=cond, seed=k).astype(np.float32)
            for name, fn in methods.items():
                restored = np.asarray(fn(noisy, blur, frac * float(clean.max())), dtype=np.float32)
                forest = trace(restored, spacing=SPACING)
                table = single_tree_scores(clean, forest, gold)
                one = trace(restored, spacing=SPACING, single_tree=True)
                direct = evaluate_tracing(clean, one, gold, spacing=SPACING, tolerance=TOLERANCE)
                same_swc = bool(np.array_equal(one, largest_tree(forest, spacing=SPACING)))
                same = same_swc and all(direct[q] == table[f"tree_{q}"] for q in keys)
                all_same &= same
                print(f"OP_{k} {cond} {name}: trees in the forest {int((forest[:, 6] == -1).sum())}, "
                      f"nodes {len(forest)} -> single tree {len(one)}")
                for label, vals in (("largest_tree(trace())", [table[f"tree_{q}"] for q in keys]),
                                    ("trace(single_tree=True)", [direct[q] for q in keys])):
                    print(f"  {label:24s} " + "  ".join(f"{q} {v:.6g}" for q, v in zip(keys, vals)))
                print(f"  identical SWC: {same_swc}; identical scores: {same}", flush=True)
    print("ALL IDENTICAL" if all_same else "MISMATCH")
    return 0 if all_same else 1


def _window_of(per_stack):
    """Window size of stored rows: the xy extent of the first row's window."""
    (y0, _), (y1, _) = per_stack[0]["window"]
    return y1 - y0


def _unique(per_stack):
    """First row per (stack, condition, method): a merged run repeats the clean and noisy rows (identically)."""
    rows = {}
    for p in per_stack:
        rows.setdefault((p["stack"], p["condition"], p["method"]), p)
    return list(rows.values())


def goal_check(mean, value, stacks, methods_order, prefix=""):
    """The issue's goal on one measurement: best N3-B3 recall gain at precision >= 0.95, clean node recall.

    ``mean(cond, method, key)`` is the mean over stacks, ``value(stack, cond, method, key)`` one stack's
    number; the best method's per-stack gains are kept too, since a mean can hide one stack that gains nothing.
    """
    base = mean("N3-B3", "noisy", prefix + "recall")
    rows = [(mean("N3-B3", m, prefix + "recall") - base, mean("N3-B3", m, prefix + "precision"), m)
            for m in methods_order if m != "noisy" and mean("N3-B3", m, prefix + "recall") is not None]
    precise = [r for r in rows if r[1] >= GOAL_PRECISION]
    gain, prec, method = max(precise) if precise else (float("nan"), float("nan"), None)
    best_any = max(rows) if rows else (float("nan"), float("nan"), None)
    node = mean("clean", "clean", prefix + "node_recall")
    per_stack = {st: value(st, "N3-B3", method, prefix + "recall") - value(st, "N3-B3", "noisy", prefix + "recall")
                 for st in stacks} if method else {}
    return dict(noisy_recall=base, ceiling=1 - base, best_method=method, recall_gain=gain, precision=prec,
                best_method_gain_per_stack=per_stack,
                best_gain_any_precision=dict(method=best_any[2], recall_gain=best_any[0], precision=best_any[1]),
                gain_met=bool(gain >= GOAL_GAIN), clean_node_recall=node,
                node_recall_met=bool(node >= GOAL_NODE_RECALL))


def _goal_lines(g):
    gain = ("**met**" if g["gain_met"] else "**not met**")
    node = ("**met**" if g["node_recall_met"] else "**not met**")
    a = g["best_gain_any_precision"]
    cap = (f"noisy recall {g['noisy_recall']:.3f}, so at most {g['ceiling']:+.3f} is possible; "
           f"best gain at any precision: {a['method']} {a['recall_gain']:+.3f} at {a['precision']:.3f}")
    head = f"- Goal, best N3-B3 recall gain >= {GOAL_GAIN} at precision >= {GOAL_PRECISION}: {gain}: "
    if g["best_method"] is None:
        lines = [head + f"no restoration reaches precision {GOAL_PRECISION} ({cap})."]
    else:
        per = g["best_method_gain_per_stack"]
        lines = [head + f"{g['best_method']} {g['recall_gain']:+.3f} at precision {g['precision']:.3f} ({cap}).",
                 "  Its gain per stack: " + ", ".join(f"{st} {v:+.3f}" for st, v in per.items())
                 + f" ({sum(v >= GOAL_GAIN for v in per.values())} of {len(per)} stacks reach {GOAL_GAIN})."]
    return lines + [f"- Goal, clean node recall >= {GOAL_NODE_RECALL}: {node}: {g['clean_node_recall']:.3f}."]


def write_table(per_stack, methods_order, args, elapsed):
    """Both measurements' mean tables and per-stack voxel precision / recall; writes md + JSON."""
    rows_all = _unique(per_stack)
    stacks = sorted({p["stack"] for p in rows_all}, key=lambda n: int(n.split("_")[1]))

    def mean(cond, method, key):
        vals = [p[key] for p in rows_all if p["condition"] == cond and p["method"] == method]
        return float(np.mean(vals)) if vals else None

    def value(stack, cond, method, key):
        return next(p[key] for p in rows_all
                    if p["stack"] == stack and p["condition"] == cond and p["method"] == method)

    rows = [("clean", "clean")] + [(c, m) for c in CONDITIONS for m in methods_order
                                   if mean(c, m, "recall") is not None]
    has_tree = all("tree_recall" in p for p in rows_all)
    measurements = ([("tree_", "paper protocol: single tree")] if has_tree else []) + \
        [("", "all pieces: default forest tracer")]

    def mean_table(prefix, clean_label):
        out = ["| condition | method | precision | recall | node precision | node recall | recall gain |",
               "|---|---|---|---|---|---|---|"]
        block = {}
        for cond, name in rows:
            vals = [mean(cond, name, prefix + k) for k in KEYS]
            gain = None if cond == "clean" else vals[1] - mean(cond, "noisy", prefix + "recall")
            label = clean_label if cond == "clean" else name
            out.append(f"| {cond} | {label} | " + " | ".join(f"{v:.3f}" for v in vals)
                       + f" | {'' if gain is None else f'{gain:+.3f}'} |")
            block[f"{cond} {name}"] = dict(zip(KEYS, vals), **({} if gain is None else {"recall_gain": gain}))
        return out, block

    def per_stack_table(prefix):
        out = ["| condition | method | " + " | ".join(stacks) + " |", "|---|---|" + "---|" * len(stacks)]
        for cond, name in rows:
            cells = []
            for st in stacks:
                hit = [p for p in rows_all if p["stack"] == st and p["condition"] == cond and p["method"] == name]
                cells.append(f"{hit[0][prefix + 'precision']:.3f} / {hit[0][prefix + 'recall']:.3f}" if hit else "")
            out.append(f"| {cond} | {name} | " + " | ".join(cells) + " |")
        return out

    lines = ["# Paper 2020 Table 3 (tracing after restoration), DIADEM OP stacks",
             "",
             f"Stacks {', '.join(stacks)}; xy window {args.window or 'whole'} px (all slices); "
             f"node tolerance {TOLERANCE} px with z step {SPACING[0]} px; mean over stacks. "
             "Precision / recall: foreground voxels grown from the test trace vs from the gold trace on the "
             "clean stack (paper protocol; `region_grow`: geodesic growth through voxels above Otsu-near-gold, "
             f"{MAX_DISTANCE:g} px, seeded from bright voxels within {SNAP_DISTANCE:g} px of the trace). "
             "Gold traces are clipped at the window's edge. Learned rows: shipped model, weights' SHA-256 prefix "
             "in the name (fluo3d-neurite-restore was trained on OP_1..OP_4: OP_5/OP_6 are its held-out stacks). "
             "Both tables score the same traces.",
             ""]
    summary, goals = {}, {}
    for prefix, title in measurements:
        table, block = mean_table(prefix, "(tracer on the clean stack" + (", single tree)" if prefix else ")"))
        summary[title] = block
        goals[title] = goal_check(mean, value, stacks, methods_order, prefix)
        if prefix:
            lines += ["## Paper protocol: one tree per trace (`trace(..., single_tree=True)`)", "",
                      "Each trace is the one tree with the most cable, as APP2 (Xiao & Peng 2013), the paper's "
                      "tracer, returns the one tree it grows from its seed: pieces the noise broke off the main "
                      "tree count as missed, and restoration is credited for reconnecting them. The issue's goal "
                      "is checked here.", ""]
        else:
            lines += ["## Second measurement: the default forest tracer (`trace(...)`, every piece kept)", "",
                      "Why the gain is capped at 1 - noisy recall: the default tracer keeps every piece it finds "
                      "(noise-normalised hysteresis thresholds, gap bridging), so it already recovers most of the "
                      "neurite on the noisy stack and no restoration can add more than what is left.", ""]
        lines += table + [""] + _goal_lines(goals[title]) + [""]
        if prefix:
            lines += ["Paper (N3-B3, voxel precision / recall): " +
                      ", ".join(f"{k} {p:.2f} / {r:.2f}" for k, (p, r) in PAPER_N3B3.items()), ""]
    for prefix, title in measurements:
        lines += [f"Per stack, voxel precision / recall, {title}:", ""] + per_stack_table(prefix) + [""]
    merged = getattr(args, "merged", 0)
    if getattr(args, "render", ""):
        note = f" (as stored in {Path(args.render).name}, the runs behind it summed; rendered with --render)."
    else:
        note = f" (sum over {merged} merged runs)." if merged else "."
    lines += [f"Total time {elapsed:.0f} s" + note]
    table = "\n".join(lines)
    print(table)
    for title, g in goals.items():
        best = (f"{g['best_method']} {g['recall_gain']:+.3f} at precision {g['precision']:.3f}"
                if g["best_method"] else f"no restoration at precision >= {GOAL_PRECISION}")
        print(f"GOAL ({title}): N3-B3 gain {'MET' if g['gain_met'] else 'NOT MET'} ({best}); "
              f"clean node recall {'MET' if g['node_recall_met'] else 'NOT MET'} ({g['clean_node_recall']:.3f})")
    OUT.mkdir(parents=True, exist_ok=True)
    stem = getattr(args, "stem", None) or "paper2020_table3" + (f"_{args.tag}" if args.tag else "")
    _write_atomic(OUT / f"{stem}.md", table + "\n")
    _write_atomic(OUT / f"{stem}.json", json.dumps({"summary": summary, "goal": goals, "window": args.window,
                                                    "per_stack": per_stack, "elapsed": round(elapsed, 1)}, indent=1))


def _write_atomic(path, text):
    """Write next to ``path`` and rename: a crash never leaves a half-written result (or JSON) behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def torch_threads():
    """One torch thread: on a shared, oversubscribed CPU two threads run 5-10x slower."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _write_clean(per_stack, args):
    lines = ["# Tracer on the clean DIADEM OP stacks vs the gold standard", "",
             f"xy window {args.window or 'whole stack'}; node tolerance {TOLERANCE} px, z step {SPACING[0]} px; "
             + ("seeded at the gold root." if args.seeded else "automatic (no seeds)."), "",
             "| stack | nodes traced | node precision | node recall | voxel precision | voxel recall | seconds |",
             "|---|---|---|---|---|---|---|"]
    for p in per_stack:
        lines.append(f"| {p['stack']} | {p['test_nodes']} | {p['node_precision']:.3f} | {p['node_recall']:.3f} | "
                     f"{p['precision']:.3f} | {p['recall']:.3f} | {p['seconds']} |")
    keys = ("node_precision", "node_recall", "precision", "recall")
    means = {k: float(np.mean([p[k] for p in per_stack])) for k in keys}
    lines.append("| mean | | " + " | ".join(f"{means[k]:.3f}" for k in keys) + " | |")
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "paper2020_table3_clean" + ("_seeded" if args.seeded else "")
    (OUT / f"{stem}.md").write_text(table + "\n")
    (OUT / f"{stem}.json").write_text(json.dumps({"mean": means, "per_stack": per_stack}, indent=1))


if __name__ == "__main__":
    main()
