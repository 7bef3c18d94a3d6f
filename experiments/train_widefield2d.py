"""Train the shipped 2D widefield denoiser (``widefield2d-denoise``) on real W2S pairs.

W2S (8-bit export) FOVs 1..24, all 3 channels: a single noisy frame (avg1) -> the 400-frame average
(avg400). Noisy and target were min-max stretched independently, so the noisy image is normalized
by its own percentiles (CARE convention) and the target affinely aligned to it by least squares
(its own percentiles would leave it at 0.4x..1x the input's scale, differently per image). L1 loss,
Adam 1e-3 decayed by 0.9 per epoch, CPU-fast 2D U-Net (2x2 space-to-depth stem, no batch norm,
direct output). FOVs 25..30 are held out for experiments/paper2020_table2.py.

    nice -n 10 python experiments/train_widefield2d.py --minutes 65
    python experiments/train_widefield2d.py --export src/mire/models/widefield2d-denoise

Fine-tune (continue training) from a saved model, in a new run directory, at a learning rate near
where the previous run ended (the first shipped run ended near 1e-3 * 0.9**20 = 1.2e-4). Adam starts
with fresh moments, so the first epoch dips (-0.1 dB validation) before it climbs. Re-running the
same command with a larger ``--epochs`` resumes the run on the same schedule (lr derives from the step):

    nice -n 10 python experiments/train_widefield2d.py --init widefield2d-denoise --run-dir RUN \\
        --lr 1.5e-4 --lr-decay 0.95 [--epochs 80] --minutes 70
    python experiments/train_widefield2d.py --run-dir RUN --export src/mire/models/widefield2d-denoise

A larger network (1.9M parameters instead of 0.26M; not shipped, see results/train_widefield2d.md):

    nice -n 10 python experiments/train_widefield2d.py --run-dir RUN --depth 4 --base-channels 32 --loss mse \
        --lr 1e-3 --lr-decay 0.96 --epochs 100 --minutes 100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from train_common import export_best, init_weights, parse_args, run_option, time_budget  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "w2s_widefield_denoising_8bit"
# No batch norm and no residual output: see train_fluo3d.py (batch-norm running statistics cost
# ~1.5 dB at prediction, and a zero-initialized residual head barely moves under the L1 loss).
CONFIG = {"arch": "unet", "ndim": 2, "depth": 3, "base_channels": 24, "convs_per_block": 2, "norm": "none",
          "activation": "relu", "kernel": 3, "pool": 2, "conv": "full", "stem": 2, "residual": False}
PATCH, BATCH = (96, 96), 4
ALIGN = True  # clean -> noisy units by least squares (learn.affine_aligned_range)
TRAIN_FOVS = slice(0, 24)  # rows 0..23 = FOVs 001..024 (fov_ids.txt)
TRAINING = {"data": "W2S 8-bit FOVs 1..24, channels 0..2 (w2s_widefield_denoising_8bit)",
            "protocol": "real pairs avg1 -> avg400; noisy normalized by its percentiles (1, 99.8), target "
                        "affinely aligned to it (least squares)",
            "loss": "l1", "optimizer": "adam", "lr": 1e-3, "lr_decay": 0.9, "patch": list(PATCH),
            "batch_size": BATCH,
            "network": "no batch norm, direct (non-residual) output",
            # what the shipped weights actually went through (the shared CPU gave ~10-30% of a core):
            "schedule": "lr 1e-3 x 0.9 per 200-step epoch; steps 0-2200 with targets normalized by their own "
                        "percentiles, then resumed with affinely aligned targets (ALIGN) until the budget ran out"}


def options(p):
    p.add_argument("--stem", type=int, default=CONFIG["stem"],
                   help="space-to-depth stem (1: the network works at full resolution, ~4x the compute)")
    p.add_argument("--loss", default=TRAINING["loss"], choices=("l1", "mse"), help="pixel loss")
    p.add_argument("--depth", type=int, default=CONFIG["depth"], help="U-Net levels (receptive field)")
    p.add_argument("--base-channels", type=int, default=CONFIG["base_channels"], help="channels of the first level")


def main():
    args = parse_args("widefield2d", __doc__, extra=options, fine_tune=True)
    fine_tune_record = Path(args.run_dir) / "fine_tune.json"
    if args.export:
        training = dict(TRAINING, loss=run_option(args.run_dir, "loss", default=TRAINING["loss"]))
        if fine_tune_record.exists():  # a fine-tune: its own lr schedule, and what it started from
            ft = json.loads(fine_tune_record.read_text())
            training = dict(training, lr=ft["lr"], lr_decay=ft["lr_decay"], fine_tune=ft,
                            schedule=f"fine-tune of {ft['init']} (weights_sha256 {ft['init_weights_sha256']}, "
                                     f"itself: {ft['init_schedule']}) with ALIGN targets, lr {ft['lr']:g} x "
                                     f"{ft['lr_decay']:g} per {ft['steps_per_epoch']}-step epoch, "
                                     f"{ft.get('epochs', 30)} epochs or {ft['minutes']} min"
                                     + "".join(f", resumed to {r['epochs']} epochs or {r['minutes']} min"
                                               for r in ft.get("resumes", []))
                                     + "; 'steps' below count the fine-tune only")
        # output floor 0, as Restorer.train(output_min="auto") sets for non-negative training images
        # (8-bit grey levels): the shipped model has it, and predict clips its dark excursions to it
        export_best(args.run_dir, args.export, axes="YX", training=training, stem=args.checkpoint,
                    name="widefield2d-denoise", output_min=0.0)
        return
    torch.set_num_threads(args.threads)
    import tifffile

    from mire.learn import pairs_sampler, train
    from mire.nets import build_model, count_parameters

    noisy = tifffile.imread(DATA / "noisy_avg1.tif")[TRAIN_FOVS]  # 19 MB each: fine in memory
    clean = tifffile.imread(DATA / "target_avg400.tif")[TRAIN_FOVS]
    # one (noisy, clean) pair per image and channel: each noisy image gets its own percentiles and
    # its target is affinely aligned to it (the 8-bit export stretched every image independently)
    pairs = [(noisy[i, c], clean[i, c]) for i in range(noisy.shape[0]) for c in range(noisy.shape[1])]
    sampler = pairs_sampler([p[0] for p in pairs], [p[1] for p in pairs], patch=PATCH, seed=0, align=ALIGN)
    val = pairs_sampler([p[0] for p in pairs], [p[1] for p in pairs], patch=PATCH, seed=1, align=ALIGN)
    torch.manual_seed(0)
    model = build_model(dict(CONFIG, stem=args.stem, depth=args.depth, base_channels=args.base_channels))
    print(f"model: {count_parameters(model)} parameters, config {model.config}, loss {args.loss}", flush=True)
    run_option(args.run_dir, "loss", args.loss)  # the stem is in the checkpoints' network config
    if args.init:
        from mire.learn import evaluate
        from mire.restore.learned import Restorer

        sha = init_weights(model, args.init)
        record = {"init": str(args.init), "init_weights_sha256": sha,
                  "init_schedule": (Restorer.load(args.init).metadata.get("training") or {}).get("schedule"),
                  "lr": args.lr, "lr_decay": args.lr_decay, "steps_per_epoch": args.steps or 200,
                  "epochs": args.epochs or 30, "minutes": args.minutes, "align": ALIGN}
        if fine_tune_record.exists():  # a resume of this run: keep the original record, note the new budget
            first = json.loads(fine_tune_record.read_text())
            first.setdefault("resumes", []).append({"epochs": record["epochs"], "minutes": args.minutes})
            record = first
        Path(args.run_dir).mkdir(parents=True, exist_ok=True)
        fine_tune_record.write_text(json.dumps(record, indent=1))
        # the starting point on the same validation patches train() scores (its _val_batches: val.batch(-1..-4))
        v = evaluate(model, [val.batch(-(i + 1), BATCH) for i in range(4)], data_range="global")
        print(f"init {args.init} (weights {sha[:12]}): validation step 0 psnr {v['psnr']:.3f} ssim {v['ssim']:.4f}",
              flush=True)
    hist = train(model, sampler, loss=args.loss, epochs=args.epochs or 30, steps_per_epoch=args.steps or 200, batch_size=BATCH,
                 lr=args.lr, lr_decay=args.lr_decay, val=val, val_data_range="global", checkpoint_dir=args.run_dir,
                 resume=True, seed=0, progress=False,
                 stop_event=time_budget(args.minutes),
                 callback=lambda s, l: print(f"step {s} loss {l:.4f}", flush=True) if s % 25 == 0 else None)
    print("epoch losses", [round(v, 4) for v in hist["loss"]])
    print("validation", hist["val"][-3:], "best", hist["best"], "stopped" if hist["stopped"] else "done", flush=True)


if __name__ == "__main__":
    main()
