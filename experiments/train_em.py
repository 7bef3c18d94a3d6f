"""Train the shipped EM models and score them on held-out data.

    nice -n 10 nohup python experiments/train_em.py --dataset isbi --minutes 40 > train_em2d.log &
    nice -n 10 nohup python experiments/train_em.py --dataset gala --minutes 25 > train_em3d.log &
    # long-range affinities: fine-tune the shipped model into one with offsets -3, -9 on every axis
    nice -n 10 nohup python experiments/train_em.py --dataset gala --from fibsem3d-affinity --long-range 3,9 \
        --augment microscope --lr 3e-4 --run-dir /tmp/emlr/run --export /tmp/emlr/fibsem3d-affinity-lr > lr.log &
    python experiments/train_em.py --dataset isbi --evaluate-only   # score the last checkpoint, export it
    # from a self-supervised pretrained body (masked-block reconstruction on unlabeled neuroproof, pretrain_em.py)
    nice -n 19 nohup python experiments/train_em.py --dataset gala --init /tmp/empre/fibsem3d-pretext --epochs 20 \
        --run-dir /tmp/empre/stage1 --export /tmp/empre/fibsem3d-affinity-pre > pre.log &
    # a residual U-Net (a residual module in every level, Lee et al. 2017), elsewhere than the shipped file
    nice -n 19 nohup python experiments/train_em.py --dataset gala --block residual --epochs 20 \
        --run-dir /tmp/emres/run --export /tmp/emres/fibsem3d-affinity-res > res.log &

``isbi``: the 2D ssTEM membrane (boundary) model ``em2d-membrane`` on ISBI 2012 slices 0-19. The instance
ground truth of a slice is the connected components of its non-membrane pixels (labels are 255 inside cells,
0 on membranes); the merge threshold is chosen on training slices 15-19, then slices 20-29 are scored.
``gala``: the 3D FIB-SEM affinity model ``fibsem3d-affinity`` on the gala train volume (label 0 =
boundary / unlabelled); the threshold is chosen on the train volume, then the test volume is scored.
Scores: adapted Rand error and VOI split/merge, GT 0 ignored. Resumable: checkpoints go to --run-dir and a
second run continues from them. Tables go to experiments/results/train_em2d.md / train_em3d.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def instance_gt(membrane_labels: np.ndarray) -> np.ndarray:
    """Per-slice connected components of the cell interiors (label 0 on membranes)."""
    out = np.zeros(membrane_labels.shape, np.int32)
    offset = 0
    for z, sl in enumerate(membrane_labels):
        lab, n = ndi.label(sl > 0)
        out[z] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return out


def score(model, raw, gt, thresholds):
    from mire.metrics import segmentation_scores

    if model.ndim == 3:  # volume model: segment the whole volume, all thresholds from one agglomeration
        segs = model.segment(raw, threshold=list(thresholds))
        return {t: segmentation_scores(gt, s) for t, s in zip(thresholds, segs)}
    prob = model.predict(raw)
    rows = {}
    for t in thresholds:
        # ssTEM sections are far apart: segment each slice in 2D, ids made unique per slice
        seg = np.zeros(gt.shape, np.int64)
        offset = 0
        for z in range(len(raw)):
            s = _segment_slice(prob[z], t).astype(np.int64)
            seg[z] = np.where(s > 0, s + offset, 0)
            offset = int(seg[z].max())
        rows[t] = segmentation_scores(gt, seg)
    return rows


def _segment_slice(prob2d, threshold):
    from mire.segment import segment_boundaries

    return segment_boundaries(prob2d, threshold=threshold, min_distance=3.0, sigma=1.0)


def load_dataset(name: str) -> dict:
    from mire.io import imread

    if name == "isbi":
        d = SHARED / "isbi2012_em_membranes"
        raw = imread(d / "train-volume.tif")
        gt = instance_gt(imread(d / "train-labels.tif"))
        return dict(train=(raw[:20], gt[:20]), val=(raw[15:20], gt[15:20]), test=(raw[20:30], gt[20:30]),
                    ndim=2, target="boundaries", patch=(128, 128), export="em2d-membrane", results="train_em2d",
                    title="2D ssTEM membrane model (ISBI 2012): held-out slices 20-29",
                    data="ISBI 2012 train-volume slices 0-19", lr_decay=0.95)
    if name == "gala":
        d = SHARED / "gala_fibsem_neurons"
        train = (imread(d / "train-image.tif"), imread(d / "train-gt.tif"))
        return dict(train=train, val=train, test=(imread(d / "test-image.tif"), imread(d / "test-gt.tif")),
                    ndim=3, target="affinities", patch=(16, 64, 64), export="fibsem3d-affinity",
                    results="train_em3d", title="3D FIB-SEM affinity model (gala): held-out test volume",
                    data="gala example FIB-SEM train volume (50x100x200)", lr_decay=0.95)
    raise ValueError(f"unknown dataset {name!r}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("isbi", "gala"), default="isbi")
    p.add_argument("--run-dir", default=None, help="default ~/.cache/mire/runs/<dataset>")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--from", dest="start", default=None, help="fine-tune this model (name or path stem)")
    p.add_argument("--augment", choices=("em", "microscope"), default="em",
                   help="'microscope': also whole-volume blur, lost resolution and noise")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0, help="seeds the weights' init and the patch draws")
    p.add_argument("--long-range-weight", type=float, default=None,
                   help="loss = nearest channels' BCE + this x the long-range channels' (default: one mean)")
    p.add_argument("--long-range", default=None,
                   help="affinity models: extra offsets -d along every axis, e.g. '3,9' (Lee et al. 2017); "
                        "with --from, the source's channels keep their weights and new ones start as copies")
    p.add_argument("--block", choices=("plain", "residual"), default="plain",
                   help="new models: U-Net levels of plain conv blocks or residual modules (Lee et al. 2017)")
    p.add_argument("--export", default=None, help="model path stem (default: the shipped name in src/mire/models)")
    p.add_argument("--init", default=None, metavar="PRETEXT",
                   help="new models: start from this self-supervised pretrained body (experiments/pretrain_em.py); "
                        "the output head starts fresh")
    args = p.parse_args()
    if not SHARED.exists():
        print(f"shared data not found at {SHARED}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    from mire.learn import load_tensors
    from mire.segment import Segmenter

    ds = load_dataset(args.dataset)
    export = args.export or str(ROOT / "src" / "mire" / "models" / ds["export"])
    offsets = None
    if args.long_range:
        if ds["target"] != "affinities":
            p.error("--long-range needs an affinity model (--dataset gala)")
        from mire.segment import long_range_offsets

        offsets = long_range_offsets(ds["ndim"], [int(d) for d in args.long_range.split(",")])
    if args.start:
        if args.block != "plain" or args.init:
            p.error("--block and --init build a new network; --from keeps the source's")
        model = Segmenter.load(args.start)
        if offsets is not None:
            model = model.with_offsets(offsets)
    else:
        from mire.nets import PRESETS

        if args.seed:  # seed 0 keeps torch's default generator, as every run before --seed
            torch.manual_seed(args.seed)
        model = Segmenter({**PRESETS["fast"], "block": args.block}, ndim=ds["ndim"], target=ds["target"],
                          offsets=offsets)
        if args.init:
            model.init_body(args.init)
    run = Path(args.run_dir or Path.home() / ".cache" / "mire" / "runs" / args.dataset)
    t0 = time.time()
    if not args.evaluate_only:
        stop = threading.Event()
        timer = threading.Timer(args.minutes * 60, stop.set)
        timer.daemon = True
        timer.start()
        hist = model.train(*ds["train"], patch=ds["patch"], epochs=args.epochs, steps_per_epoch=args.steps,
                           batch_size=4, lr=args.lr, lr_decay=ds["lr_decay"], checkpoint_dir=run, resume=True,
                           seed=args.seed,
                           em_augment="microscope" if args.augment == "microscope" else True,
                           progress=False, stop_event=stop, long_range_weight=args.long_range_weight)
        print(f"trained to step {hist['step']} in {time.time() - t0:.0f} s (stopped early: {hist['stopped']})")
    else:
        model.model.load_state_dict(load_tensors(run / "last.safetensors"))
    model.model.eval()
    val = score(model, *ds["val"], THRESHOLDS)
    best_t = min(val, key=lambda t: val[t]["arand_error"])
    test = score(model, *ds["test"], THRESHOLDS)
    model.metadata["postprocess"]["threshold"] = float(best_t)
    model.metadata["metrics"] = {"held_out": test[best_t], "threshold": float(best_t)}
    model.metadata["name"] = ds["export"]
    model.metadata["training"] = {"data": ds["data"], "patch": list(ds["patch"]),
                                  "steps": int(json.loads((run / "last.json").read_text()).get("history", {})
                                               .get("step", 0)) if (run / "last.json").exists() else None}
    model.save(export)
    lines = [f"# {ds['title']}", "",
             f"threshold chosen on the training data: {best_t}", "",
             "| threshold | ARAND | precision | recall | VOI split | VOI merge |", "|---|---|---|---|---|---|"]
    for t, r in test.items():
        mark = " (chosen)" if t == best_t else ""
        lines.append(f"| {t}{mark} | {r['arand_error']:.4f} | {r['arand_precision']:.3f} | {r['arand_recall']:.3f} "
                     f"| {r['voi_split']:.3f} | {r['voi_merge']:.3f} |")
    text = "\n".join(lines) + "\n"
    if args.export is None:
        print(text)
    # a candidate exported elsewhere (--export) keeps its tables beside it, not over the shipped model's
    # (<export>-scores: <export>.json is the model's own metadata)
    out, stem = (ROOT / "experiments" / "results", ds["results"]) if args.export is None else \
        (Path(args.export).parent, Path(args.export).name + "-scores")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps({"val": val, "test": test, "threshold": best_t}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
