"""Self-supervised pretraining of the 3D EM U-Net on unlabeled FIB-SEM (issue #17 item 1).

    OMP_NUM_THREADS=1 nice -n 19 nohup python experiments/pretrain_em.py --epochs 15 \
        --run-dir /tmp/empre/run --out /tmp/empre/fibsem3d-pretext > /tmp/empre/pretrain.log &
    # then the shipped recipe from the pretrained body (train_em.py --init)
    python experiments/train_em.py --dataset gala --init /tmp/empre/fibsem3d-pretext ...

Pretext: masked-block reconstruction (:mod:`mire.learn.pretext`): 4^3 cubes covering 25 % of each
16x64x64 patch are hidden, the input also gets a random microscope change (whole-volume blur, lost
resolution, noise: :func:`mire.segment.augment.microscope_change`, as the shipped recipe's second
stage), the target is the clean patch. The network is the shipped ``fibsem3d-affinity`` U-Net
("fast" preset, no residual) with one output channel, so its body transfers (``Segmenter.init_body``).

Data: unlabeled only, never gala. ``neuroproof`` = the 250^3 medulla cube (10 nm) at its own scale
and 2x coarser (125^3): the two scales make the features less tied to one cell size in voxels.
``isbi-test`` (the unlabeled ISBI 2012 test slices, ssTEM 4x4x50 nm) is optional and off by
default: as 16x64x64 blocks its sections are 12x farther apart than its pixels, a geometry an
isotropic FIB-SEM network never sees. Resumable (checkpoints in --run-dir).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_unlabeled(names):
    import numpy as np
    from scipy import ndimage as ndi

    from mire.io import imread

    out, desc = [], []
    for name in names:
        if name == "neuroproof":
            v = imread(SHARED / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif").astype(np.float32)
            out += [v, ndi.zoom(ndi.gaussian_filter(v, 0.7), 0.5, order=1)]
            desc.append("neuroproof medulla 250^3 (10 nm) and 2x coarser")
        elif name == "isbi-test":
            out.append(imread(SHARED / "isbi2012_em_membranes" / "test-volume.tif").astype(np.float32))
            desc.append("ISBI 2012 test-volume (unlabeled)")
        else:
            raise SystemExit(f"unknown pretraining data {name!r} (neuroproof, isbi-test; gala is never used here)")
    return out, "; ".join(desc)


def check(stem, image_path, *, n=8, seed=123):
    """Hidden-voxel MSE of a pretrained network against two fills that know no EM: the visible
    voxels' mean, and Gaussian inpainting (normalized convolution, SD 2 voxels). Clean input."""
    import numpy as np
    import torch
    from scipy import ndimage as ndi

    from mire.io import imread
    from mire.learn.pretext import load_pretext, masked_reconstruction_sampler
    from mire.nets import build_model

    state, meta = load_pretext(stem)
    net = build_model(meta["network"])
    net.load_state_dict(state)
    net.eval()
    x, y, w = masked_reconstruction_sampler(imread(image_path).astype(np.float32), patch=(16, 64, 64),
                                            seed=seed).batch(0, batch_size=n)
    with torch.no_grad():
        pred = net(x).numpy()
    y, hidden = y.numpy(), (w == 1).numpy()
    vis = ~hidden
    mean_fill = np.broadcast_to((y * vis).sum(axis=(2, 3, 4), keepdims=True) / vis.sum(axis=(2, 3, 4), keepdims=True),
                                y.shape)
    inpaint = np.stack([ndi.gaussian_filter(y[i, 0] * vis[i, 0], 2.0)
                        / np.maximum(ndi.gaussian_filter(vis[i, 0].astype(np.float64), 2.0), 1e-3)
                        for i in range(n)])[:, None]
    mse = {k: float(((a - y) ** 2)[hidden].mean()) for k, a in
           (("network", pred), ("visible mean", mean_fill), ("gaussian inpainting", inpaint))}
    print(f"{image_path}: hidden-voxel MSE " + ", ".join(f"{k} {v:.5f}" for k, v in mse.items()))
    return mse


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="neuroproof", help="comma-separated: neuroproof, isbi-test")
    p.add_argument("--run-dir", default=str(Path.home() / ".cache" / "mire" / "runs" / "pretrain_em"))
    p.add_argument("--out", required=True, help="pretrained network path stem (.safetensors + .json)")
    p.add_argument("--check", default=None, metavar="IMAGE",
                   help="no training: score --out's hidden-voxel reconstruction on IMAGE against trivial fills")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--fraction", type=float, default=0.25, help="hidden fraction of each patch")
    p.add_argument("--block", type=int, default=4, help="edge of the hidden cubes (voxels)")
    p.add_argument("--visible-weight", type=float, default=0.1)
    p.add_argument("--no-corrupt", action="store_true", help="pure inpainting: no microscope change of the input")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.check:
        check(args.out, args.check)
        return 0
    from mire.learn.pretext import pretrain, save_pretext
    from mire.nets import PRESETS, build_model
    from mire.segment.augment import microscope_change

    images, desc = load_unlabeled([s.strip() for s in args.data.split(",") if s.strip()])
    # the shipped affinity network's config, one output channel (Segmenter builds it with residual=False)
    net = build_model({**PRESETS["fast"], "ndim": 3, "in_channels": 1, "out_channels": 1, "residual": False})
    corrupt = None if args.no_corrupt else (lambda x, rng: microscope_change(x, rng=rng)[0])
    stop = threading.Event()
    timer = threading.Timer(args.minutes * 60, stop.set)
    timer.daemon = True
    timer.start()
    t0 = time.time()
    hist = pretrain(net, images, patch=(16, 64, 64), fraction=args.fraction, block=args.block,
                    visible_weight=args.visible_weight, corrupt=corrupt, epochs=args.epochs,
                    steps_per_epoch=args.steps, batch_size=4, lr=args.lr, lr_decay=0.95, seed=0,
                    checkpoint_dir=args.run_dir, resume=True, progress=False, stop_event=stop)
    print(f"pretrained to step {hist['step']} in {time.time() - t0:.0f} s (stopped early: {hist['stopped']})")
    print("epoch losses:", json.dumps([round(v, 5) for v in hist["loss"]]))
    pretext = {"task": "masked-block reconstruction", "fraction": args.fraction, "block": args.block,
               "visible_weight": args.visible_weight, "corrupt": None if args.no_corrupt else "microscope_change",
               "loss": "weighted mse"}
    training = {"data": desc, "patch": [16, 64, 64], "batch_size": 4, "steps": hist["step"], "lr": args.lr,
                "lr_decay": 0.95, "seconds": round(hist["seconds"], 1), "epoch_losses": hist["loss"],
                "command": " ".join(sys.argv)}
    stem = save_pretext(args.out, net, {"pretext": pretext, "training": training})
    print(f"wrote {stem}.safetensors / .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
