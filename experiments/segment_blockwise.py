"""How far blockwise segmentation (mire.segment.segment_blockwise) is from a whole-volume run.

For each volume and (block, halo, stitch) setting: adapted Rand error and VOI (split, merge)
between the whole-volume segmentation (mire.segment.segment_boundaries, the reference) and the
blockwise one; the number of whole-volume segments whose blockwise ID changes at a block face
("face splits"); both results' ARAND against the ground truth; and the blockwise run time.

Volumes:
- synthetic: mire.data.em_cells (24, 128, 128), seeds 1-3, boundary map = baseline_boundary_map;
- real: the gala FIB-SEM test volume (50, 100, 200) from /work/shared/data, with the boundary map of
  the shipped fibsem3d-affinity model (affinities_to_boundaries, "max") at its threshold 0.4, and
  with the no-learning baseline map.

Run: ``nice -n 10 python experiments/segment_blockwise.py`` (about 5 minutes on 2 shared cores).
Writes experiments/results/segment_blockwise.{md,json}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from mire.data import em_cells
from mire.metrics import adapted_rand_error, variation_of_information
from mire.segment import baseline_boundary_map, face_splits, segment_blockwise, segment_boundaries

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gala_fibsem_neurons"
if not DATA.exists():
    DATA = Path("/work/shared/data/gala_fibsem_neurons")
RESULTS = Path(__file__).resolve().parent / "results"


def volumes():
    for seed in (1, 2, 3):
        image, labels = em_cells((24, 128, 128), seed=seed)
        yield f"em_cells seed {seed}", baseline_boundary_map(image), labels, 0.5, \
            [((8, 64, 64), (4, 16, 16)), ((8, 64, 64), (8, 16, 16)), ((8, 32, 32), (8, 12, 12)),
             ((8, 32, 32), (8, 16, 16))]
    if not DATA.exists():
        print(f"skipping the real EM volume: {DATA} is absent")
        return
    import tifffile
    import torch

    from mire.segment import Segmenter, affinities_to_boundaries

    torch.set_num_threads(1)
    raw = tifffile.imread(DATA / "test-image.tif")
    gt = tifffile.imread(DATA / "test-gt.tif")
    model = Segmenter.load("fibsem3d-affinity")
    learned = affinities_to_boundaries(model.predict(raw), reduce="max")
    settings = [((25, 50, 100), (4, 16, 16)), ((25, 50, 100), (8, 24, 24)), ((25, 50, 100), (12, 32, 32)),
                ((16, 50, 64), (8, 24, 24)), ((16, 50, 64), (16, 32, 32))]
    yield "gala test, fibsem3d-affinity boundaries", learned, gt, 0.4, settings
    yield "gala test, baseline boundaries", baseline_boundary_map(raw), gt, 0.5, settings


def main():
    rows = []
    for name, b, gt, threshold, settings in volumes():
        t = time.perf_counter()
        whole = segment_boundaries(b, threshold=threshold)
        t_whole = time.perf_counter() - t
        for block, halo in settings:
            for stitch in ("graph", "overlap"):
                t = time.perf_counter()
                seg = segment_blockwise(b, block_shape=block, halo=halo, threshold=threshold, stitch=stitch)
                elapsed = time.perf_counter() - t
                split, merge = variation_of_information(whole, seg)
                row = dict(volume=name, shape=list(b.shape), threshold=threshold, block=list(block),
                           halo=list(halo), stitch=stitch, arand=adapted_rand_error(whole, seg)[0],
                           voi_split=split, voi_merge=merge, face_splits=len(face_splits(whole, seg, block)),
                           n_whole=int(len(np.unique(whole))), n_blocks=int(len(np.unique(seg))),
                           gt_arand_whole=adapted_rand_error(gt, whole)[0],
                           gt_arand_blocks=adapted_rand_error(gt, seg)[0], seconds=elapsed,
                           seconds_whole=t_whole)
                rows.append(row)
                print(f"{name:40s} {str(block):14s} {str(halo):13s} {stitch:7s} ARAND {row['arand']:.4f} "
                      f"VOI {split:.3f}/{merge:.3f} face splits {row['face_splits']:2d} "
                      f"segments {row['n_whole']}/{row['n_blocks']} {elapsed:.1f}s", flush=True)
    header = ("| volume | block | halo | stitch | ARAND vs whole | VOI split | VOI merge | face splits | "
              "segments whole / blocks | GT ARAND whole | GT ARAND blocks | time (s) |")
    lines = [header, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['volume']} | {tuple(r['block'])} | {tuple(r['halo'])} | {r['stitch']} | "
                     f"{r['arand']:.4f} | {r['voi_split']:.3f} | {r['voi_merge']:.3f} | {r['face_splits']} | "
                     f"{r['n_whole']} / {r['n_blocks']} | {r['gt_arand_whole']:.4f} | {r['gt_arand_blocks']:.4f} | "
                     f"{r['seconds']:.1f} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "segment_blockwise.md").write_text(
        "# Blockwise vs whole-volume segmentation\n\n`nice -n 10 python experiments/segment_blockwise.py`; "
        "reference = `segment_boundaries` on the whole volume; face splits = whole-volume segments whose "
        "blockwise majority ID changes across a block face.\n\n" + table + "\n")
    (RESULTS / "segment_blockwise.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
