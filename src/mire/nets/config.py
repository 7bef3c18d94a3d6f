"""Presets and building networks from plain dict configs (the JSON saved next to the weights)."""

from __future__ import annotations

import copy

from torch import nn

from mire.nets.unet import EncoderDecoder, UNet

#: Named configurations. ``"paper"``: Ishii et al. 2020 (7 encoder + 7 decoder blocks of 3 convs,
#: batch norm, ReLU). ``"fast"``: the CPU-fast default: a 2x space-to-depth stem so every conv runs
#: on 1/4 (2D) or 1/8 (3D) of the pixels, factorized 3D kernels, and a residual output.
#: ``"restore"``: the same CPU-fast layout for restoration (the default of
#: :class:`mire.restore.Restorer`), without batch norm and without the residual output: batch-norm
#: running statistics gathered on a few small patches do not describe whole images at prediction
#: time, and a zero-initialized residual head starts at the identity, where the L1 loss's
#: gradient is the sign of the noise (uncorrelated with the signal): such nets barely learned.
PRESETS = {
    "paper": {"arch": "unet", "depth": 7, "base_channels": 16, "max_channels": 128, "convs_per_block": 3, "norm": "batch",
              "activation": "relu", "kernel": 3, "pool": 2, "conv": "full", "stem": 1, "residual": False},
    "fast": {"arch": "unet", "depth": 3, "base_channels": 24, "convs_per_block": 2, "norm": "batch",
             "activation": "relu", "kernel": 3, "pool": 2, "conv": "factorized", "stem": 2, "residual": True},
    "restore": {"arch": "unet", "depth": 3, "base_channels": 16, "convs_per_block": 2, "norm": "none",
                "activation": "relu", "kernel": 3, "pool": 2, "conv": "factorized", "stem": 2, "residual": False},
    "tiny": {"arch": "unet", "depth": 2, "base_channels": 8, "convs_per_block": 1, "norm": "none",
             "activation": "relu", "kernel": 3, "pool": 2, "conv": "full", "stem": 1, "residual": True},
}
ARCHS = {"unet": UNet, "encoder_decoder": EncoderDecoder}


def build_model(config: dict | str | None = None, **overrides) -> UNet:
    """Build a network from a config dict, a preset name, or ``None`` (the ``"fast"`` preset).

    ``overrides`` (e.g. ``ndim=2``, ``arch="encoder_decoder"``, ``out_channels=3``) update the config.

    Examples
    --------
    >>> net = build_model("fast", ndim=2)
    >>> net.config["arch"], net.config["stem"]
    ('unet', [2, 2])
    >>> build_model(net.config).config == net.config
    True
    """
    if config is None:
        config = "fast"
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown preset {config!r}; choose from {sorted(PRESETS)}")
        config = PRESETS[config]
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict or a preset name, got {type(config).__name__}")
    cfg = copy.deepcopy(config)
    cfg.update(overrides)
    arch = cfg.pop("arch", "unet")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHS)}")
    cfg.pop("skips", None)
    try:
        return ARCHS[arch](**cfg)
    except TypeError as exc:  # unknown key in a (possibly hand-edited) config
        raise ValueError(f"invalid network config: {exc}") from None


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``.

    Examples
    --------
    >>> count_parameters(build_model("tiny", ndim=2))
    2937
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
