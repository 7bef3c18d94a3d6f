"""Training and applying networks: streaming patch samplers, the training loop, tiled prediction.

Task-agnostic: the samplers produce ``(input, target, mask)`` batches with any channels, the
loss is pluggable and honours masks, so the same loop trains restoration, boundary or affinity
networks.

Examples
--------
>>> import numpy as np
>>> from mire.nets import build_model
>>> from mire.learn import pairs_sampler, train, predict_tiled
>>> rng = np.random.default_rng(0)
>>> clean = rng.random((64, 64)).astype(np.float32)
>>> model = build_model("tiny", ndim=2)
>>> history = train(model, pairs_sampler(clean + 0.3 * rng.random((64, 64)), clean, patch=(32, 32)),
...                 epochs=1, steps_per_epoch=2, progress=False)
>>> predict_tiled(model, clean[None], tile=32, overlap=8).shape
(1, 64, 64)
"""

from mire.learn.checkpoint import load_checkpoint, load_tensors, read_json, save_checkpoint, save_tensors, write_json
from mire.learn.examples import (SimulatedExamples, affine_aligned_range, blind_spot_mask, noise2void_sampler, pairs_sampler,
                                 simulate_sampler)
from mire.learn.losses import pixel_loss
from mire.learn.normalize import denormalize, normalize, percentile_range
from mire.learn.sampler import PatchSampler, augment, open_array
from mire.learn.tiling import predict_tiled
from mire.learn.loop import evaluate, train

__all__ = [
    "PatchSampler", "pairs_sampler", "simulate_sampler", "noise2void_sampler", "blind_spot_mask",
    "SimulatedExamples", "affine_aligned_range", "augment", "open_array", "train", "evaluate", "predict_tiled", "pixel_loss",
    "percentile_range", "normalize", "denormalize", "save_checkpoint", "load_checkpoint",
    "save_tensors", "load_tensors", "read_json", "write_json",
]
