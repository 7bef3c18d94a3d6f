"""Self-supervised pretraining on unlabeled images: masked-block reconstruction.

A connectomics lab has far more raw EM than ground truth. The pretext task here is the 3D
analogue of masked-image modelling (He et al. 2022) / blind-spot training (Krull et al. 2019),
on blocks rather than single voxels: random cubes covering a fraction of the patch are hidden
(replaced by noise that carries no information about them) and the network reconstructs the
clean patch. A single hidden voxel can be filled in from its neighbours by smoothing; a hidden
4^3 block that cuts a membrane can only be filled in by continuing the membrane, which is what
a boundary / affinity network must see. The input may also be corrupted (``corrupt``: blur,
lost resolution, noise, the changes between microscopes) while the target stays clean, so the
features are learned to be the same under those changes.

The pretext network is the same :class:`mire.nets.UNet` as the downstream one with one output
channel; :func:`mire.nets.transfer_body` copies everything but its 1x1 head into an affinity
or boundary network. Checkpoints are ``<stem>.safetensors`` + ``<stem>.json`` (format
``"mire-pretext"``), written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mire.learn.normalize import PERCENTILES
from mire.learn.sampler import PatchSampler

__all__ = ["block_mask", "mask_blocks", "masked_reconstruction_sampler", "pretrain", "save_pretext",
           "load_pretext", "FORMAT"]

FORMAT = "mire-pretext"
FORMAT_VERSION = 1


def block_mask(shape, rng, *, fraction: float = 0.25, block: int = 4) -> np.ndarray:
    """A boolean mask of random cubes (edge ``block``) that cover about ``fraction`` of ``shape``.

    The patch is cut into a grid of ``block``-sized cells, offset at random, and a ``fraction``
    of the cells is drawn without replacement (cells cut by the border count in part), so the
    covered fraction is exact up to the border cells.

    Examples
    --------
    >>> m = block_mask((16, 16, 16), np.random.default_rng(0), fraction=0.25, block=4)
    >>> m.dtype, bool(0.2 < m.mean() < 0.3)
    (dtype('bool'), True)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    shape = tuple(int(s) for s in shape)
    shift = [int(rng.integers(block)) for _ in shape]
    n_cells = [-(-(s + o) // block) for s, o in zip(shape, shift)]
    cells = np.zeros(int(np.prod(n_cells)), bool)
    cells[rng.choice(cells.size, size=max(1, int(round(fraction * cells.size))), replace=False)] = True
    cells = cells.reshape(n_cells)
    for ax in range(len(shape)):
        cells = np.repeat(cells, block, axis=ax)
    return cells[tuple(slice(o, o + s) for o, s in zip(shift, shape))].copy()


def mask_blocks(image: np.ndarray, mask: np.ndarray, rng) -> np.ndarray:
    """``image`` with the voxels of ``mask`` replaced by Gaussian noise of the *visible* voxels'
    mean and SD: the hidden values cannot be read from the input (a blind spot), and the noise
    keeps the input's statistics, so the network cannot spot the blocks by a constant value."""
    out = np.array(image, dtype=np.float32, copy=True)
    visible = out[~mask]
    mu, sd = (float(visible.mean()), float(visible.std())) if visible.size else (0.0, 1.0)
    out[mask] = rng.normal(mu, sd, int(mask.sum())).astype(np.float32)
    return out


def masked_reconstruction_sampler(images, *, patch, fraction: float = 0.25, block: int = 4,
                                  visible_weight: float = 0.1, corrupt=None, seed: int = 0,
                                  augment: bool = True, normalize=True, percentiles=PERCENTILES):
    """Masked-block reconstruction patches from unlabeled images (a :class:`PatchSampler`).

    Input: the patch, optionally corrupted (``corrupt(patch, rng) -> patch``), with random cubes
    hidden (:func:`block_mask`, :func:`mask_blocks`); target: the clean patch; loss weights
    (the sampler's mask): 1 on hidden voxels, ``visible_weight`` on the others (with a corrupted
    input those too are a restoration target; 0 makes it a pure inpainting task).

    Parameters
    ----------
    images : array-like or path, or list of them
        Unlabeled images (each normalized by its own ``percentiles`` unless ``normalize`` says
        otherwise, as :class:`PatchSampler`).
    patch : tuple of int
    fraction, block : float, int
        Hidden fraction of each patch and the cube edge (see :func:`block_mask`).
    visible_weight : float
    corrupt : callable, optional
        Applied to the clean patch before masking, e.g. a microscope change.
    seed, augment, normalize, percentiles
        See :class:`PatchSampler`.

    Examples
    --------
    >>> img = np.random.default_rng(0).random((16, 32, 32))
    >>> x, y, w = masked_reconstruction_sampler(img, patch=(8, 16, 16)).batch(0, batch_size=2)
    >>> tuple(x.shape), round(float((w == 1).float().mean()), 1)
    ((2, 1, 8, 16, 16), 0.2)
    """
    if visible_weight < 0:
        raise ValueError(f"visible_weight must be >= 0, got {visible_weight}")
    images = list(images) if isinstance(images, (list, tuple)) else [images]

    def make(crops, rng, group_index):
        clean = crops[0].astype(np.float32)
        x = clean if corrupt is None else np.asarray(corrupt(clean, rng), np.float32)
        hidden = block_mask(clean.shape, rng, fraction=fraction, block=block)
        x = mask_blocks(x, hidden, rng)
        weight = np.where(hidden, 1.0, visible_weight).astype(np.float32)
        return x[None], clean[None], weight[None]

    return PatchSampler([(a,) for a in images], patch=patch, make_example=make, seed=seed, augment=augment,
                        normalize=normalize, percentiles=percentiles)


def pretrain(model, images, *, patch, fraction: float = 0.25, block: int = 4, visible_weight: float = 0.1,
             corrupt=None, epochs: int = 15, steps_per_epoch: int = 100, batch_size: int = 4, lr: float = 1e-3,
             lr_decay: float = 0.95, seed: int = 0, **train_kw) -> dict:
    """Pretrain ``model`` (one input and one output channel) by masked-block reconstruction.

    Weighted mean-squared error (:func:`masked_reconstruction_sampler`'s weights) with
    :func:`mire.learn.train`; ``train_kw`` go to it (``checkpoint_dir``, ``resume``,
    ``stop_event``, ``progress``, ``device``, ...).

    Returns
    -------
    history : dict (see :func:`mire.learn.train`)

    Examples
    --------
    >>> from mire.nets import build_model
    >>> net = build_model("tiny", ndim=2, residual=False)
    >>> img = np.random.default_rng(0).random((64, 64))
    >>> pretrain(net, img, patch=(32, 32), epochs=1, steps_per_epoch=2, progress=False)["step"]
    2
    """
    from mire.learn.loop import train

    cfg = getattr(model, "config", {}) or {}
    if cfg.get("in_channels", 1) != 1 or cfg.get("out_channels", 1) != 1:
        raise ValueError("the pretext network reconstructs one channel from one: in_channels = out_channels = 1")
    sampler = masked_reconstruction_sampler(images, patch=patch, fraction=fraction, block=block,
                                            visible_weight=visible_weight, corrupt=corrupt, seed=seed)
    return train(model, sampler, loss="mse", lr=lr, lr_decay=lr_decay, epochs=epochs,
                 steps_per_epoch=steps_per_epoch, batch_size=batch_size, seed=seed, **train_kw)


def save_pretext(path, model, metadata: dict | None = None) -> Path:
    """Write a pretrained network as ``<path>.safetensors`` + ``<path>.json`` (atomic); returns the stem."""
    from mire.learn.modelfile import save_model

    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **(metadata or {})}
    return save_model(path, model, meta, fmt=FORMAT)


def load_pretext(path):
    """``(state_dict, metadata)`` of a file written by :func:`save_pretext` (weights checksum checked)."""
    from mire.learn.checkpoint import load_tensors, read_json
    from mire.learn.modelfile import MODEL_SCHEMA, model_stem, weights_digest

    stem = model_stem(path)
    meta_path, weights_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")
    if not meta_path.exists():
        raise FileNotFoundError(f"no pretrained network {meta_path}")
    meta = read_json(meta_path, MODEL_SCHEMA)
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path} is not a mire pretext network (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{meta_path} has format version {meta['format_version']}; upgrade mire")
    state = load_tensors(weights_path)
    if meta.get("weights_sha256") and weights_digest(state) != meta["weights_sha256"]:
        raise ValueError(f"{weights_path} does not match {meta_path} (weights checksum differs)")
    return state, meta
