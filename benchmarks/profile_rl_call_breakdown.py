"""cProfile breakdown of mire's 2-iteration RL call on the bench stack (128^3 neurites, Poisson), 1 thread.

Usage: OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/profile_rl_call_breakdown.py
"""
import cProfile, pstats, numpy as np, torch, time
torch.set_num_threads(1)
from mire.data import neurites
from mire.optics import gaussian_psf, simulate
from mire.restore import richardson_lucy
truth = neurites((128,) * 3, seed=0).astype(np.float64) * 100 + 2
psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3).astype(np.float32)
y = simulate(truth, condition=None, psf=psf, noise="poisson", gain=1.0, seed=0).astype(np.float32)
richardson_lucy(y, psf, n_iter=2)
ts=[]
for _ in range(5):
    t=time.process_time(); richardson_lucy(y, psf, n_iter=2); ts.append(time.process_time()-t)
print("call ms", np.median(ts)*1000)
pr=cProfile.Profile(); pr.enable()
for _ in range(3): richardson_lucy(y, psf, n_iter=2)
pr.disable()
pstats.Stats(pr).sort_stats("cumtime").print_stats(30)
