"""Gate of the half-resolution first step (``rl_half_res_gate.md``): design data only, reference vs candidate.

Per case, the RL default call ``richardson_lucy(y, psf)`` (automatic stop + refit) with
``HALF_RES_FIRST_STEP`` off (reference, main's path) and on (candidate): PSNR and SSIM against the
truth (``data_range = truth.max()``), plus the n_iter=2 call's PSNR for information. Cases: the 18
DIADEM OP_1..OP_3 windows of ``experiments/rl_auto_stop.py`` and the bench's synthetic stack (whole
volume and 16 voxels in). Held-out OP_4..OP_6 are not read.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/gate_rl_half_res.py [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
from rl_auto_stop import diadem_cases  # noqa: E402

import importlib  # noqa: E402
from mire.metrics import psnr, ssim  # noqa: E402

# the module, not the function mire.restore re-exports under the same name
rl_mod = importlib.import_module("mire.restore.richardson_lucy")


def synthetic_cases():
    """The bench's stack (``bench_rl_time_to_quality.py`` defaults), scored whole and 16 voxels in."""
    from mire.data import neurites
    from mire.optics import gaussian_psf, simulate

    truth = neurites((128,) * 3, seed=0).astype(np.float64) * 100 + 2
    psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3).astype(np.float32)
    y = simulate(truth, condition=None, psf=psf, noise="poisson", gain=1.0, seed=0).astype(np.float32)
    yield "synthetic bench stack, whole", truth, y, psf, 0
    yield "synthetic bench stack, 16 in", truth, y, psf, 16


def run(y, psf, truth, margin, half):
    rl_mod.HALF_RES_FIRST_STEP = half
    inner = tuple(slice(margin, n - margin) for n in truth.shape)
    peak = float(truth.max())
    out, info = rl_mod.richardson_lucy(y, psf, return_info=True)
    two = rl_mod.richardson_lucy(y, psf, n_iter=2)
    return {"psnr": psnr(truth[inner], out[inner], data_range=peak),
            "ssim": ssim(truth[inner], out[inner], data_range=peak),
            "n_iter": info["n_iter"], "psnr_n2": psnr(truth[inner], two[inner], data_range=peak)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cases = [(n, t, y.astype(np.float32), p, 0) for n, t, y, p in diadem_cases(["OP_1", "OP_2", "OP_3"])]
    cases += list(synthetic_cases())
    rows, ok = [], True
    print("| case | stop ref / cand | PSNR ref | PSNR cand | dPSNR | SSIM ref | SSIM cand | dSSIM | n_iter 2 PSNR ref / cand | pass |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for name, truth, y, psf, margin in cases:
        ref, cand = run(y, psf, truth, margin, False), run(y, psf, truth, margin, True)
        dp, ds = cand["psnr"] - ref["psnr"], cand["ssim"] - ref["ssim"]
        good = dp >= -0.02 and ds >= -0.001
        ok &= good
        rows.append({"case": name, "ref": ref, "cand": cand, "pass": good})
        print(f"| {name} | {ref['n_iter']} / {cand['n_iter']} | {ref['psnr']:.3f} | {cand['psnr']:.3f} | {dp:+.3f} "
              f"| {ref['ssim']:.4f} | {cand['ssim']:.4f} | {ds:+.4f} | {ref['psnr_n2']:.2f} / {cand['psnr_n2']:.2f} "
              f"| {'yes' if good else 'NO'} |", flush=True)
    print(f"quality criterion: {'PASS' if ok else 'FAIL'} on {len(rows)} design cases "
          f"(worst dPSNR {min(r['cand']['psnr'] - r['ref']['psnr'] for r in rows):+.3f} dB, "
          f"worst dSSIM {min(r['cand']['ssim'] - r['ref']['ssim'] for r in rows):+.4f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "pass": bool(ok)}, indent=1))


if __name__ == "__main__":
    main()
