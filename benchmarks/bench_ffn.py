"""FFN inference cost: wall time, peak memory and FOV evaluations against a dense sliding window.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_ffn.py --size 64 --threads 1

Runs the shipped ``fibsem3d-ffn`` (or --model) on a ``size^3`` crop of the centre of the NeuroProof
FIB-SEM volume (``neuroproof_fibsem_medulla_sample1_unlabeled/grayscale.tif``, 250^3), whole-volume
flood-filling with the model's stored settings. Reports: seconds, FOV evaluations, the dense
sliding-window count at the move step (``prod(ceil(shape / delta))``), their ratio, seconds per
evaluation, and the peak resident memory of this process (``ru_maxrss``; the baseline after the
imports is given too). The 250^3 figure is an extrapolation: evaluations are assumed to scale with
the volume (the objects fill it), and time with the evaluations, which is what the crop measures;
at 250^3 the canvas and owner arrays add about 250^3 x 13 bytes (0.2 GB) to the memory.
Results go to benchmarks/results/bench_ffn.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIBSEM = ROOT.parent / "shared" / "data" / "neuroproof_fibsem_medulla_sample1_unlabeled" / "grayscale.tif"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fibsem3d-ffn")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ffn.json"))
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from mire.io import imread
    from mire.segment import FloodFiller

    vol = imread(FIBSEM)
    c = [n // 2 for n in vol.shape]
    h = args.size // 2
    crop = np.ascontiguousarray(vol[tuple(slice(x - h, x - h + args.size) for x in c)])
    ff = FloodFiller.load(args.model)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    t = time.perf_counter()
    seg, st = ff.segment(crop, return_stats=True)
    sec = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    scale = 250 ** 3 / crop.size
    res = {"crop": list(crop.shape), "threads": args.threads, "seconds": round(sec, 1), "flood_seconds": round(st["seconds"], 1),
           "evals": st["evals"], "dense_evals": st["dense_evals"], "eval_fraction": round(st["evals"] / st["dense_evals"], 3),
           "ms_per_eval": round(1000 * st["seconds"] / max(st["evals"], 1), 1), "objects": st["objects"],
           "unclaimed_fraction": round(st["unclaimed_fraction"], 3), "peak_rss_gb": round(peak, 3),
           "rss_after_imports_gb": round(base, 3), "extrapolated_250_minutes": round(sec * scale / 60, 1),
           "extrapolated_250_evals": int(st["evals"] * scale), "model": args.model, "fov": ff.model.config["fov"],
           "delta": list(ff.delta)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
