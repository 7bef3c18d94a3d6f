"""ARAND + VOI on an on-disk zarr label volume: mire blockwise vs in memory (mire, scikit-image).

A ground truth / segmentation pair (default 512^3 uint32, 0.5 GiB each uncompressed) is
generated chunk by chunk into zarr stores (128^3 chunks, zstd) under ``--dir``, and kept
there for the next run. Then, each in a fresh Python process so that its peak memory is its
own, starting from the zarr stores on disk:

- ``skimage``: load both volumes into numpy, ``skimage.metrics.adapted_rand_error`` +
  ``variation_of_information(ignore_labels=(0,))`` (two contingency tables);
- ``mire in memory``: load both, ``mire.metrics.segmentation_scores`` (one table);
- ``mire blockwise``: ``segmentation_scores`` on the zarr arrays themselves, per-block
  contingency tables summed (``mire.metrics`` module docstring), with 1 and 2 worker threads.

Peak memory is the process's peak resident set (VmHWM, reset after the imports) minus its
resident set then, i.e. what the computation itself held (Linux only). The values of all four must agree
(ARAND, VOI split/merge to 1e-9; blockwise and in-memory mire are identical).

Ground truth: cells of ~32^3 voxels on a sinusoidally warped grid (so cell faces cross the
chunk grid obliquely), with a 1-voxel unlabelled (0) boundary; segmentation: the cells with
the boundary filled, 10 % of cells merged into a neighbour, 10 % split in two, and 2 % of
voxels taking the label two voxels away (boundary noise). Everything is a function of the
voxel coordinates, so every chunk is generated on its own.

    nice -n 10 python benchmarks/bench_blockwise_metrics.py [--size 512] [--dir /tmp/mire-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CELL = 32       # cell edge in voxels
CHUNK = 128     # zarr chunk edge


# --------------------------------------------------------------------------------------------
# data: generated chunk by chunk from voxel coordinates
# --------------------------------------------------------------------------------------------

def _warp(z, y, x):
    """Smoothly warped coordinates: cell faces become wavy surfaces."""
    tau = 2 * np.pi
    return (z + 5 * np.sin(tau * y / 97) + 3 * np.sin(tau * x / 61),
            y + 5 * np.sin(tau * x / 89) + 3 * np.sin(tau * z / 53),
            x + 5 * np.sin(tau * z / 79) + 3 * np.sin(tau * y / 67))


def _cell_ids(z, y, x, size):
    zw, yw, xw = _warp(z, y, x)
    k = size // CELL + 2                                   # cells per axis, room for the warp
    iz, iy, ix = (np.floor(c / CELL).astype(np.int64) + 1 for c in (zw, yw, xw))
    ids = (iz * k + iy) * k + ix + 1
    on_face = (np.mod(zw, CELL) < 1) | (np.mod(yw, CELL) < 1) | (np.mod(xw, CELL) < 1)
    return ids, on_face, xw


def _hash(v):
    """A fixed pseudo-random uint64 per integer (splitmix64): chunk-independent noise."""
    v = (np.asarray(v, np.uint64) + np.uint64(0x9E3779B97F4A7C15))
    v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return v ^ (v >> np.uint64(31))


def _chunk_labels(corner, shape, size):
    z, y, x = np.meshgrid(*(np.arange(c, c + n, dtype=np.float64) for c, n in zip(corner, shape)),
                          indexing="ij", sparse=True)
    ids, on_face, xw = _cell_ids(z, y, x, size)
    gt = np.where(on_face, 0, ids)
    h = _hash(ids) % np.uint64(10)
    seg = np.where(h == 0, ids + 1, ids)                            # false merges with a neighbour
    seg = np.where((h == 1) & (np.mod(xw, CELL) > CELL / 2), seg + 10 ** 6, seg)   # false splits
    shifted, _, _ = _cell_ids(z + 2, y, x, size)
    lin = (z.astype(np.int64) * size + y.astype(np.int64)) * size + x.astype(np.int64)
    noisy = _hash(lin + 7 * size ** 3) % np.uint64(50) == 0        # 2 % of voxels
    seg = np.where(noisy, shifted, seg)
    return gt.astype(np.uint32), seg.astype(np.uint32)


def make_volumes(folder: Path, size: int) -> tuple[Path, Path]:
    import zarr

    gt_path, seg_path = folder / f"gt_{size}.zarr", folder / f"seg_{size}.zarr"
    done = folder / f"done_{size}"
    if done.exists():
        return gt_path, seg_path
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    arrays = [zarr.create_array(store=str(p), shape=(size,) * 3, chunks=(CHUNK,) * 3, dtype=np.uint32,
                                overwrite=True) for p in (gt_path, seg_path)]
    step = min(CHUNK, size)
    for z0 in range(0, size, step):
        for y0 in range(0, size, step):       # slabs of one chunk row: ~130 MB of temporaries
            shape = (min(step, size - z0), min(step, size - y0), size)
            gt, seg = _chunk_labels((z0, y0, 0), shape, size)
            arrays[0][z0:z0 + shape[0], y0:y0 + shape[1]] = gt
            arrays[1][z0:z0 + shape[0], y0:y0 + shape[1]] = seg
    done.touch()
    print(f"(generated {size}^3 ground truth and segmentation in {folder} in "
          f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return gt_path, seg_path


# --------------------------------------------------------------------------------------------
# one measurement per process
# --------------------------------------------------------------------------------------------

def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def _reset_peak_rss() -> float:
    """Start the peak-RSS count afresh (Linux: writing 5 to clear_refs resets VmHWM); return the RSS.

    ``ru_maxrss`` would not do: after fork + exec it starts from the parent's resident set."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mib("VmRSS")


def measure(method: str, gt_path: str, seg_path: str) -> dict:
    import zarr
    from skimage.metrics import adapted_rand_error, variation_of_information

    from mire.metrics import segmentation_scores

    import mire.blockwise  # noqa: F401  (imports dask: part of the baseline, not of the work)

    base = _reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    gt, seg = zarr.open_array(gt_path, mode="r"), zarr.open_array(seg_path, mode="r")
    if method == "skimage":
        gt, seg = gt[:], seg[:]
        error, prec, rec = adapted_rand_error(gt, seg)
        split, merge = variation_of_information(gt, seg, ignore_labels=(0,))
        # scikit-image <= 0.26 returns precision and recall swapped (its issue #6485)
        out = {"arand_error": error, "arand_precision": rec, "arand_recall": prec,
               "voi_split": split, "voi_merge": merge}
    elif method == "mire-memory":
        out = segmentation_scores(gt[:], seg[:])
    else:
        workers = int(method.rsplit("-", 1)[1])
        out = segmentation_scores(gt, seg, scheduler="threads", workers=workers)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "cpu_s": time.process_time() - c0, "peak_mib": _status_mib("VmHWM") - base,
            **{k: float(v) for k, v in out.items() if k != "cremi_score"}}


def run_child(method: str, gt_path: Path, seg_path: Path) -> dict:
    cmd = [sys.executable, __file__, "--measure", method, str(gt_path), str(seg_path)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


METHODS = [("skimage", "scikit-image, in memory"), ("mire-memory", "mire, in memory"),
           ("mire-blockwise-1", "mire blockwise, 1 worker"), ("mire-blockwise-2", "mire blockwise, 2 workers")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="edge of the cubic volume (default 512)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mire-bench-blockwise-metrics"),
                        help="where the zarr volumes are generated and kept")
    parser.add_argument("--measure", nargs=3, metavar=("METHOD", "GT", "SEG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    import dask
    import skimage
    import zarr

    import mire

    gt_path, seg_path = make_volumes(args.dir, args.size)
    n = args.size ** 3
    print(f"# ARAND + VOI on a {args.size}^3 uint32 zarr label pair ({n * 4 / 2 ** 30:.2f} GiB each "
          f"uncompressed, {CHUNK}^3 chunks): mire {mire.__version__} blockwise vs in memory; "
          f"scikit-image {skimage.__version__}, zarr {zarr.__version__}, dask {dask.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    results = {}
    for method, _ in METHODS:
        results[method] = run_child(method, gt_path, seg_path)
        print(f"({method}: {results[method]['wall_s']:.1f} s)", file=sys.stderr)

    ref = results["skimage"]
    print("| method | wall (s) | CPU (s) | peak memory (MiB) | time vs skimage | memory vs skimage |")
    print("|---|---:|---:|---:|---:|---:|")
    for method, label in METHODS:
        r = results[method]
        ratios = ("reference", "reference") if method == "skimage" else (
            f"{ref['wall_s'] / r['wall_s']:.2f}x faster", f"{ref['peak_mib'] / max(r['peak_mib'], 1):.1f}x less")
        print(f"| {label} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_mib']:.0f} | {ratios[0]} | {ratios[1]} |")
    keys = ("arand_error", "arand_precision", "arand_recall", "voi_split", "voi_merge")
    print("\n| value | " + " | ".join(label for _, label in METHODS) + " |")
    print("|---|" + "---:|" * len(METHODS))
    worst = 0.0
    for k in keys:
        worst = max(worst, *(abs(results[m][k] - ref[k]) for m, _ in METHODS))
        print(f"| {k} | " + " | ".join(f"{results[m][k]:.10f}" for m, _ in METHODS) + " |")
    exact = all(results[m][k] == results["mire-memory"][k] for m in ("mire-blockwise-1", "mire-blockwise-2")
                for k in keys)
    print(f"\nlargest difference from scikit-image: {worst:.1e}; blockwise == in-memory mire exactly: {exact}")
    sys.exit(0 if worst < 1e-9 and exact else 1)


if __name__ == "__main__":
    main()
