"""Out-of-core restoration + segmentation of a generated OME-Zarr volume (issue #9).

A volume of ``--size-gb`` GiB (float32, default 4) is generated block by block on disk as
OME-Zarr: a smooth random field (a sum of plane waves, so it is continuous across block faces)
whose ridges act as cell boundaries, plus Gaussian noise. It is then

1. restored with Wiener deconvolution, block by block (``mire.restore.restore_blockwise``), and
2. segmented block by block with globally consistent labels (``mire.segment.segment_blockwise``),

both written as OME-Zarr with pyramids, while a sampler thread records the peak resident memory
of this process and its children (goal: < 3 GB whatever the volume size). Then the throughput
with 1 and 2 local workers, and how the runtime grows with the volume size (goal: linear), on
smaller volumes. Times are printed with the voxel rate; ratios are what to compare across runs.

Run::

    python benchmarks/bench_blockwise.py                     # 4 GiB + scaling (about an hour on 2 cores)
    python benchmarks/bench_blockwise.py --size-gb 0.25 --scaling 0.03,0.06 --workers-check 0.03  # quick
    python benchmarks/bench_blockwise.py --size-gb 0 --json ...  # only the workers and scaling runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np

BLOCK = (64, 256, 256)
N_WAVES = 16


class PeakRSS:
    """Peak resident memory (bytes) of this process plus its children, sampled every 0.1 s."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self):
        total = self.proc.memory_info().rss
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:  # a child that just exited
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.1)

    def __enter__(self):
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


SEGMENT_HALO = 16


def haloed_voxels(shape, *, halo=SEGMENT_HALO) -> int:
    """Voxels the segmentation's blocks read (cores plus halos): the work per run. Its ratio to the
    volume grows with the number of blocks along z until every block has neighbours on both sides
    (1.17 for one z layer of blocks, 1.69 for four, 1.9 in the limit), so time per volume voxel
    grows with size even when time per processed voxel is constant."""
    from mire.blockwise import plan_blocks

    return sum(math.prod(s.stop - s.start for s in b.outer) for b in plan_blocks(shape, BLOCK, SEGMENT_HALO))


def shape_for(size_gb: float) -> tuple:
    """A (Z, Y, X) float32 volume of about ``size_gb`` GiB, Z:Y:X about 1:8:8, multiples of the block."""
    voxels = size_gb * 2**30 / 4
    z = max(BLOCK[0], int(round((voxels / 64) ** (1 / 3) / BLOCK[0])) * BLOCK[0])
    yx = max(BLOCK[1], int(round(math.sqrt(voxels / z) / BLOCK[1])) * BLOCK[1])
    return (z, yx, yx)


def _waves(seed: int):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(N_WAVES, 3))
    k *= (2 * np.pi / 40.0) / np.linalg.norm(k, axis=1, keepdims=True)  # cells ~ 40 voxels across
    return k, rng.uniform(0, 2 * np.pi, N_WAVES)


def generate(path: Path, shape, *, seed=0, noise=0.03, workers=None) -> None:
    """Write the test volume block by block (never whole in memory)."""
    import dask.array as da

    from mire.blockwise import map_blocks

    k, phase = _waves(seed)

    def block_field(piece, block):
        z, y, x = (np.arange(s.start, s.stop, dtype=np.float64) for s in block.outer)
        acc = np.zeros(piece.shape, np.float32)
        for kk, ph in zip(k, phase):
            # cos(k.r + phase) = Re(e^{i kz z} e^{i ky y} e^{i kx x} e^{i phase}): outer products, no 3D cos
            yx = np.outer(np.exp(1j * (kk[1] * y + ph)), np.exp(1j * kk[2] * x)).astype(np.complex64)
            acc += (np.exp(1j * kk[0] * z).astype(np.complex64)[:, None, None] * yx[None]).real
        field = 0.5 + 0.25 * acc / math.sqrt(N_WAVES / 2)  # mean 0.5, SD 0.25: mostly in [0, 1], ridges high
        rng = np.random.default_rng([seed, block.index])
        return field + rng.normal(0, noise, piece.shape).astype(np.float32)

    zeros = da.zeros(shape, dtype=np.float32, chunks=BLOCK)
    map_blocks(block_field, zeros, block_shape=BLOCK, out=path, dtype=np.float32, axes="ZYX", pass_block=True,
               workers=workers, resume=False)


@contextlib.contextmanager
def local_workers(workers: int, kind: str):
    """``kind="processes"``: a dask.distributed LocalCluster of ``workers`` single-threaded worker
    processes (the segmentation's scipy.ndimage steps hold the GIL, so threads share about one
    core); its workers are children of this process, so their memory is counted.
    ``"threads"``: mire's default local threaded scheduler."""
    if kind == "threads":
        yield None
        return
    import distributed

    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50, memory_limit=0) as cluster, distributed.Client(cluster) as client:
        client.run(_one_torch_thread)
        yield client


def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


def pipeline(src: Path, work: Path, *, workers, kind="processes") -> dict:
    """Restore then segment ``src`` block by block; times and peak memory."""
    import dask.array as da

    from mire.io import imread
    from mire.restore import restore_blockwise
    from mire.segment import segment_blockwise

    restored, labels = work / "restored.ome.zarr", work / "labels.ome.zarr"
    for p in (restored, labels):
        shutil.rmtree(p, ignore_errors=True)
    image = imread(src, lazy=True)
    with PeakRSS() as mem, local_workers(workers, kind) as client:
        t0 = time.perf_counter()
        rest = restore_blockwise(image, "wiener", psf="gaussian:1.0", weight=0.01, block_shape=BLOCK, halo=8,
                                 out=restored, workers=workers, resume=False,
                                 scheduler=client)
        t1 = time.perf_counter()
        # the restored field is the boundary map; clip to probabilities, lazily (read block by block)
        boundary = da.clip(da.from_zarr(rest), 0.0, 1.0)
        # overlap stitching: each block agglomerates itself, so the driver holds only the face matches
        # (graph stitching holds every region-graph edge of the volume: too much for 4 GB on one machine)
        lab = segment_blockwise(boundary, block_shape=BLOCK, halo=SEGMENT_HALO, out=labels, axes="ZYX", workers=workers,
                                stitch="overlap", resume=False, scheduler=client)
        t2 = time.perf_counter()
    n = math.prod(image.shape)
    return {"shape": list(image.shape), "gib": n * 4 / 2**30, "restore_s": t1 - t0, "segment_s": t2 - t1,
            "total_s": t2 - t0, "mvox_per_s": n / (t2 - t0) / 1e6, "peak_rss_gb": mem.peak / 1e9,
            "labels_dtype": str(lab.dtype), "workers": workers, "kind": kind,
            "haloed_mvox_per_s": haloed_voxels(image.shape) / (t2 - t0) / 1e6}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=4.0, help="the big volume (0: skip it)")
    ap.add_argument("--scaling", default="0.125,0.25,0.5", help="GiB sizes for the runtime-vs-size fit")
    ap.add_argument("--workers-check", type=float, default=0.125, help="GiB volume for the 1 vs 2 worker run")
    ap.add_argument("--kind", choices=("processes", "threads"), default="processes",
                    help="local worker processes (a LocalCluster) or mire's default threads")
    ap.add_argument("--workdir", default=os.environ.get("MIRE_BENCH_DIR", "/tmp/mire_bench_blockwise"))
    ap.add_argument("--json", default="benchmarks/results/bench_blockwise.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # one thread per dask worker: the workers are the parallelism
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    report = {"block": BLOCK, "cores": os.cpu_count()}

    def run_size(gb, workers):
        shape = shape_for(gb)
        src = work / f"input_{'x'.join(map(str, shape))}.ome.zarr"
        if not src.exists():
            t = time.perf_counter()
            generate(src, shape, workers=workers)
            print(f"  generated {src.name} ({math.prod(shape) * 4 / 2**30:.2f} GiB) in {time.perf_counter() - t:.0f} s",
                  flush=True)
        res = pipeline(src, work, workers=workers, kind=args.kind)
        print(f"  {res['gib']:.2f} GiB {tuple(res['shape'])}, {workers} worker(s): restore {res['restore_s']:.0f} s, "
              f"segment {res['segment_s']:.0f} s, {res['mvox_per_s']:.2f} Mvox/s, peak RSS {res['peak_rss_gb']:.2f} GB",
              flush=True)
        return res

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():  # after every stage, so a long run that is stopped keeps what it measured
        out.write_text(json.dumps(report, indent=1))

    if args.size_gb > 0:
        print(f"big volume: {args.size_gb} GiB (2 workers)", flush=True)
        big = run_size(args.size_gb, 2)
        report["big"] = big
        print(f"  peak RSS {big['peak_rss_gb']:.2f} GB for a {big['gib']:.2f} GiB volume (goal < 3 GB)", flush=True)
        save()

    print("workers: 1 vs 2", flush=True)
    one = run_size(args.workers_check, 1)
    two = run_size(args.workers_check, 2)
    report["workers"] = {"1": one, "2": two, "speedup_2_vs_1": one["total_s"] / two["total_s"]}
    print(f"  speed-up with 2 workers: {report['workers']['speedup_2_vs_1']:.2f}x", flush=True)
    save()

    print("runtime vs size (2 workers)", flush=True)
    scaling = [run_size(float(g), 2) for g in args.scaling.split(",") if g]
    if len(scaling) >= 2:
        vox = np.array([math.prod(r["shape"]) for r in scaling], float)
        t = np.array([r["total_s"] for r in scaling])
        work = np.array([haloed_voxels(r["shape"]) for r in scaling], float)
        slope = float(np.polyfit(np.log(vox), np.log(t), 1)[0])  # 1.0 = linear
        slope_work = float(np.polyfit(np.log(work), np.log(t), 1)[0])
        report["scaling"] = {"runs": scaling, "loglog_slope": slope, "loglog_slope_haloed": slope_work}
        print(f"  log-log slope of time vs voxels: {slope:.2f}, vs voxels read with halos: {slope_work:.2f} "
              "(1 = linear)", flush=True)
    save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
