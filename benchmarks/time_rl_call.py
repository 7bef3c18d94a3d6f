"""CPU time of one RL call on the time-to-quality bench stack: scikit-image 3 iterations vs mire n_iter=2.

Optional arguments ``SK_ITER MIRE_ITER`` (e.g. ``6 3``: the counts of the bench's interior scoring; ``3 auto``: the
fully automatic call, hold-out stop and refit, median of 3).

Run it alternately with two source trees (PYTHONPATH=<tree>/src) to compare library versions back to back::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/time_rl_call.py
"""
import sys
import numpy as np, torch, time
torch.set_num_threads(1)
from skimage.restoration import richardson_lucy as sk_rl
from mire.data import neurites
from mire.optics import gaussian_psf, simulate
from mire.restore import richardson_lucy
truth = neurites((128,) * 3, seed=0).astype(np.float64) * 100 + 2
psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3).astype(np.float32)
y = simulate(truth, condition=None, psf=psf, noise="poisson", gain=1.0, seed=0).astype(np.float32)
def med(f, n=5):
    ts=[]
    for _ in range(n):
        t=time.process_time(); f(); ts.append(time.process_time()-t)
    return 1000*np.median(ts)
k_sk, k_mi = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (3, "2")
k_mi = k_mi if k_mi == "auto" else int(k_mi)
sk = med(lambda: sk_rl(y, psf, num_iter=k_sk, clip=False))
mi = med(lambda: richardson_lucy(y, psf, n_iter=k_mi), n=3 if k_mi == "auto" else 5)
print(f"sk{k_sk} {sk:.1f} mire{k_mi} {mi:.1f} ratio {sk/mi:.3f}")
