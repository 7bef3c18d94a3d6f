"""Ishii et al. 2020, Table 3: does restoration help neuron tracing?

Protocol (DESIGN.md "Tracing protocol"): degrade each DIADEM OP stack with the paper-2020
condition (``mire.optics.simulate``: N2-B2, N3-B3), restore it with each available method, trace the
result with ``mire.trace.trace``, and score the trace with ``mire.trace.evaluate_tracing``: region
grown from the trace on the *clean* stack vs region grown from the gold-standard SWC, precision and
recall of foreground voxels. Also reported: node precision / recall (4 px tolerance, z step = 3.03 px)
and, on the clean stacks, the tracer's node recall against the gold standard.

Run (about 30 min on 2 busy CPU cores with the default 160 x 160 px windows)::

    nice -n 10 python experiments/paper2020_table3.py            # writes experiments/results/paper2020_table3.{md,json}
    nice -n 10 python experiments/paper2020_table3.py --window 0  # whole 512 x 512 stacks (slow on CPU)

or in two halves run side by side, then merged::

    nice -n 10 python experiments/paper2020_table3.py --stacks 1,2,3 --tag part1 &
    nice -n 10 python experiments/paper2020_table3.py --stacks 4,5,6 --tag part2
    python experiments/paper2020_table3.py --merge experiments/results/paper2020_table3_part1.json,experiments/results/paper2020_table3_part2.json

A second, separately labelled measurement scores only each trace's largest tree (see
``single_tree_scores``): the paper traced with APP2, which returns the one tree grown from its seed.

Windows: to keep the run affordable on a CPU, each stack is cut (in memory) to the ``--window`` x
``--window`` px column (all slices) holding the most gold-standard nodes; the gold trace is cut to
the same window.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mire.trace.region_grow import MAX_DISTANCE, SNAP_DISTANCE

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "diadem_op_neurons"
OUT = ROOT / "experiments" / "results"
SPACING = (3.03, 1.0, 1.0)  # z step 3.03 px (README of the data set); x/y 0.33 um
TOLERANCE = 4.0              # px (1.3 um) for node matching
CONDITIONS = ("N2-B2", "N3-B3")
PAPER_N3B3 = {"noisy": (0.98, 0.12), "TV": (0.98, 0.33), "CNN": (0.98, 0.45), "U-Net": (0.98, 0.51)}


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
    ap.add_argument("--methods", default="", help="comma-separated name fragments to run (default: all)")
    ap.add_argument("--tag", default="", help="suffix of the result files (paper2020_table3_<tag>.md)")
    ap.add_argument("--clean-only", action="store_true",
                    help="only trace the clean stacks (node recall vs gold, tracer time); writes *_clean.{md,json}")
    ap.add_argument("--seeded", action="store_true",
                    help="with --clean-only: seed the tracer at the gold root (as APP2 is seeded at the soma)")
    ap.add_argument("--merge", default="",
                    help="comma-separated result JSONs of partial runs (e.g. --stacks 1,2,3 --tag a and 4,5,6 --tag b)"
                         " to merge into one table, without re-running anything")
    args = ap.parse_args(argv)
    torch_threads()
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge.split(",")]
        per_stack = [p for part in parts for p in part["per_stack"]]
        order = list(dict.fromkeys(p["method"] for p in per_stack if p["method"] != "clean"))
        args.merged = len(parts)
        return write_table(per_stack, order, args, sum(p.get("elapsed", 0.0) for p in parts))

    from mire.io import imread, read_swc
    from mire.optics import simulate
    from mire.optics.simulate import parse_condition
    from mire.trace import evaluate_tracing, trace

    methods = restorers()
    if args.methods:
        wanted = args.methods.split(",")
        methods = {n: f for n, f in methods.items() if n == "noisy" or any(w in n for w in wanted)}
    rows, per_stack = [], []
    t_start = time.time()
    for k in [int(s) for s in args.stacks.split(",")]:
        stack = np.asarray(imread(DATA / f"OP_{k}.tif"), dtype=np.float32)
        gold_full = read_swc(DATA / f"OP_{k}.swc")
        lo, hi = best_window(stack.shape, gold_full, args.window)
        clean = stack[:, lo[0]:hi[0], lo[1]:hi[1]]
        gold = cut_swc(gold_full, lo, hi)
        t0 = time.time()
        seeds = gold[gold[:, 6] == -1][:, 2:5] if args.seeded else None
        swc = trace(clean, spacing=SPACING, seeds=seeds)
        r = evaluate_tracing(clean, swc, gold, spacing=SPACING, tolerance=TOLERANCE)
        r.update(single_tree_scores(clean, swc, gold))
        per_stack.append(dict(stack=f"OP_{k}", window=[list(lo), list(hi)], condition="clean", method="clean",
                              seconds=round(time.time() - t0, 1), **r))
        print(f"OP_{k} clean: node P/R {r['node_precision']:.3f}/{r['node_recall']:.3f}  "
              f"voxel P/R {r['precision']:.3f}/{r['recall']:.3f}  ({per_stack[-1]['seconds']} s)", flush=True)
        for cond in () if args.clean_only else CONDITIONS:
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
                print(f"OP_{k} {cond} {name:24s} voxel P/R {r['precision']:.3f}/{r['recall']:.3f}  "
                      f"node P/R {r['node_precision']:.3f}/{r['node_recall']:.3f}  ({time.time() - t0:.0f} s)",
                      flush=True)

    if args.clean_only:
        return _write_clean(per_stack, args)

    methods_order = list(methods)
    write_table(per_stack, methods_order, args, time.time() - t_start)


def single_tree_scores(clean, swc, gold):
    """The second, APP2-like measurement: only the traced tree with the most cable is scored.

    APP2, the paper's tracer, grows one tree from one seed and keeps nothing it cannot reach from
    it, so a neurite broken by noise loses every piece beyond the break; ``mire.trace.trace``
    keeps every piece. Keys are prefixed ``tree_``.
    """
    from mire.trace import evaluate_tracing, largest_tree

    r = evaluate_tracing(clean, largest_tree(swc, spacing=SPACING), gold, spacing=SPACING, tolerance=TOLERANCE)
    return {f"tree_{k}": r[k] for k in ("precision", "recall", "node_precision", "node_recall", "test_nodes")}


def write_table(per_stack, methods_order, args, elapsed):
    """Mean table (and per-stack voxel precision / recall) from the per-stack rows; writes md + JSON."""
    stacks = sorted({p["stack"] for p in per_stack}, key=lambda n: int(n.split("_")[1]))

    def mean(cond, method, key):
        return float(np.mean([p[key] for p in per_stack if p["condition"] == cond and p["method"] == method]))

    lines = ["# Paper 2020 Table 3 (tracing after restoration), DIADEM OP stacks",
             "",
             f"Stacks {', '.join(stacks)}; xy window {args.window or 'whole'} px (all slices); "
             f"node tolerance {TOLERANCE} px with z step {SPACING[0]} px; mean over stacks. "
             "Precision / recall: foreground voxels grown from the test trace vs from the gold trace on the "
             "clean stack (paper protocol; `region_grow`: geodesic growth through voxels above Otsu-near-gold, "
             f"{MAX_DISTANCE:g} px, seeded from bright voxels within {SNAP_DISTANCE:g} px of the trace). "
             "Gold traces are clipped at the window's edge. Learned rows: shipped model, weights' SHA-256 prefix "
             "in the name (fluo3d-neurite-restore was trained on OP_1..OP_4: OP_5/OP_6 are its held-out stacks).",
             "",
             "| condition | method | precision | recall | node precision | node recall | recall gain |",
             "|---|---|---|---|---|---|---|"]
    keys = ("precision", "recall", "node_precision", "node_recall")
    r_clean = [mean("clean", "clean", k) for k in keys]
    lines.append("| clean | (tracer on the clean stack) | " + " | ".join(f"{v:.3f}" for v in r_clean) + " | |")
    summary = {"clean": dict(zip(keys, r_clean))}
    rows = [("clean", "clean")]
    for cond in CONDITIONS:
        base = mean(cond, "noisy", "recall")
        for name in methods_order:
            if not any(p["condition"] == cond and p["method"] == name for p in per_stack):
                continue
            vals = [mean(cond, name, k) for k in keys]
            gain = vals[1] - base
            lines.append(f"| {cond} | {name} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {gain:+.3f} |")
            summary[f"{cond} {name}"] = dict(zip(keys, vals), recall_gain=gain)
            rows.append((cond, name))
    lines += ["", "Paper (N3-B3, voxel precision / recall): " +
              ", ".join(f"{k} {p:.2f} / {r:.2f}" for k, (p, r) in PAPER_N3B3.items())]
    if all("tree_recall" in p for p in per_stack):
        lines += ["", "## Second measurement (not the default tracer): the largest traced tree only", "",
                  "The same traces, each cut to its one tree with the most cable, as a tracer grown from one "
                  "seed returns it (APP2, the paper's tracer, fixed settings for every image). Pieces the noise "
                  "broke off the main tree count as missed.", "",
                  "| condition | method | precision | recall | node precision | node recall | recall gain |",
                  "|---|---|---|---|---|---|---|"]
        tkeys = tuple(f"tree_{k}" for k in keys)
        for cond, name in rows:
            vals = [mean(cond, name, k) for k in tkeys]
            gain = "" if cond == "clean" else f"{vals[1] - mean(cond, 'noisy', 'tree_recall'):+.3f}"
            label = "(tracer on the clean stack)" if cond == "clean" else name
            lines.append(f"| {cond} | {label} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {gain} |")
            summary[f"single tree: {cond} {name}"] = dict(zip(keys, vals))
    lines += ["", "Per stack, voxel precision / recall:", "",
              "| condition | method | " + " | ".join(stacks) + " |", "|---|---|" + "---|" * len(stacks)]
    for cond, name in rows:
        cells = []
        for st in stacks:
            hit = [p for p in per_stack if p["stack"] == st and p["condition"] == cond and p["method"] == name]
            cells.append(f"{hit[0]['precision']:.3f} / {hit[0]['recall']:.3f}" if hit else "")
        lines.append(f"| {cond} | {name} | " + " | ".join(cells) + " |")
    merged = getattr(args, "merged", 0)
    lines += ["", f"Total time {elapsed:.0f} s" + (f" (sum over {merged} merged runs)." if merged else ".")]
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    stem = "paper2020_table3" + (f"_{args.tag}" if args.tag else "")
    (OUT / f"{stem}.md").write_text(table + "\n")
    (OUT / f"{stem}.json").write_text(json.dumps({"summary": summary, "per_stack": per_stack,
                                                  "elapsed": round(elapsed, 1)}, indent=1))


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
