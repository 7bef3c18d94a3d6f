"""Gate for a tile-sample rule of lower draw-to-draw variance (issue #20, helper task 5).

Main's default weight (SURE on a stratified tile sample, src/mire/restore/_weight.py) moves with the
tile-sample seed (experiments/results/tv_cv_route_b.md: OP_2 PG-B2 seed 1 loses 0.89 dB). This runs,
for the 10 3D design-half cases of experiments/tv_weight_stress.py and FRESH tile seeds 3, 4, 5, the
default weight search of whatever ``mire`` is on PYTHONPATH (main: ``git archive 00dc3d7 src`` in
/tmp/tvmain; candidate: this branch) and the solve at that weight (``bregman=0``, as the default runs
for these PSFs), and scores it against the best grid PSNR recorded for main's rule in
tv_weight_stress.jsonl (raised to any PSNR seen in this gate's rows of that case).

Gate (written and committed before any run of it):
  candidate's worst loss vs best grid  >  main's worst loss (strictly better),
  candidate's mean loss vs best grid   >= main's mean loss,
  #(case, seed) pairs losing > 0.3 dB: candidate <= main.

    cd experiments && PYTHONPATH=/tmp/tvmain/src OMP_NUM_THREADS=1 nice -n 8 python tv_tile_seed_gate.py --label main
    cd experiments && PYTHONPATH=../src OMP_NUM_THREADS=1 nice -n 8 python tv_tile_seed_gate.py --label candidate
    cd experiments && python tv_tile_seed_gate.py --table
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tv_weight_stress import OUT, cases, records, score

PATH = OUT / "tv_tile_seed_gate.jsonl"
SEEDS = (3, 4, 5)


def run(label: str, half: str, seeds) -> None:
    from mire.restore import choose_tv_weight, tv_deconvolve
    from mire.restore._common import intensity_scale

    for name, make in cases(half):
        truth, y, psf, kind = make()
        if y.ndim != 3:
            continue  # W2S: delta PSF, 2D
        y = y.astype(np.float32)
        img_n = y / intensity_scale(y)
        for seed in seeds:
            t0 = time.perf_counter()
            w = float(choose_tv_weight(img_n, psf, method="auto", seed=seed))
            sec = time.perf_counter() - t0
            p, s = score(truth, tv_deconvolve(y, psf, weight=w, bregman=0), kind)
            r = {"label": label, "half": half, "case": name, "seed": seed, "weight": w, "psnr": p, "ssim": s,
                 "search_seconds": sec}
            with open(PATH, "a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"| {label} | {name} | {seed} | {w:.4g} | {p:.2f} / {s:.3f} | {sec:.0f} s |", flush=True)


def table(half: str, seeds) -> None:
    rec = records(half)
    rows = [json.loads(l) for l in PATH.read_text().splitlines()]
    rows = [r for r in rows if r["half"] == half and r["seed"] in seeds]
    best = {}
    for r in rows:
        best[r["case"]] = max(best.get(r["case"], rec[r["case"]]["best_psnr"]), r["psnr"])
    stats = {}
    for label in sorted({r["label"] for r in rows}):
        mine = {(r["case"], r["seed"]): r for r in rows if r["label"] == label}  # last row of a pair wins
        loss = np.array([r["psnr"] - best[r["case"]] for r in mine.values()])
        ds = np.array([r["ssim"] - rec[r["case"]]["best_ssim"] for r in mine.values()])
        stats[label] = (len(loss), loss.min(), loss.mean(), int((loss < -0.3).sum()), ds.min())
        print(f"{label}: n {len(loss)}, loss vs best grid worst {loss.min():+.3f} dB, mean {loss.mean():+.3f} dB, "
              f"pairs < -0.3 dB: {int((loss < -0.3).sum())}; SSIM vs best-grid weight's worst {ds.min():+.4f}")
        for (c, sd), r in sorted(mine.items()):
            print(f"  | {c} | {sd} | {r['weight']:.4g} | {r['psnr'] - best[c]:+.3f} | {r['ssim']:.3f} |")
    if half == "design" and {"main", "candidate"} <= set(stats):
        m, c = stats["main"], stats["candidate"]
        ok = c[1] > m[1] and c[2] >= m[2] and c[3] <= m[3]
        print("gate:", "PASS" if ok else "FAIL")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label")
    ap.add_argument("--half", default="design", choices=["design", "report"])
    ap.add_argument("--seeds", default=None, help="comma-separated tile seeds (default 3,4,5 design, 0,1,2 report)")
    ap.add_argument("--table", action="store_true")
    a = ap.parse_args()
    seeds = tuple(int(s) for s in a.seeds.split(",")) if a.seeds else (SEEDS if a.half == "design" else (0, 1, 2))
    if a.table:
        table(a.half, seeds)
    else:
        run(a.label, a.half, seeds)


if __name__ == "__main__":
    main()
