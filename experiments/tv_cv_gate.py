"""Gate for the one-solve-per-trial weight rule (issue #20, route b; plan and gate in
experiments/results/tv_search_2x_plan.md): the default ``tv_deconvolve(y, psf)`` on the stress-set
cases of experiments/tv_weight_stress.py, against the records of main's rule (``tiles-sure-v2-margin1r``,
the same cases, same noise): its default PSNR / SSIM and its best grid PSNR (the oracle over a
geometric grid around main's weight).

Gate (design half only): no case below main's PSNR by > 0.05 dB, mean within 0.01 dB, SSIM not below
main's by > 0.003 on any case, default minus best grid within 0.3 dB on every case.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_cv_gate.py --half design
    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 8 python experiments/tv_cv_gate.py --half report
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tv_weight_stress import OUT, cases, records, score


def run_gate(half, jsonl, *, mean_ok):
    """Run the default ``tv_deconvolve`` on every case of ``half`` against main's records, append each row to
    ``OUT / jsonl``, print the table and, on the design half, the gate (``mean_ok``: the test on the mean
    PSNR change; the other bounds are shared)."""
    from mire.restore import tv_deconvolve

    rec = records(half)
    path = OUT / jsonl
    rows = []
    for name, make in cases(half):
        truth, y, psf, kind = make()
        y = y.astype(np.float32)
        t0 = time.perf_counter()
        out, info = tv_deconvolve(y, psf, return_info=True)
        sec = time.perf_counter() - t0
        p, s = score(truth, out, kind)
        m = rec[name]
        r = {"case": name, "weight": info["weight"], "bregman": info["bregman"], "psnr": p, "ssim": s, "seconds": sec,
             "main_weight": m["default_weight"], "main_psnr": m["default_psnr"], "main_ssim": m["default_ssim"],
             "main_seconds": m["seconds"], "best_psnr": max(m["best_psnr"], p), "best_ssim": m["best_ssim"]}
        rows.append(r)
        with open(path, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"| {name} | {r['main_weight']:.4g} | {r['weight']:.4g} | {r['main_psnr']:.2f} / {r['main_ssim']:.3f} |"
              f" {p:.2f} / {s:.3f} | {p - r['main_psnr']:+.3f} | {s - r['main_ssim']:+.4f} | {p - r['best_psnr']:+.2f} |"
              f" {s - r['best_ssim']:+.3f} | {sec:.0f} |", flush=True)
    d = np.array([r["psnr"] - r["main_psnr"] for r in rows])
    ds = np.array([r["ssim"] - r["main_ssim"] for r in rows])
    db = np.array([r["psnr"] - r["best_psnr"] for r in rows])
    dbs = np.array([r["ssim"] - r["best_ssim"] for r in rows])
    print(f"\n{len(rows)} cases: new - main PSNR mean {d.mean():+.4f} dB, worst {d.min():+.3f} dB; SSIM worst {ds.min():+.4f};"
          f" new - best grid worst {db.min():+.2f} dB, mean {db.mean():+.3f} dB; SSIM vs best grid worst {dbs.min():+.3f}")
    if half == "design":
        ok = d.min() >= -0.05 and mean_ok(d.mean()) and ds.min() >= -0.003 and db.min() >= -0.3
        print("gate:", "PASS" if ok else "FAIL")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--half", choices=["design", "report"], required=True)
    a = ap.parse_args()
    run_gate(a.half, f"tv_cv_gate_{a.half}.jsonl", mean_ok=lambda m: abs(m) <= 0.01)


if __name__ == "__main__":
    main()
