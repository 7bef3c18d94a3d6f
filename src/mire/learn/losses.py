"""Pixel losses with optional masks (Noise2Void blind spots, ignored label regions)."""

from __future__ import annotations

import torch

LOSSES = ("l1", "l2", "mse", "bce")


def pixel_loss(name_or_fn="l1"):
    """A loss ``f(pred, target, mask) -> scalar``; ``mask`` (broadcastable, 0 = ignore) may be None.

    ``"l1"`` (the paper's), ``"l2"``/``"mse"``, ``"bce"`` (binary cross-entropy on logits, for
    boundary maps and affinities), or a callable with that signature, returned as is.

    Examples
    --------
    >>> import torch
    >>> loss = pixel_loss("l1")
    >>> float(loss(torch.tensor([1.0, 5.0]), torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])))
    1.0
    """
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in LOSSES:
        raise ValueError(f"unknown loss {name_or_fn!r}; choose from {LOSSES} or pass a callable")

    def elementwise(pred, target):
        if name_or_fn == "l1":
            return (pred - target).abs()
        if name_or_fn in ("l2", "mse"):
            return (pred - target) ** 2
        return torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")

    def loss(pred, target, mask=None):
        err = elementwise(pred, target)
        if mask is None:
            return err.mean()
        mask = mask.to(err.dtype).expand_as(err)
        # mean over the kept pixels only; clamp keeps an all-ignored batch at 0, not NaN
        return (err * mask).sum() / mask.sum().clamp_min(1.0)

    return loss
