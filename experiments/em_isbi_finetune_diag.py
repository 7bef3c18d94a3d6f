"""Why the painted-slice fine-tunes make ISBI worse (issue #17; ISBI is read / design data by now).

em_adaptation_ctl1.md: on ISBI (ssTEM, 4x4x50 nm) every (c) fine-tune from fibsem3d-affinity ends at ARAND ~0.81
(everything merged, label-free threshold ~0.10) while the model it starts from scores 0.72 and the no-learning
baseline 0.185. This script repeats the 3-slice fine-tune of that table exactly and prints:

1. the fine-tune's targets and loss mask (what is painted, what is masked, how many in-plane pairs are "0");
2. the mean predicted affinities on the held (unpainted) slices, on GT membrane pixels and on cell interiors,
   before and after the fine-tune (in-plane and z separately);
3. the fine-tuned affinities scored at fixed thresholds and at the starting model's own auto threshold: is it the
   affinities or the label-free threshold?

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/em_isbi_finetune_diag.py [--n 3] [--out NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import em_adaptation as ea  # noqa: E402  (the table's data, painting and scoring, unchanged)


def affinity_stats(aff, gt, zs_held):
    """Mean affinity per channel group on GT membrane pixels and on cell interiors (2 px from a membrane)."""
    memb = gt == 0
    inner = ~ndi.binary_dilation(memb, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
                                                           [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                           [[0, 0, 0], [0, 1, 0], [0, 0, 0]]]), iterations=2)
    held = np.zeros(gt.shape, bool)
    held[zs_held] = True
    out = {}
    for name, ch in (("z", [0]), ("in-plane", [1, 2])):
        a = aff[ch].mean(0)
        out[f"{name} membrane"] = float(a[memb & held].mean())
        out[f"{name} interior"] = float(a[inner & held].mean())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3, help="painted slices")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--membranes", action="store_true", help="paint the GT membranes with their own id "
                   "(Segmenter.train(membrane_label=...)) instead of giving them to the nearest body")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    from mire.segment import affinities, segment_affinities

    torch.set_num_threads(1)
    vol = ea.load_volumes(["isbi"])["isbi"]
    raw, gt = vol["raw"], vol["gt"]
    memb = int(gt.max()) + 1 if args.membranes else None
    sparse, held, zs = ea.painted(gt, args.n, memb)
    zs_held = [z for z in range(gt.shape[0]) if z not in zs]
    rec = {"painted": zs, "steps": args.steps, "membranes_painted": bool(args.membranes)}

    # 1. targets and mask of the fine-tune (whole volume; the patches are crops of this)
    t, m = affinities(sparse, ignore_label=0, background=memb if memb else 0)
    z0 = zs[0]
    rec["targets"] = {
        "painted voxels": int(np.count_nonzero(sparse)),
        "GT membrane pixels in a painted slice (before painting)": float(np.mean(gt[z0] == 0)),
        "painted slice: in-plane pairs with target 0 (faces)": float(1 - t[1:, z0][m[1:, z0] > 0].mean()),
        "painted slice: in-plane pairs in the loss": float(m[1:, z0].mean()),
        "z pairs in the loss (whole volume)": int(m[0].sum()),
        "unpainted voxels with any pair in the loss": int(((m.sum(0) > 0) & (sparse == 0)).sum()),
    }
    print(json.dumps(rec["targets"], indent=1), flush=True)

    start = ea.shipped()
    a0 = start.predict(raw)
    start.segment(raw)
    t_start = float(start.last_settings["threshold"])
    tuned = ea.shipped()
    t0 = time.perf_counter()
    patch = (16, 64, 64)
    tuned.train(raw, sparse, sparse=True, membrane_label=memb, patch=patch, epochs=1, steps_per_epoch=args.steps, batch_size=2, lr=3e-4,
                lr_decay=1.0, progress=False, seed=0)
    rec["train_seconds"] = round(time.perf_counter() - t0, 1)
    a1 = tuned.predict(raw)

    # 2. what the fine-tune changed in the affinities (held slices only)
    rec["affinities"] = {"start": affinity_stats(a0, gt, zs_held), "fine-tuned": affinity_stats(a1, gt, zs_held)}
    print(json.dumps(rec["affinities"], indent=1), flush=True)

    # 3. the affinities or the threshold?
    rows = []
    for label, model in (("start", start), ("fine-tuned", tuned)):
        for thr in ("auto", t_start, 0.1, 0.2, 0.5, 0.7, 0.9):
            seg = model.segment(raw, threshold=thr)
            r = {"model": label, "threshold": thr if thr != "auto" else f"auto={model.last_settings['threshold']:.3f}",
                 **ea.scores(held, seg, True)}
            rows.append(r)
            print(r, flush=True)
    # 4. the z-affinities: the painted slices never train them (every z pair touches an unpainted slice), so the
    # same affinities segmented slice by slice from the in-plane channels only (ISBI is scored per slice anyway)
    for label, aff in (("start", a0), ("fine-tuned", a1)):
        seg = np.zeros(gt.shape, np.int64)
        off = 0
        for z in range(gt.shape[0]):
            s2 = segment_affinities(aff[1:3, z], thresholds="auto", seed_threshold="auto").astype(np.int64)
            seg[z] = np.where(s2 > 0, s2 + off, 0)
            off = int(seg[z].max())
        r = {"model": label, "threshold": "auto, per slice, in-plane affinities only", **ea.scores(held, seg, True)}
        rows.append(r)
        print(r, flush=True)
    rec["thresholds"] = rows
    rec["argv"] = " ".join(sys.argv)
    if args.out:
        tmp = ea.RESULTS / f".{args.out}.json.tmp"
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(ea.RESULTS / f"{args.out}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
