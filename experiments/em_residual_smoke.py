"""Smoke run: the plain and the residual U-Net affinity model, same recipe, a few epochs, interleaved.

    OMP_NUM_THREADS=1 nice -n 19 nohup python experiments/em_residual_smoke.py --epochs 4 \
        --run-dir /tmp/em_residual_smoke > /tmp/em_residual_smoke.log &

Both start from scratch (seed 0) on the gala TRAIN volume only with train_em.py's first-stage recipe
(preset "fast", 3 nearest affinities, patch 16x64x64, batch 4, lr 1e-3 x 0.95 per 100-step epoch,
EM augmentation). The two models are trained one epoch at a time in turn (checkpoint + resume), so
that a change in the machine's load hits both alike; seconds/step is the training loop's own
time (history["seconds"]), per epoch. Nothing is scored on gala test: this only shows that the
residual model trains (loss falls) at a comparable cost. Writes <run-dir>/smoke.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--run-dir", default="/tmp/em_residual_smoke")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    from mire.io import imread
    from mire.nets import PRESETS, count_parameters
    from mire.segment import Segmenter

    d = SHARED / "gala_fibsem_neurons"
    raw, gt = imread(d / "train-image.tif"), imread(d / "train-gt.tif")
    run = Path(args.run_dir)
    models = {}
    for block in ("plain", "residual"):
        torch.manual_seed(0)
        models[block] = Segmenter({**PRESETS["fast"], "block": block}, ndim=3, target="affinities")
    rows = {b: [] for b in models}
    for epoch in range(1, args.epochs + 1):
        for block, seg in models.items():
            hist = seg.train(raw, gt, patch=(16, 64, 64), epochs=epoch, steps_per_epoch=args.steps, batch_size=4,
                             lr=1e-3, lr_decay=0.95, checkpoint_dir=run / block, resume=True, seed=0,
                             em_augment=True, progress=False)
            prev = rows[block][-1]["seconds"] if rows[block] else 0.0
            rows[block].append({"epoch": epoch, "step": hist["step"], "loss": hist["loss"][-1],
                                "seconds": hist["seconds"], "s_per_step": (hist["seconds"] - prev) / args.steps})
            print(f"{block:8s} epoch {epoch} step {hist['step']} loss {hist['loss'][-1]:.4f} "
                  f"{rows[block][-1]['s_per_step']:.3f} s/step", flush=True)
    out = {"parameters": {b: count_parameters(s.model) for b, s in models.items()}, "rows": rows}
    (run / "smoke.json").write_text(json.dumps(out, indent=1))
    print("| epoch | plain loss | residual loss | plain s/step | residual s/step | ratio |")
    print("|---|---|---|---|---|---|")
    for a, b in zip(rows["plain"], rows["residual"]):
        print(f"| {a['epoch']} (step {a['step']}) | {a['loss']:.4f} | {b['loss']:.4f} | {a['s_per_step']:.3f} "
              f"| {b['s_per_step']:.3f} | {b['s_per_step'] / a['s_per_step']:.2f} |")
    print("parameters:", out["parameters"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
