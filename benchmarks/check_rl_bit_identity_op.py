"""Write RL outputs on the DIADEM OP_1..OP_3 design windows (experiments/rl_auto_stop.py's 18 cases) to an npz.

n_iter 2 and the automatic call (hold-out stop + refit) per case, to compare two source trees bit for bit::

    OMP_NUM_THREADS=1 PYTHONPATH=<tree>/src python benchmarks/check_rl_bit_identity_op.py out.npz
    python -c "import numpy as np,sys; a,b=np.load(sys.argv[1]),np.load(sys.argv[2]); \
print(all(np.array_equal(a[k],b[k]) for k in a), len(a))" old.npz new.npz
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
torch.set_num_threads(1)
from rl_auto_stop import diadem_cases  # noqa: E402

from mire.restore import richardson_lucy  # noqa: E402

outs = {}
for i, (name, truth, y, psf) in enumerate(diadem_cases(["OP_1", "OP_2", "OP_3"])):
    y = y.astype(np.float32)
    outs[f"c{i}_n2"] = richardson_lucy(y, psf, n_iter=2)
    outs[f"c{i}_auto"] = richardson_lucy(y, psf)
    print(name, flush=True)
np.savez(sys.argv[1], **outs)
