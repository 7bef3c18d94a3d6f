"""Gate for restarting SURE's probe solve from the data solve's state (issue #20; ``_weight.PROBE_RESTART``,
gate written in experiments/results/tv_probe_restart_gate.md before the run; the script is tv_cv_gate.py's): the default ``tv_deconvolve(y, psf)`` on the stress-set
cases of experiments/tv_weight_stress.py, against the records of main's rule (``tiles-sure-v2-margin1r``,
the same cases, same noise): its default PSNR / SSIM and its best grid PSNR (the oracle over a
geometric grid around main's weight).

Gate (design half only): no case below main's PSNR by > 0.05 dB, mean not below main's by > 0.01 dB, SSIM not below
main's by > 0.003 on any case, default minus best grid within 0.3 dB on every case.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_probe_restart_gate.py --half design --k 10
    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_probe_restart_gate.py --half report --k 10
"""

from __future__ import annotations

import argparse

from tv_cv_gate import run_gate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=["design", "report"], required=True)
    ap.add_argument("--k", type=int, required=True, help="probe / continuation iterations (PROBE_RESTART)")
    a = ap.parse_args()
    import torch

    import mire.restore._weight as W

    torch.set_num_threads(1)
    W.PROBE_RESTART = a.k
    run_gate(a.half, f"tv_probe_restart_gate_{a.half}_k{a.k}.jsonl", mean_ok=lambda m: m >= -0.01)


if __name__ == "__main__":
    main()
