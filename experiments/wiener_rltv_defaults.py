"""Wiener's and RL-TV's automatic parameters against the best of a grid, on stacks they were not tuned on.

Wiener: the default (the Wiener filter with estimated noise power and object spectrum) against the
best constant balance of a grid (oracle) and GCV (the previous default). RL-TV:
``richardson_lucy(tv_weight="auto")`` (weight and stop by the hold-out loss) against the best weight
of a grid, each weight stopped by the hold-out rule too, and plain RL with the automatic stop.

Cases: the ``mire demo`` neurites (24 x 96 x 96, N2-B2 and N3-B3), and the report half of
experiments/rl_auto_stop.py (DIADEM OP_4..OP_6 brightest 128 x 128 window, whole Z, N2-B2 and N3-B3;
flowdec Purkinje with the measured PSF; W2S 2D). Nothing here was tuned on these cases: the rules were
designed on the demo neurites and OP_1..OP_3.

Usage::

    nice -n 10 python experiments/wiener_rltv_defaults.py [--quick]
    python experiments/wiener_rltv_defaults.py --table     # results/wiener_rltv_defaults.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BALANCES = [0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
TV_WEIGHTS = [0.005, 0.01, 0.02, 0.04]


def cases(quick):
    import rl_auto_stop as E

    from mire.data import neurites
    from mire.optics import gaussian_psf, simulate
    from mire.optics.simulate import parse_condition

    for cond in ("N2-B2", "N3-B3"):
        clean = neurites((24, 96, 96), seed=0)
        yield f"demo neurites {cond}", clean, simulate(clean, condition=cond, seed=0), \
            gaussian_psf(parse_condition(cond)[0], ndim=3)
    for name, truth, y, psf in E.diadem_cases(["OP_4", "OP_5", "OP_6"]):
        if "bright" in name and " PG" not in name:
            yield name, truth, y, psf
    if not quick:
        yield from E.extra_cases()


def table() -> str:
    recs = [json.loads(v) for v in (HERE / "results" / "wiener_rltv_defaults.jsonl").read_text().splitlines() if v]
    lines = ["| case | Wiener default | best constant (balance) | GCV | RL auto | RL-TV auto (weight, iter.) "
             "| RL-TV best grid (weight) | RL-TV auto - best |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        lines.append(f"| {r['case']} | {r['wiener_default']:.2f} | {r['wiener_best_constant']:.2f} "
                     f"({r['wiener_best_balance']:g}) | {r['wiener_gcv']:.2f} | {r['rl_auto']:.2f} | {r['rltv_auto']:.2f} "
                     f"({r['rltv_auto_weight']:.3g}, {r['rltv_auto_iter']}) | {r['rltv_best_grid']:.2f} "
                     f"({r['rltv_best_weight']:g}) | {r['rltv_auto'] - r['rltv_best_grid']:+.2f} |")
    return "\n".join(lines)


def main(argv=None):
    import sys

    sys.path.insert(0, str(HERE))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip flowdec and W2S")
    ap.add_argument("--table", action="store_true", help="write results/wiener_rltv_defaults.md from the saved runs")
    args = ap.parse_args(argv)
    if args.table:
        text = table()
        (HERE / "results" / "wiener_rltv_defaults.md").write_text(
            "# Wiener and RL-TV defaults vs the best of a grid (experiments/wiener_rltv_defaults.py), PSNR dB\n\n"
            + text + "\n")
        print(text)
        return
    import torch

    from mire.metrics import psnr
    from mire.restore import richardson_lucy, wiener

    torch.set_num_threads(1)
    out_path = HERE / "results" / "wiener_rltv_defaults.jsonl"
    for name, truth, y, psf in cases(args.quick):
        peak = float(truth.max())
        P = lambda r: psnr(truth, r, data_range=peak)  # noqa: E731
        y = y.astype(np.float32)
        rec = {"case": name}
        t = time.perf_counter()
        rec["wiener_default"] = P(wiener(y, psf))
        rec["wiener_seconds"] = time.perf_counter() - t
        rec["wiener_gcv"] = P(wiener(y, psf, balance="gcv"))
        grid = {b: P(wiener(y, psf, balance=b)) for b in BALANCES}
        rec["wiener_best_constant"] = max(grid.values())
        rec["wiener_best_balance"] = max(grid, key=grid.get)
        rec["rl_auto"] = P(richardson_lucy(y, psf))
        t = time.perf_counter()
        out, info = richardson_lucy(y, psf, tv_weight="auto", return_info=True)
        rec["rltv_seconds"] = time.perf_counter() - t
        rec["rltv_auto"], rec["rltv_auto_weight"], rec["rltv_auto_iter"] = P(out), info["tv_weight"], info["n_iter"]
        tv = {w: P(richardson_lucy(y, psf, tv_weight=w)) for w in TV_WEIGHTS}
        rec["rltv_best_grid"] = max(tv.values())
        rec["rltv_best_weight"] = max(tv, key=tv.get)
        print(f"{name:40s} Wiener {rec['wiener_default']:.2f} (best const {rec['wiener_best_constant']:.2f} @ "
              f"{rec['wiener_best_balance']:g}, GCV {rec['wiener_gcv']:.2f}) | RL {rec['rl_auto']:.2f} | RL-TV auto "
              f"{rec['rltv_auto']:.2f} w={rec['rltv_auto_weight']:.3g} n={rec['rltv_auto_iter']} (best grid "
              f"{rec['rltv_best_grid']:.2f} @ {rec['rltv_best_weight']:g})", flush=True)
        with open(out_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
