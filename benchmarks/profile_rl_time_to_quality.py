"""What caps Richardson-Lucy's time-to-quality ratio: CPU time of the FFTs against the whole call.

On the bench's stack (``bench_rl_time_to_quality.py``: 128^3 neurites, 100 photons + 2, PSF sigma
2.0/1.2/1.2), scikit-image needs 3 iterations to its (whole-volume) peak: 6 ``fftconvolve`` calls,
each 2 r2c + 1 c2r on 144^3. mire's default needs 2: three convolutions (the first iteration's
``H x`` of the flat start is known without a transform), i.e. 3 r2c + 3 c2r on 144x140x140, plus
the OTF (pruned, about a third of an r2c). Prints process CPU times (medians of 5; they are less
moved by other jobs than wall times) and the ratios: FFTs against FFTs, scikit-image's call against
mire's FFTs alone (the most any overhead cut could give) and the calls themselves.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/profile_rl_time_to_quality.py
"""

from __future__ import annotations

import time

import numpy as np


def med(fn, n=5):
    ts = []
    for _ in range(n):
        t = time.process_time()
        fn()
        ts.append(time.process_time() - t)
    return float(np.median(ts)) * 1000


def main() -> None:
    import scipy.fft
    import torch
    from skimage.restoration import richardson_lucy as sk_rl

    from mire.data import neurites
    from mire.optics import gaussian_psf, simulate
    from mire.restore import richardson_lucy

    torch.set_num_threads(1)
    truth = neurites((128,) * 3, seed=0).astype(np.float64) * 100 + 2
    psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3).astype(np.float32)
    y = simulate(truth, condition=None, psf=psf, noise="poisson", gain=1.0, seed=0).astype(np.float32)
    a = np.random.rand(144, 140, 140).astype(np.float32)
    b = np.random.rand(144, 144, 144).astype(np.float32)
    fa, fb = scipy.fft.rfftn(a), scipy.fft.rfftn(b)
    r = {
        "r2c 144x140x140": med(lambda: scipy.fft.rfftn(a, workers=1)),
        "c2r 144x140x140": med(lambda: scipy.fft.irfftn(fa, s=a.shape, workers=1)),
        "r2c 144^3": med(lambda: scipy.fft.rfftn(b, workers=1)),
        "c2r 144^3": med(lambda: scipy.fft.irfftn(fb, s=b.shape, workers=1)),
        "scikit-image, 3 iterations": med(lambda: sk_rl(y, psf, num_iter=3, clip=False)),
        "mire default, 2 iterations": med(lambda: richardson_lucy(y, psf, n_iter=2)),
    }
    sk_fft = 12 * r["r2c 144^3"] + 6 * r["c2r 144^3"]
    mire_fft = (3 + 1 / 3) * r["r2c 144x140x140"] + 3 * r["c2r 144x140x140"]
    for k, v in r.items():
        print(f"{k:32s} {v:7.1f} ms CPU")
    print(f"{'scikit-image FFTs (12 r2c + 6 c2r)':32s} {sk_fft:7.1f} ms")
    print(f"{'mire FFTs (3 1/3 r2c + 3 c2r)':32s} {mire_fft:7.1f} ms")
    sk, mi = r["scikit-image, 3 iterations"], r["mire default, 2 iterations"]
    print(f"ratios: FFTs/FFTs {sk_fft / mire_fft:.2f}x; scikit-image call / mire FFTs alone {sk / mire_fft:.2f}x; "
          f"calls {sk / mi:.2f}x; mire outside its FFTs {mi - mire_fft:.0f} ms "
          f"(3x would need <= {sk / 3 - mire_fft:.0f} ms)")


if __name__ == "__main__":
    main()
