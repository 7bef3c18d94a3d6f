"""The final solve's stop rule (issue #20, time to quality): PSNR along the iterations of the default call's
final solve, and the change measures a stop rule could read, on the design half of the stress set.

For each design case of experiments/tv_weight_stress.py the final solve is run at the recorded default weight
(rule ``tiles-sure-v2-margin1r``) for ``--n-iter`` iterations with no stop, and at every iteration we log the
PSNR (against the truth, as the stress set scores it), the relative change ``||dx|| / ||x||`` (the present
stop rule, tol 5e-3) and the RMS / max change of ``x`` over the observed window in units of the noise SD of the
noise model fitted to the image (the RMS of its SD over the image). Records: experiments/results/tv_final_stop.jsonl.

    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/tv_final_stop.py [--only SUBSTR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tv_weight_stress import OUT, cases, records, score  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=None)
    ap.add_argument("--n-iter", type=int, default=70)
    ap.add_argument("--part", default="0/1", help="k/n: run every n-th case from the k-th (parallel runs)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from scipy import ndimage

    from mire.restore._common import check_inputs, estimate_noise_model, intensity_scale, normalize_spacing
    from mire.restore.tv import _admm, _feasible, _init_state, _make_problem

    weights = {name: r["default_weight"] for name, r in records("design").items()}
    out_path = OUT / "tv_final_stop.jsonl"
    k, n = map(int, a.part.split("/"))
    for i, (name, make) in enumerate(cases("design")):
        if (a.only and a.only not in name) or i % n != k:
            continue
        truth, y, psf, kind = make()
        y = y.astype(np.float32)
        img, kernel = check_inputs(y, psf)
        if min(kernel.shape) == 1:
            kernel = np.pad(kernel, [(1, 1) if n == 1 else (0, 0) for n in kernel.shape])
        scale = intensity_scale(img)
        img_n = img.astype(np.float32) / scale
        nm = estimate_noise_model(img_n)
        sd_rms = float(np.sqrt(nm.variance(ndimage.gaussian_filter(img_n.astype(np.float64), 1.0)).mean()))
        p = _make_problem(img_n, kernel, spacing=normalize_spacing(None, img.ndim), data_term="l2",
                          positivity=True, dtype=torch.float32, device=torch.device("cpu"))
        w = weights[name]
        st = _init_state(p, w)
        win = p.domain.window
        log = {"psnr": [], "rel": [], "rms": [], "max": []}
        prev = [_feasible(p, st.x)[win].clone()]

        class Probe:
            def advance(self, n):
                x = st.x
                xf = _feasible(p, x)[win]
                d = xf - prev[0]
                log["rms"].append(float(d.pow(2).mean().sqrt()) / sd_rms)
                log["max"].append(float(d.abs().max()) / sd_rms)
                prev[0] = xf.clone()
                log["psnr"].append(score(truth, xf.numpy().astype(np.float64) * scale, kind)[0])

        _, info = _admm(p, w, n_iter=a.n_iter, tol=0.0, state=st, objective_every=0, log_change=True,
                        progress=Probe())
        log["rel"] = info["change"]
        rec = {"case": name, "weight": w, "sd_rms": sd_rms, **log}
        with open(out_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        cur = next(i for i, c in enumerate(log["rel"]) if i + 1 > 5 and c < 5e-3)
        print(f"{name}: sd {sd_rms:.4g}, present stop at {cur + 1}: {log['psnr'][cur]:.3f} dB; "
              f"at 15/20/30/{a.n_iter}: " + " ".join(f"{log['psnr'][k - 1]:.3f}" for k in (15, 20, 30, a.n_iter)),
              flush=True)


if __name__ == "__main__":
    main()
