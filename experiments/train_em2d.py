"""Train the shipped 2D ssTEM membrane model on ISBI 2012 slices 0-19 and score it on slices 20-29.

    nice -n 10 nohup python experiments/train_em2d.py --minutes 40 > train_em2d.log &
    python experiments/train_em2d.py --evaluate-only      # score the last checkpoint, export it

Resumable: checkpoints go to --run-dir and a second run continues from them. The instance ground
truth of a slice is the connected components of its non-membrane pixels (labels are 255 inside
cells, 0 on membranes). The merge threshold is chosen on training slices 15-19, then the held-out
slices 20-29 are scored (adapted Rand error, VOI split/merge; GT 0 ignored). The model is exported
to src/mire/models/em2d-membrane.* and the table to experiments/results/train_em2d.md.
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
DATA = ROOT.parent / "shared" / "data" / "isbi2012_em_membranes"
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=str(Path.home() / ".cache" / "mire" / "runs" / "em2d"))
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--export", default=str(ROOT / "src" / "mire" / "models" / "em2d-membrane"))
    args = p.parse_args()
    if not DATA.exists():
        print(f"ISBI 2012 data not found at {DATA}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    from mire.io import imread
    from mire.learn import load_tensors
    from mire.segment import Segmenter

    raw = imread(DATA / "train-volume.tif")
    gt = instance_gt(imread(DATA / "train-labels.tif"))
    model = Segmenter("fast", ndim=2, target="boundaries")
    run = Path(args.run_dir)
    t0 = time.time()
    if not args.evaluate_only:
        stop = threading.Event()
        timer = threading.Timer(args.minutes * 60, stop.set)
        timer.daemon = True
        timer.start()
        hist = model.train(raw[:20], gt[:20], patch=(128, 128), epochs=args.epochs, steps_per_epoch=args.steps,
                           batch_size=4, lr=1e-3, lr_decay=0.95, checkpoint_dir=run, resume=True, seed=0,
                           progress=False, stop_event=stop)
        print(f"trained to step {hist['step']} in {time.time() - t0:.0f} s (stopped early: {hist['stopped']})")
    else:
        model.model.load_state_dict(load_tensors(run / "last.safetensors"))
    model.model.eval()
    val = score(model, raw[15:20], gt[15:20], THRESHOLDS)
    best_t = min(val, key=lambda t: val[t]["arand_error"])
    test = score(model, raw[20:30], gt[20:30], THRESHOLDS)
    model.metadata["postprocess"]["threshold"] = float(best_t)
    model.metadata["metrics"] = {"isbi2012_slices_20_29": test[best_t], "threshold": float(best_t)}
    model.metadata["name"] = "em2d-membrane"
    model.metadata["training"] = {"data": "ISBI 2012 train-volume slices 0-19", "patch": [128, 128],
                                  "steps": int(json.loads((run / "last.json").read_text()).get("history", {})
                                               .get("step", 0)) if (run / "last.json").exists() else None}
    model.save(args.export)
    lines = ["# 2D ssTEM membrane model (ISBI 2012): held-out slices 20-29", "",
             f"threshold chosen on training slices 15-19: {best_t}", "",
             "| threshold | ARAND | precision | recall | VOI split | VOI merge |", "|---|---|---|---|---|---|"]
    for t, r in test.items():
        mark = " (chosen)" if t == best_t else ""
        lines.append(f"| {t}{mark} | {r['arand_error']:.4f} | {r['arand_precision']:.3f} | {r['arand_recall']:.3f} "
                     f"| {r['voi_split']:.3f} | {r['voi_merge']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "experiments" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_em2d.md").write_text(text)
    (out / "train_em2d.json").write_text(json.dumps({"val": val, "test": test, "threshold": best_t}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
