"""Design probes on neuroproof (design data, issue #17): post-processing variants, ARAND as is vs gamma 0.5 / 2.

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python experiments/em_contrast_probe.py mean_md3 median_md5.4 mean_md5.4 median_md3_sigma2

Uses the affinities cached by em_contrast_diagnosis.py. min_distance 5.4 = 3 x the correlation-length ratio
(7.37 / 4.06), i.e. what min_distance="auto" gives on this cube.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from em_contrast_diagnosis import affinities
from mire.metrics import adapted_rand_error
from mire.segment.pipeline import segment_affinities
affs = {g: affinities(g) for g in (1.0, 0.5, 2.0)}
configs = {"mean_md3": dict(scoring="mean", min_distance=3.0),
           "median_md5.4": dict(scoring="median", min_distance=5.4),
           "mean_md5.4": dict(scoring="mean", min_distance=5.4),
           "median_md3_sigma2": dict(scoring="median", min_distance=3.0, sigma=2.0),
           "mean_md5.4_sigma2": dict(scoring="mean", min_distance=5.4, sigma=2.0),
           "mean_md8": dict(scoring="mean", min_distance=8.0)}
for name in sys.argv[1:]:
    kw = configs[name]; t = time.time(); segs = {}; thr = {}
    for g in affs:
        s, f, r = segment_affinities(affs[g], thresholds="auto", seed_threshold="auto", return_result=True, **kw)
        segs[g] = s; thr[g] = r.thresholds[0]
    out = {"config": name, "thr": thr, "segments": {g: int(len(np.unique(s))) for g, s in segs.items()},
           "arand_0.5": float(adapted_rand_error(segs[1.0], segs[0.5])[0]), "arand_2": float(adapted_rand_error(segs[1.0], segs[2.0])[0]),
           "s": round(time.time() - t)}
    print(json.dumps(out), flush=True)
