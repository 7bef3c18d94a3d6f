"""Inference throughput of the shipped learned restorers vs a plain 3D U-Net, on one 64x512x512 stack.

For each model, in a fresh subprocess (so its peak memory is its own): wall time of
``Restorer.predict`` (normalization, tiling, blending included) on a ZYX stack, voxels/s, peak
resident memory, the model's multiply-accumulates per voxel (counted with forward hooks), the
FLOP/s that makes, and its fraction of this machine's own float32 matmul FLOP/s (a 2048^2 torch
matmul measured in the same run). The peer is a plain 3D U-Net of ~350k parameters (full 3x3x3
convs at full resolution, depth 4, 8 base channels, batch norm): the architecture most tools ship.

    nice -n 10 python benchmarks/bench_inference.py [--shape 64,512,512] [--threads 2]

The machine is shared: compare the ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np

PEER = {"arch": "unet", "ndim": 3, "depth": 4, "base_channels": 8, "convs_per_block": 2, "norm": "batch",
        "activation": "relu", "kernel": 3, "pool": 2, "conv": "full", "stem": 1, "residual": True}


def macs_per_voxel(model, shape) -> float:
    import torch
    from torch import nn

    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            total[0] += out.numel() * m.in_channels // m.groups * math.prod(m.kernel_size)
        elif isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            total[0] += inputs[0].numel() * m.out_channels * math.prod(m.kernel_size)

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in hooks:
        h.remove()
    return total[0] / math.prod(shape)


def matmul_flops(threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 2048**3 / best


def one(name: str, shape, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from mire.nets import count_parameters
    from mire.restore.learned import Restorer

    if name == "peer":
        torch.manual_seed(0)
        r = Restorer(PEER, axes="ZYX")
    else:
        r = Restorer.load(name)
    img = np.random.default_rng(0).random(shape).astype(np.float32)
    probe = (1, 1, 16, 64, 64) if r.axes == "ZYX" else (1, 1, 64, 64)
    macs = macs_per_voxel(r.model.eval(), probe)
    r.predict(img[:8, :64, :64] if r.axes == "ZYX" else img[:2, :64, :64], axes="ZYX")  # warm-up
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    r.predict(img, axes="ZYX")
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"model": name, "axes": r.axes, "parameters": count_parameters(r.model), "mac_per_voxel": macs,
            "seconds": seconds, "voxels_per_s": img.size / seconds, "peak_rss_mb": peak / 1024,
            "rss_increase_mb": (peak - rss0) / 1024, "flops": 2 * macs * img.size / seconds}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="64,512,512")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    if args.one:
        print(json.dumps(one(args.one, shape, args.threads)))
        return
    from mire import models

    names = [n for n in ("fluo3d-neurite-restore", "widefield2d-denoise") if n in models.available()] + ["peer"]
    mm = matmul_flops(args.threads)
    rows = []
    for name in names:
        res = subprocess.run([sys.executable, __file__, "--one", name, "--shape", args.shape,
                              "--threads", str(args.threads)], capture_output=True, text=True, check=True)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"measured {name}", flush=True)
    mm_after = matmul_flops(args.threads)
    mm = max(mm, mm_after)
    peer = rows[-1]
    print(f"\nstack {shape} ({math.prod(shape) / 1e6:.1f} Mvoxel), {args.threads} threads, "
          f"matmul {mm / 1e9:.1f} GFLOP/s (best of before/after)\n")
    head = ("model", "axes", "params", "MAC/voxel", "s", "Mvoxel/s", "x peer", "peak MB", "GFLOP/s", "% matmul")
    print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    for r in rows:
        print(f"| {r['model']} | {r['axes']} | {r['parameters']} | {r['mac_per_voxel']:.0f} | {r['seconds']:.1f} | "
              f"{r['voxels_per_s'] / 1e6:.2f} | {r['voxels_per_s'] / peer['voxels_per_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['flops'] / 1e9:.1f} | {100 * r['flops'] / mm:.0f}% |")


if __name__ == "__main__":
    main()
