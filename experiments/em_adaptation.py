"""EM segmentation on volumes the model has not seen: label-free settings, adaptation, few-shot fine-tuning.

Issue #17. Every volume of ``../shared/data`` with EM raw data is a held-out volume in turn:

- ``gala-test`` (50x100x200 FIB-SEM, dense GT): held out from the shipped ``fibsem3d-affinity``,
  which was trained on gala train only.
- ``gala-train``: the shipped model *saw* it (its row is marked "seen"); the leave-one-out model
  for it is the same recipe trained on gala test (``--loo-model``, trained by
  ``--train-loo MINUTES``; far fewer steps than the shipped one, see the table).
- ``isbi`` (ISBI 2012 ssTEM, 4x4x50 nm, a 30x256x256 crop of train-volume, instance GT = the
  connected components of each slice's cell pixels, scored slice by slice): another microscope
  and another animal stage; neither 3D model saw ssTEM.
- ``neuroproof`` (250^3 FIB-SEM of the fly medulla, 10 nm, no labels): the data the issue's
  unseen volume resembles (same lab, region, size and mean). Without labels only the label-free
  quantities are reported (threshold chosen, segments, run time on the whole 250^3 cube).
- ``snemi3d_mini_labels_gala`` has no raw EM (labels, fragments and a probability map only), so
  no model can be run on it; it is not in the table.

Rows, all with the label-free settings (``threshold="auto"``, ``seed_threshold="auto"``, input
histogram-matched to the training data), unless the row says otherwise:

  (a0) shipped model, the old defaults: percentile normalization, threshold 0.4 fitted on gala train
  (a)  shipped model as is, label-free settings
  (b)  (a) + unsupervised adaptation: batch-norm statistics re-estimated on the volume ("+bn"),
       and + resampling to the training scale ("+bn+scale", from the correlation length)
  (c)  (a) fine-tuned on 1 / 3 / 10 painted slices (GT slices with the boundary voxels given to the
       nearest body, as a user paints them; the painted slices are left out of the score)
  (d)  no-learning baseline (smoothed raw image, the same label-free rules)

and the same after a microscope change of the volume: ``contrast`` (gamma 0.5 and the range
compressed to a third), ``noise`` (Gaussian, sd 25 grey levels), ``blur`` (Gaussian sigma 1.5),
``coarser`` (voxels 1.33x larger: resampled by 0.75, GT with it), and in a second run ``finer`` (voxels half as
large: a 32x64x128 corner resampled by 2, cubic; the neuroproof medulla cube's cells are about 2x gala's in voxels).

Run (about 25 minutes on 2 cores shared with other jobs):
    nice -n 10 env OMP_NUM_THREADS=1 python experiments/em_adaptation.py
    python experiments/em_adaptation.py --train-loo 14      # first, once: the gala-test model (cached)
    python experiments/em_adaptation.py --mws               # auto threshold vs mutex watershed (1 min)
Writes experiments/results/em_adaptation.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "experiments" / "results"
LOO = Path.home() / ".cache" / "mire" / "em17" / "fibsem3d-affinity-galatest"
SHIFTS = ("none", "contrast", "noise", "blur", "coarser")


# ---------------------------------------------------------------- data
def _isbi_instances(labels):
    gt = np.zeros(labels.shape, np.int64)
    offset = 0
    for z in range(labels.shape[0]):
        cc, n = ndi.label(labels[z] > 127)
        gt[z] = np.where(cc > 0, cc + offset, 0)
        offset += n
    return gt


def load_volumes(names):
    from mire.io import imread

    vols = {}
    g = DATA / "gala_fibsem_neurons"
    if "gala-test" in names:
        vols["gala-test"] = dict(raw=imread(g / "test-image.tif"), gt=imread(g / "test-gt.tif"), per_slice=False)
    if "gala-train" in names:
        vols["gala-train"] = dict(raw=imread(g / "train-image.tif"), gt=imread(g / "train-gt.tif"), per_slice=False)
    if "isbi" in names:
        i = DATA / "isbi2012_em_membranes"
        raw = imread(i / "train-volume.tif")[:, :256, :256]
        vols["isbi"] = dict(raw=raw, gt=_isbi_instances(imread(i / "train-labels.tif")[:, :256, :256]),
                            per_slice=True)
    return vols


def microscope(raw, gt, kind, seed=0):
    """The volume as another microscope would record it (uint8), and its GT on the new grid."""
    rng = np.random.default_rng(seed)
    x = raw.astype(np.float32)
    if kind == "none":
        return raw, gt
    if kind == "contrast":
        y = 255 * (x / 255) ** 0.5
        y = 90 + (y - y.mean()) / 3
    elif kind == "noise":
        y = x + rng.normal(0, 25, x.shape)
    elif kind == "blur":
        y = ndi.gaussian_filter(x, 1.5)
    elif kind == "finer":  # voxels half as large (cells twice as many voxels across), a 64x128x256 corner
        crop = (slice(0, 32), slice(0, 64), slice(0, 128))
        y = ndi.zoom(x[crop], 2, order=3)
        gt = ndi.zoom(gt[crop], 2, order=0)
    elif kind == "coarser":
        y = ndi.zoom(ndi.gaussian_filter(x, 0.5), 0.75, order=1)
        gt = ndi.zoom(gt, 0.75, order=0)
    else:
        raise ValueError(kind)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8), gt


# -------------------------------------------------------------- scoring
def scores(gt, seg, per_slice):
    from mire.metrics import adapted_rand_error, variation_of_information

    def one(g, s):
        e = adapted_rand_error(g, s)[0]
        sp, me = variation_of_information(g, s, ignore_labels=(0,))
        return e, sp, me

    if per_slice:
        vals = [one(gt[z], seg[z]) for z in range(gt.shape[0]) if gt[z].any()]
        e, sp, me = (float(np.mean(v)) for v in zip(*vals))
    else:
        e, sp, me = one(gt, seg)
    return {"arand": float(e), "voi_split": float(sp), "voi_merge": float(me)}


def painted(gt, n, membrane=None):
    """``n`` evenly spaced painted slices (every voxel of a slice one body) and the GT without them.
    ``membrane``: paint the GT's membrane voxels (0) with this id instead of giving them to the nearest body."""
    from skimage.segmentation import expand_labels

    zs = np.linspace(0, gt.shape[0] - 1, n + 2)[1:-1].round().astype(int)
    sparse = np.zeros_like(gt)
    for z in zs:
        sparse[z] = expand_labels(gt[z], 10) if membrane is None else np.where(gt[z] > 0, gt[z], membrane)
    held = gt.copy()
    held[zs] = 0
    return sparse, held, zs.tolist()


# --------------------------------------------------------------- models
#: the model the "shipped" rows run (``--model`` replaces it, e.g. a candidate before it ships)
SHIPPED = ["fibsem3d-affinity"]


def shipped(old=False):
    from mire.segment import Segmenter

    m = Segmenter.load(SHIPPED[0])
    if old:  # what the model did before issue 17
        m.metadata["normalization"]["method"] = "percentile"
        m.metadata["postprocess"].update(threshold=0.4, seed_threshold=0.5)
    return m


def loo_model():
    from mire.segment import Segmenter

    return Segmenter.load(LOO) if Path(f"{LOO}.json").exists() else None


def train_loo(minutes, microscope_minutes=0.0):
    import threading

    from mire.io import imread
    from mire.segment import Segmenter

    g = DATA / "gala_fibsem_neurons"
    m = Segmenter("fast", ndim=3, target="affinities")
    stop = threading.Event()
    timer = threading.Timer(minutes * 60, stop.set)
    timer.daemon = True
    timer.start()
    h = m.train(imread(g / "test-image.tif"), imread(g / "test-gt.tif"), patch=(16, 64, 64), epochs=20,
                steps_per_epoch=100, batch_size=4, lr=1e-3, lr_decay=0.95, seed=0, progress=False, stop_event=stop,
                checkpoint_dir=LOO.parent / "run-galatest")
    if microscope_minutes:  # the shipped recipe's second stage: fine-tune with microscope-change augmentation
        stop = threading.Event()
        timer = threading.Timer(microscope_minutes * 60, stop.set)
        timer.daemon = True
        timer.start()
        h = m.train(imread(g / "test-image.tif"), imread(g / "test-gt.tif"), patch=(16, 64, 64), epochs=40,
                    steps_per_epoch=100, batch_size=4, lr=3e-4, lr_decay=0.95, seed=1, progress=False,
                    stop_event=stop, em_augment="microscope", checkpoint_dir=LOO.parent / "run-galatest-microscope")
    m.metadata["normalization"]["method"] = "quantile"
    m.metadata["postprocess"].update(threshold="auto", seed_threshold="auto")
    m.metadata["name"] = "fibsem3d-affinity-galatest"
    m.save(LOO)
    print(f"trained {h['step']} steps -> {LOO}")


# ------------------------------------------------------------------ rows
#: --paint-membranes: the (c) rows paint membranes with their own id (Segmenter.train(membrane_label=...))
PAINT_MEMBRANES = [False]


def run_rows(name, vol, shift, *, model_fn, model_label, fine_tune_steps, fine_tune, log, only=None):
    from mire.segment import baseline_segmentation

    raw, gt = microscope(vol["raw"], vol["gt"], shift)
    ps = vol["per_slice"]
    out = []

    def add(row, seg, seconds, model=None, extra=None):
        r = {"volume": name, "shift": shift, "row": row, "model": model_label, "seconds": round(seconds, 1),
             **scores(gt_eval.get(row, gt), seg, ps)}
        if model is not None:
            r["threshold"] = float(np.ravel(model.last_settings["threshold"])[0])
        r.update(extra or {})
        out.append(r)
        log(f"{name:10s} {shift:8s} {row:22s} ARAND {r['arand']:.4f} VOI {r['voi_split']:.3f}+{r['voi_merge']:.3f}"
            f" t={r.get('threshold', float('nan')):.3f} {seconds:.0f}s")

    gt_eval = {}
    if model_label == "shipped" and only is None:
        t0 = time.perf_counter()
        m = shipped(old=True)
        add("(a0) old defaults", m.segment(raw), time.perf_counter() - t0, m)
    t0 = time.perf_counter()
    m = model_fn()
    add("(a) label-free", m.segment(raw), time.perf_counter() - t0, m)
    variants = (("(b) +bn", dict(batchnorm=True)), ("(b) +scale", dict(scale=True)),
                ("(b) +bn+scale", dict(batchnorm=True, scale=True)))
    for label, kw in variants:
        if only is not None and label not in only:
            continue
        if ps and "scale" in kw:
            continue  # ssTEM: an isotropic zoom would also shrink the 30 thick sections
        t0 = time.perf_counter()
        m = model_fn().adapt(raw, **kw)
        add(label, m.segment(raw), time.perf_counter() - t0, m,
            {"zoom": m.metadata["adaptation"]["zoom"], "measured_zoom": m.metadata["adaptation"].get("measured_zoom")})
    if fine_tune:
        for n in (1, 3, 10):
            memb = int(gt.max()) + 1 if PAINT_MEMBRANES[0] else None
            sparse, held, zs = painted(gt, n, memb)
            label = f"(c) fine-tune {n} slice{'s' if n > 1 else ''}" + (", membranes painted" if memb else "")
            gt_eval[label] = held
            t0 = time.perf_counter()
            m = model_fn()
            patch = (16, 64, 64) if raw.shape[0] >= 16 else (8, 64, 64)
            m.train(raw, sparse, sparse=True, membrane_label=memb, patch=patch, epochs=1, steps_per_epoch=fine_tune_steps, batch_size=2,
                    lr=3e-4, lr_decay=1.0, progress=False, seed=0)
            train_s = time.perf_counter() - t0
            add(label, m.segment(raw), time.perf_counter() - t0, m, {"painted": zs, "train_seconds": round(train_s)})
    if only is not None:
        return out
    t0 = time.perf_counter()
    seg = baseline_segmentation(raw, sigma=2.0, threshold="auto", seed_threshold="auto", per_slice=ps)
    add("(d) baseline", seg, time.perf_counter() - t0)
    return out


def neuroproof(log):
    """The unlabeled 250^3 medulla cube: label-free quantities and the run time of the default pipeline."""
    from mire.io import imread
    from mire.segment.adapt import correlation_length

    raw = imread(DATA / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif")
    m = shipped()
    t0 = time.perf_counter()
    seg = m.segment(raw)
    seconds = time.perf_counter() - t0
    ref = m.metadata["normalization"]["reference"]["correlation_length"]
    r = {"volume": "neuroproof", "shape": list(raw.shape), "seconds_default_pipeline": round(seconds, 1),
         "threshold": float(m.last_settings["threshold"]), "segments": int(np.count_nonzero(np.unique(seg))),
         "correlation_length": correlation_length(raw), "reference_length": ref,
         "measured_zoom": ref / correlation_length(raw),
         # a label-free merge alarm: one body holding a large share of the cube
         "largest_segment_fraction": float(np.bincount(seg.ravel().astype(np.int64))[1:].max() / seg.size)}
    log(f"neuroproof 250^3: {seconds:.0f} s, threshold {r['threshold']:.3f}, {r['segments']} segments, "
        f"scale ratio {r['measured_zoom']:.2f}, largest segment {r['largest_segment_fraction']:.3f} of the voxels")
    return r


# ----------------------------------------------------- mutex watershed
def mutex_watershed(uv, weight, is_mutex, n_nodes):
    """Mutex watershed (Wolf et al. 2018) on a graph: edges by decreasing ``weight``; an attractive edge
    merges its two clusters unless a mutex edge joins them, a mutex edge records one. Union-find with
    mutex sets merged small-into-large. Returns each node's cluster root."""
    parent = np.arange(n_nodes)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    mutex = [set() for _ in range(n_nodes)]
    for k in np.argsort(-weight, kind="stable"):
        u, v = find(uv[k, 0]), find(uv[k, 1])
        if u == v:
            continue
        if not is_mutex[k]:
            if v in mutex[u]:
                continue
            if len(mutex[u]) < len(mutex[v]):
                u, v = v, u
            parent[v] = u
            for w in mutex[v]:
                mutex[w].discard(v)
                mutex[w].add(u)
            mutex[u] |= mutex[v]
            mutex[v] = set()
        else:
            mutex[u].add(v)
            mutex[v].add(u)
    return np.array([find(i) for i in range(n_nodes)])


def mutex_watershed_graph(edges, score, bias, n_nodes):
    """Mutex watershed on a fragment graph with one boundary score per edge: ``score < bias`` is
    attractive, else repulsive, both with weight ``|score - bias|``."""
    return mutex_watershed(edges, np.abs(score - bias), score >= bias, n_nodes)


def mws_comparison(log):
    """Label-free candidates on the gala test volume: the auto-threshold agglomeration that ships,
    and a mutex watershed on the same fragments' graph (bias 0.5, and bias = the auto threshold).
    The shipped model has nearest-neighbour affinities only, so the repulsive edges are the
    graph's own high-scoring edges (no long-range channels)."""
    from mire.segment import (affinities_to_boundaries, agglomerate, auto_seed_threshold, auto_threshold,
                              region_graph, seeded_watershed)

    v = load_volumes(["gala-test"])["gala-test"]
    m = shipped()
    rows = []
    for shift in SHIFTS:
        raw, gt = microscope(v["raw"], v["gt"], shift)
        a = m.predict(raw)
        b = affinities_to_boundaries(a, reduce="max")
        frag = seeded_watershed(b, threshold=auto_seed_threshold(b), min_distance=3)
        g = region_graph(frag, affinities=a, quantiles=(0.5,))
        s = g.quantiles[0.5]
        t = auto_threshold(s, g.count)
        row = {"shift": shift, "auto_threshold": t,
               "agglomeration (auto)": scores(gt, agglomerate(frag, affinities=a, thresholds=[t],
                                                             scoring="median").segmentations[0], False)}
        for bias, name in ((0.5, "mutex watershed, bias 0.5"), (t, "mutex watershed, bias auto")):
            lab = mutex_watershed_graph(g.edges, s, bias, int(frag.max()) + 1)
            row[name] = scores(gt, (lab[frag] * (frag > 0)).astype(np.int64), False)
        log(f"{shift}: " + ", ".join(f"{k} {row[k]['arand']:.4f}" for k in row if isinstance(row[k], dict)))
        rows.append(row)
    return rows


# ---------------------------------------------------------------- report
def table(rows):
    lines = ["| volume | change | pipeline | ARAND | VOI split | VOI merge | threshold | s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = f"{r['threshold']:.3f}" if "threshold" in r else "auto"
        lines.append(f"| {r['volume']}{' (seen)' if r.get('seen') else ''} | {r['shift']} | {r['row']} | "
                     f"{r['arand']:.4f} | {r['voi_split']:.3f} | {r['voi_merge']:.3f} | {t} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def summary(rows):
    """ARAND per held-out volume (columns: the microscope changes) and pipeline (rows)."""
    lines = []
    vols = [v for v in dict.fromkeys(r["volume"] for r in rows if not r.get("seen"))]
    for v in vols:
        sub = [r for r in rows if r["volume"] == v and not r.get("seen")]
        shifts = list(dict.fromkeys(r["shift"] for r in sub))
        pipes = list(dict.fromkeys(r["row"] for r in sub))  # the order they ran in
        cell = {(r["row"], r["shift"]): r for r in sub}
        lines += [f"**{v}** (model: {sub[0]['model']}), ARAND (VOI split + merge):", "",
                  "| pipeline | " + " | ".join(shifts) + " |", "|---|" + "---|" * len(shifts)]
        for pname in pipes:
            vals = []
            for sh in shifts:
                r = cell.get((pname, sh))
                vals.append("" if r is None else f"{r['arand']:.3f} ({r['voi_split']:.2f} + {r['voi_merge']:.2f})")
            lines.append(f"| {pname} | " + " | ".join(vals) + " |")
        lines.append("")
    return "\n".join(lines)


def _steps(training):
    """'2000 + 3106 (microscope)' for a fine-tuned model, '2000' for one trained once."""
    parent = training.get("fine_tuned_from")
    tail = f"{training['steps']}" + (" (microscope)" if training.get("em_augment") == "microscope" else "")
    return f"{_steps(parent)} + {tail}" if parent else tail


def render(rows, record, *, total, argv, steps, out="em_adaptation"):
    loo = loo_model()
    text = ["# EM segmentation on unseen volumes: label-free settings, adaptation, few-shot fine-tuning (issue #17)", "",
            "ARAND = adapted Rand error, VOI in bits, GT 0 ignored, lower is better. ISBI is scored slice by slice "
            "(its GT is 2D). `(seen)`: the shipped model was trained on that volume (not a held-out result). "
            f"Fine-tunes: painted slices left out of the score, {steps} steps of batch 2 (16x64x64), lr 3e-4, "
            "batch norm frozen, from the model of the row.", "",
            # name the model the `shipped` rows really ran (--model replaces it)
            (f"Models: `shipped` rows = `{SHIPPED[0]}` (given by --model, not the shipped model); "
             if SHIPPED[0] != "fibsem3d-affinity" else
             "Models: `shipped` = fibsem3d-affinity (gala train, 2000 steps + 4000 fine-tuned with microscope-change "
             "augmentation; the weights are the seed-1 retraining shipped after em_ship_ctl.md); ")
            + (f"`loo (gala-test)` = the same recipe on gala test, {_steps(loo.metadata['training'])} steps "
               "(scores gala train)." if loo is not None else "no leave-one-out model for gala train was trained."),
            "", "## Held-out volumes", "", summary(rows), "## All rows", "", table(rows), ""]
    if "neuroproof" in record:
        r = record["neuroproof"]
        text += ["## neuroproof medulla cube (no labels)", "",
                 f"Default pipeline (`mire segment --model fibsem3d-affinity`, label-free settings) on the whole "
                 f"{r['shape']} cube: {r['seconds_default_pipeline']:.0f} s on 2 shared cores, threshold chosen "
                 f"{r['threshold']:.3f}, {r['segments']} segments. Correlation length {r['correlation_length']:.2f} "
                 f"voxels vs {r['reference_length']:.2f} on gala train: its cells are about "
                 f"{1 / r['measured_zoom']:.1f}x larger in voxels.", ""]
    text.append(f"Total run time {total / 60:.1f} min. Command: `{argv}`")
    return "\n".join(text) + "\n" + _kept_notes(out)


def _kept_notes(name="em_adaptation") -> str:
    """The hand-written ``## Notes`` section of an existing report, kept when the tables are rewritten."""
    path = RESULTS / f"{name}.md"
    if not path.exists():
        return ""
    old = path.read_text()
    return "\n" + old[old.index("## Notes"):] if "## Notes" in old else ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--volumes", default="gala-test,gala-train,isbi,neuroproof")
    p.add_argument("--shifts", default=",".join(SHIFTS))
    p.add_argument("--fine-tune-steps", type=int, default=120)
    p.add_argument("--fine-tune-shifts", default="none,blur",
                   help="changes on which the 1/3/10-slice fine-tunes run (they dominate the run time)")
    p.add_argument("--train-loo", type=float, default=None, help="train the gala-test model for this many minutes")
    p.add_argument("--loo-microscope", type=float, default=0.0,
                   help="then fine-tune it this many minutes with microscope-change augmentation (shipped recipe)")
    p.add_argument("--out", default="em_adaptation")
    p.add_argument("--rows", default=None, help="only (a) and these (b) rows, e.g. '(b) +scale' (no fine-tunes, "
                   "no baseline)")
    p.add_argument("--render", action="store_true", help="rewrite OUT.md from OUT.json")
    p.add_argument("--model", default=None, help="run the 'shipped' rows with this model (name or path stem)")
    p.add_argument("--mws", action="store_true", help="only the mutex-watershed comparison (em_adaptation_mws.md)")
    p.add_argument("--paint-membranes", action="store_true", help="(c) rows: paint the GT's membrane voxels "
                   "with their own id (--membrane-label) instead of giving them to the nearest body")
    p.add_argument("--merge", default=None, help="write OUT.{md,json} from these earlier runs' JSON (comma-separated "
                   "names in experiments/results; one run per volume checkpoints a long table)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.model:
        SHIPPED[0] = args.model
    PAINT_MEMBRANES[0] = args.paint_membranes
    if args.train_loo:
        train_loo(args.train_loo, args.loo_microscope)
        return 0
    if args.render:  # tables again from the JSON of an earlier run
        rec = json.loads((RESULTS / f"{args.out}.json").read_text())
        extra = {k: rec[k] for k in ("neuroproof",) if k in rec}
        (RESULTS / f"{args.out}.md").write_text(render(rec["rows"], extra, total=rec["seconds"],
                                                       argv=rec.get("argv", "experiments/em_adaptation.py"),
                                                       steps=rec.get("steps", args.fine_tune_steps),
                                                       out=args.out))
        return 0
    if args.merge:  # one table from per-volume runs, in the order given
        parts = [json.loads((RESULTS / f"{n}.json").read_text()) for n in args.merge.split(",")]
        if len({p.get("steps", args.fine_tune_steps) for p in parts}) > 1:
            raise SystemExit("--merge: the runs used different --fine-tune-steps")
        rows = [r for p in parts for r in p["rows"]]
        extra = {k: p[k] for p in parts for k in ("neuroproof",) if k in p}
        total = sum(p["seconds"] for p in parts)
        argv = "; ".join(p.get("argv", "experiments/em_adaptation.py") for p in parts)
        steps = parts[0].get("steps", args.fine_tune_steps)
        (RESULTS / f"{args.out}.json").write_text(json.dumps({"rows": rows, **extra, "seconds": total, "argv": argv,
                                                              "steps": steps, "merged": args.merge}, indent=1))
        (RESULTS / f"{args.out}.md").write_text(render(rows, extra, total=total, argv=argv, steps=steps,
                                                       out=args.out))
        return 0
    if args.mws:
        rows = mws_comparison(print)
        keys = [k for k in rows[0] if isinstance(rows[0][k], dict)]
        lines = ["# Label-free agglomeration vs mutex watershed on the fragment graph (gala test, shipped model)", "",
                 mws_comparison.__doc__.split("\n\n")[0].replace("\n   ", ""), "",
                 "| change | auto threshold | " + " | ".join(f"{k} ARAND" for k in keys) + " |",
                 "|---|---|" + "---|" * len(keys)]
        for r in rows:
            lines.append(f"| {r['shift']} | {r['auto_threshold']:.3f} | "
                         + " | ".join(f"{r[k]['arand']:.4f}" for k in keys) + " |")
        lines.append(f"\nCommand: `{' '.join(sys.argv)}`")
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "em_adaptation_mws.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return 0
    names = args.volumes.split(",")
    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    t_start = time.perf_counter()
    rows, record = [], {}
    vols = load_volumes(names)
    ft_shifts = set(args.fine_tune_shifts.split(","))
    only = None if not args.rows else set(args.rows.split(","))
    for name, vol in vols.items():
        if name == "gala-train":
            loo = loo_model()
            plans = [("shipped", shipped, True)]
            if loo is not None:
                plans.insert(0, ("loo (gala-test)", loo_model, False))
        else:
            plans = [("shipped", shipped, False)]
        for label, fn, seen in plans:
            for shift in (["none"] if seen else args.shifts.split(",")):  # seen: for reference only
                out = run_rows(name, vol, shift, model_fn=fn, model_label=label,
                               fine_tune_steps=args.fine_tune_steps,
                               fine_tune=shift in ft_shifts and not seen and only is None, log=log, only=only)
                for r in out:
                    r["seen"] = seen
                rows.extend(out)
    if "neuroproof" in names:
        record["neuroproof"] = neuroproof(log)
    total = time.perf_counter() - t_start
    text = render(rows, record, total=total, argv=" ".join(sys.argv), steps=args.fine_tune_steps, out=args.out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(text)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"rows": rows, **record, "seconds": total,
                                                          "argv": " ".join(sys.argv),
                                                          "steps": args.fine_tune_steps}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
