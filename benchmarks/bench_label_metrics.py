"""Adapted Rand error + VOI on a 250^3 label pair: mire vs scikit-image, values and speed.

mire computes both metrics from one contingency table (``mire.metrics.segmentation_scores``);
scikit-image needs two calls (``adapted_rand_error`` and ``variation_of_information``), each
building its own table. Both are timed in this one run, on the same arrays.

Ground truth: ``gala_fibsem_neurons/test-gt.tif`` (real dense neuron labels, 0 = boundary)
tiled to 250^3 with distinct ids per tile, when ../shared/data is present; and always a
synthetic one (Voronoi cells of random seeds with 1-voxel boundaries labelled 0). The
segmentation to score is the ground truth with its boundaries filled, then ~10 % of
segments merged with another, ~10 % split in two, and 2 % of voxels jittered.

    nice -n 10 python benchmarks/bench_label_metrics.py [--size 250] [--repeat 2]

Conventions compared (see the mire.metrics docstrings):
- adapted Rand error: both ignore GT label 0; scikit-image <= 0.26 returns precision and
  recall swapped (its issue #6485), so mire's precision is compared with its "recall".
- VOI: mire's segmentation_scores ignores GT label 0 (EM protocol), scikit-image's
  default ignores nothing; it is timed with ``ignore_labels=(0,)`` so both do the same
  work, and its default is printed too, to show the difference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage

DATA = Path(os.environ.get("MIRE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def gala_ground_truth(size: int) -> np.ndarray | None:
    path = DATA / "gala_fibsem_neurons" / "test-gt.tif"
    if not path.exists():
        print(f"(skipping the gala ground truth: {path} not found)", file=sys.stderr)
        return None
    import tifffile

    tile = tifffile.imread(path).astype(np.int64)
    reps = [-(-size // s) for s in tile.shape]
    full = np.tile(tile, reps)[:size, :size, :size]
    # Offset the ids of each copy so the tiles hold distinct objects (label 0 stays 0).
    z, y, x = np.ogrid[:size, :size, :size]
    copy = (z // tile.shape[0]) * reps[1] * reps[2] + (y // tile.shape[1]) * reps[2] + x // tile.shape[2]
    return np.where(full > 0, full + copy * (int(tile.max()) + 1), 0).astype(np.int32)


def voronoi_ground_truth(size: int, n_seeds: int, rng) -> np.ndarray:
    seeds = np.ones((size,) * 3, bool)
    pts = rng.integers(0, size, (n_seeds, 3))
    seeds[tuple(pts.T)] = False
    # Nearest seed of every voxel: the EDT's feature transform, much faster than a KD-tree.
    nearest = ndimage.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    ids = np.zeros((size,) * 3, np.int32)
    ids[tuple(pts.T)] = np.arange(1, n_seeds + 1)
    labels = ids[tuple(nearest)]
    del nearest
    # EM-like ground truth: a 1-voxel unlabelled (0) boundary between cells.
    edge = np.zeros(labels.shape, bool)
    for ax in range(3):
        d = np.diff(labels, axis=ax) != 0
        sl = [slice(None)] * 3
        sl[ax] = slice(0, -1)
        edge[tuple(sl)] |= d
    labels[edge] = 0
    return labels


def perturbed_segmentation(gt: np.ndarray, rng) -> np.ndarray:
    # Fill the boundary with the nearest labelled voxel: a segmentation has no "unlabelled".
    nearest = ndimage.distance_transform_edt(gt == 0, return_distances=False, return_indices=True)
    seg = gt[tuple(nearest)].astype(np.int64)
    del nearest
    ids = np.unique(seg)
    lut = np.arange(ids.max() + 1, dtype=np.int64)
    # false merges: ~10 % of segments take the id of another random segment
    merged = rng.choice(ids, len(ids) // 10, replace=False)
    lut[merged] = rng.choice(ids, len(merged))
    seg = lut[seg]
    # false splits: ~10 % of segments are cut along x at the volume's middle
    split = np.isin(seg, rng.choice(ids, len(ids) // 10, replace=False))
    split &= (np.arange(seg.shape[2]) >= seg.shape[2] // 2)[None, None, :]
    seg[split] += ids.max() + 1
    # boundary noise: 2 % of voxels copy the label two voxels away along z
    jitter = rng.random(seg.shape) < 0.02
    seg[jitter] = np.roll(seg, 2, axis=0)[jitter]
    return seg.astype(np.uint32)


def timed(fn, repeat: int):
    """Best wall-clock and best CPU time of ``repeat`` calls (CPU time is what a busy shared
    machine distorts least: both implementations run on one thread)."""
    wall, cpu, out = np.inf, np.inf, None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return out, wall, cpu


def peak_mib(fn) -> float:
    # numpy reports its buffers to tracemalloc, so this sees the label-sized temporaries.
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def compare(name: str, gt: np.ndarray, seg: np.ndarray, repeat: int) -> float:
    from skimage.metrics import adapted_rand_error, variation_of_information

    from mire.metrics import segmentation_scores

    def mire_call():
        return segmentation_scores(gt, seg)

    def skimage_calls():
        return adapted_rand_error(gt, seg), variation_of_information(gt, seg, ignore_labels=(0,))

    ours, t_mire, c_mire = timed(mire_call, repeat)
    (ref_arand, ref_voi), t_sk, c_sk = timed(skimage_calls, repeat)
    ref_voi_default = variation_of_information(gt, seg)
    mem_mire, mem_sk = peak_mib(mire_call), peak_mib(skimage_calls)

    print(f"\n## {name}: shape {gt.shape}, {len(np.unique(gt)) - 1} GT ids, "
          f"{len(np.unique(seg))} segments, GT 0 = {np.mean(gt == 0):.1%} of voxels\n")
    print("| value | mire | scikit-image | abs diff |")
    print("|---|---:|---:|---:|")
    rows = [
        ("arand error", ours["arand_error"], ref_arand[0]),
        ("arand precision (skimage: its 'recall')", ours["arand_precision"], ref_arand[2]),
        ("arand recall (skimage: its 'precision')", ours["arand_recall"], ref_arand[1]),
        ("VOI split, GT 0 ignored", ours["voi_split"], ref_voi[0]),
        ("VOI merge, GT 0 ignored", ours["voi_merge"], ref_voi[1]),
    ]
    worst = 0.0
    for label, a, b in rows:
        worst = max(worst, abs(a - b))
        print(f"| {label} | {a:.9f} | {b:.9f} | {abs(a - b):.1e} |")
    print(f"| VOI split / merge, skimage default (GT 0 scored as a segment) | - | "
          f"{ref_voi_default[0]:.4f} / {ref_voi_default[1]:.4f} | convention differs |")
    print(f"| CREMI score sqrt(arand * VOI) | {ours['cremi_score']:.6f} | - | |")
    print()
    print("| timing | mire segmentation_scores | skimage arand + voi | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| wall clock, best of {repeat} (s) | {t_mire:.2f} | {t_sk:.2f} | {t_sk / t_mire:.1f}x faster |")
    print(f"| CPU time, best of {repeat} (s) | {c_mire:.2f} | {c_sk:.2f} | {c_sk / c_mire:.1f}x less |")
    print(f"| peak traced memory (MiB) | {mem_mire:.0f} | {mem_sk:.0f} | {mem_sk / mem_mire:.1f}x less |")
    print(f"\nlargest value difference: {worst:.1e} ({'OK' if worst < 1e-6 else 'MISMATCH'} at 1e-6)")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=250, help="edge of the cubic volume (default 250)")
    parser.add_argument("--repeat", type=int, default=2, help="timing repeats, best kept (default 2)")
    parser.add_argument("--seeds", type=int, default=3000, help="cells of the synthetic ground truth")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    import platform

    import skimage

    import mire

    print(f"# adapted Rand error + VOI: mire {mire.__version__} vs scikit-image {skimage.__version__} "
          f"(numpy {np.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs)")
    worst = 0.0
    gt = gala_ground_truth(args.size)
    if gt is not None:
        worst = max(worst, compare("gala test-gt tiled", gt, perturbed_segmentation(gt, rng), args.repeat))
    gt = voronoi_ground_truth(args.size, args.seeds, rng)
    worst = max(worst, compare(f"synthetic Voronoi, {args.seeds} seeds", gt, perturbed_segmentation(gt, rng),
                               args.repeat))
    sys.exit(0 if worst < 1e-6 else 1)


if __name__ == "__main__":
    main()
