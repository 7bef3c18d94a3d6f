"""Train the shipped flood-filling network ``fibsem3d-ffn`` on the gala FIB-SEM train volume.

    nice -n 10 python experiments/train_ffn.py --minutes 25          # trains, resumable, then exports
    python experiments/train_ffn.py --export-only                    # export the last checkpoint again

The ``small`` FFN preset (FOV 11^3, 4 residual modules of 16 channels, factorized convolutions,
move step 4) on ``train-image.tif`` / ``train-gt.tif`` of /work/shared/data/gala_fibsem_neurons
(GT 0 = boundary: it is "not the object" in every mask). FOV-movement training (3 moves per
episode, 4 Adam updates), EM augmentations. Checkpoints go to --run-dir; a second run continues
from them (same batches). Only the train volume is used here: the test volume is held out for
experiments/ffn_gala.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "gala_fibsem_neurons"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", default=str(Path.home() / ".cache" / "mire" / "runs" / "ffn-gala"))
    p.add_argument("--minutes", type=float, default=25.0)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--steps", type=int, default=100, help="episode batches per epoch")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--moves", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--export", default=str(ROOT / "src" / "mire" / "models" / "fibsem3d-ffn"))
    p.add_argument("--export-only", action="store_true")
    args = p.parse_args()
    if not DATA.exists():
        print(f"data not found: {DATA}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    from mire.io import imread
    from mire.learn import load_tensors
    from mire.segment import FloodFiller

    img, gt = imread(DATA / "train-image.tif"), imread(DATA / "train-gt.tif")
    ff = FloodFiller("small")
    run = Path(args.run_dir)
    t0 = time.time()
    if not args.export_only:
        hist = ff.train(img, gt, epochs=args.epochs, steps_per_epoch=args.steps, batch_size=args.batch_size,
                        moves=args.moves, lr=args.lr, lr_decay=0.95, checkpoint_dir=run, resume=True, seed=0,
                        progress=False, time_limit=args.minutes * 60)
        print(f"trained to episode batch {hist['step']} ({hist['updates']} updates) in {time.time() - t0:.0f} s; "
              f"epoch losses {[round(v, 4) for v in hist['loss']]}")
    else:
        ff.model.load_state_dict(load_tensors(run / "last.safetensors"))
        hist = json.loads((run / "last.json").read_text())["history"]
        ff.metadata["training"] = {"steps": hist["step"], "updates": hist["updates"]}
    ff.model.eval()
    ff.metadata["name"] = "fibsem3d-ffn"
    ff.metadata["training"].update({"data": "gala example FIB-SEM train volume (50x100x200)",
                                    "script": "experiments/train_ffn.py"})
    stem = ff.save(args.export)
    print(f"wrote {stem}.safetensors / .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
