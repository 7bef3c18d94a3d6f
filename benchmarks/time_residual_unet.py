"""Seconds per training step: the plain vs the residual "fast" U-Net (3 affinities), one run, alternating.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/time_residual_unet.py --reps 30

One Adam step (forward, BCE, backward, update) on a random 4 x 1 x 16 x 64 x 64 batch (train_em.py's
gala batch), one torch thread. The two nets take turns step by step, so load changes hit both;
the ratio of the medians is the figure (absolute times depend on the machine's load).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from mire.nets import PRESETS, build_model, count_parameters

    torch.manual_seed(0)
    x = torch.rand(4, 1, 16, 64, 64)
    y = (torch.rand(4, 3, 16, 64, 64) > 0.5).float()
    nets = {b: build_model({**PRESETS["fast"], "block": b, "out_channels": 3, "residual": False}, ndim=3)
            for b in ("plain", "residual")}
    opts = {b: torch.optim.Adam(n.parameters(), lr=1e-3) for b, n in nets.items()}
    times = {b: [] for b in nets}
    for rep in range(args.reps + 2):  # 2 warm-up steps each
        for b, net in nets.items():
            t = time.perf_counter()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
            opts[b].zero_grad()
            loss.backward()
            opts[b].step()
            if rep >= 2:
                times[b].append(time.perf_counter() - t)
    med = {b: statistics.median(v) for b, v in times.items()}
    for b in nets:
        print(f"{b:8s} {count_parameters(nets[b]):7d} parameters  median {med[b]:.3f} s/step")
    print(f"residual / plain: {med['residual'] / med['plain']:.2f}")


if __name__ == "__main__":
    main()
