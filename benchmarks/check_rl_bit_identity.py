"""Write RL outputs on 13 synthetic cases to an npz, to compare two source trees bit for bit.

Usage: PYTHONPATH=<tree>/src python benchmarks/check_rl_bit_identity.py out.npz  (also writes out_b.npz)
"""
import sys, numpy as np, torch
torch.set_num_threads(1)
from mire.data import neurites
from mire.optics import gaussian_psf, simulate
from mire.restore import richardson_lucy
truth = neurites((128,) * 3, seed=0).astype(np.float64) * 100 + 2
psf = gaussian_psf((2.0, 1.2, 1.2), ndim=3).astype(np.float32)
y = simulate(truth, condition=None, psf=psf, noise="poisson", gain=1.0, seed=0).astype(np.float32)
rng=np.random.default_rng(1); y2=rng.poisson(50, (60,70)).astype(np.float32); p2=gaussian_psf((1.5,1.5),ndim=2).astype(np.float32)
outs={}
for n in (1,2,5): outs[f"3d{n}"]=richardson_lucy(y, psf, n_iter=n)
outs["3dauto"]=richardson_lucy(y, psf)
outs["3d64"]=richardson_lucy(y.astype(np.float64), psf, n_iter=2)
outs["2d2"]=richardson_lucy(y2, p2, n_iter=2); outs["2dauto"]=richardson_lucy(y2, p2)
outs["7x9"]=richardson_lucy(y2[:7,:9], p2, n_iter=3)
np.savez(sys.argv[1], **outs)
o2={}
o2["blk"]=richardson_lucy(y, psf, n_iter=2, block_shape=(64,128,128))
o2["blkauto"]=richardson_lucy(y, psf, block_shape=(64,128,128))
o2["tv"]=richardson_lucy(y2, p2, n_iter=3, tv_weight=0.01)
o2["circ"]=richardson_lucy(y2, p2, n_iter=3, boundary="circular")
o2["zero"]=richardson_lucy(y2, p2, n_iter=3, boundary="zero")
np.savez(sys.argv[1].replace(".npz","_b.npz"), **o2)
