"""U-Net and encoder-decoder (no skips) for 2D images and 3D stacks.

Both are one class, :class:`UNet`, with ``skips=True`` or ``False``; :class:`EncoderDecoder` is the
skip-less "baseline CNN" of Ishii et al. 2020. Every option is a plain JSON-able value and the
model keeps them in ``model.config``, so the config can be saved beside the weights and the same
network rebuilt with :func:`mire.nets.build_model`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mire.nets.layers import BLOCKS, CONV_KINDS, NORMS, DepthToSpace, SpaceToDepth, as_tuple, conv_cls

#: An axis is "coarse" at a level when its voxel step is at least this many times the finest one:
#: one step along it then spans as much as two steps in-plane, so a 3-tap kernel along it would
#: mix structures a whole in-plane kernel apart, and in-plane pooling by 2 is what evens it out.
ANISOTROPY_RATIO = 2.0


def _pools(pool, depth: int, ndim: int) -> list[tuple[int, ...]]:
    """One pooling factor per down-sampling step (``depth - 1`` of them)."""
    if isinstance(pool, int) or (len(pool) == ndim and all(isinstance(p, int) for p in pool)):
        return [as_tuple(pool, ndim, name="pool")] * (depth - 1)
    pools = [as_tuple(p, ndim, name="pool") for p in pool]
    if len(pools) != depth - 1:
        raise ValueError(f"pool lists {len(pools)} factors but depth={depth} needs {depth - 1}")
    return pools


def anisotropic_layout(spacing, *, kernel, pools, stem):
    """Per-level kernels, poolings and stem for a voxel ``spacing`` (Lee et al. 2017, nnU-Net style).

    Walks down the levels keeping track of the voxel step after the stem and each pooling. At a
    level where an axis is coarse (step >= :data:`ANISOTROPY_RATIO` x the finest step) its
    kernel size, its pooling factor and (at the first level) its stem factor become 1: such a
    level convolves and pools in-plane only (1x3x3 kernels, 1x2x2 pooling for ssTEM) until the
    in-plane steps have caught up. Isotropic spacing changes nothing. Applying the rule to its
    own output gives the same layout (the stored config rebuilds the same network).

    Parameters
    ----------
    spacing : sequence of float
        Voxel size per axis (any unit).
    kernel : tuple of int
        The kernel of a fine axis.
    pools : list of tuple of int
        Pooling per down-sampling step, for fine axes.
    stem : tuple of int
        Space-to-depth factor, for fine axes.

    Returns
    -------
    kernels : list of tuple of int
        One kernel per level.
    pools : list of tuple of int
    stem : tuple of int

    Examples
    --------
    >>> k, p, s = anisotropic_layout((30, 6, 6), kernel=(3, 3, 3), pools=[(2, 2, 2)] * 3, stem=(1, 1, 1))
    >>> k
    [(1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)]
    >>> p
    [(1, 2, 2), (1, 2, 2), (2, 2, 2)]
    """
    step = [float(v) for v in spacing]
    if any(not math.isfinite(v) or v <= 0 for v in step):
        raise ValueError(f"spacing must be positive numbers, got {tuple(spacing)}")

    def coarse():
        return [v >= ANISOTROPY_RATIO * min(step) for v in step]

    stem = tuple(1 if c else f for c, f in zip(coarse(), stem))
    step = [v * f for v, f in zip(step, stem)]
    kernels, out_pools = [], []
    for i in range(len(pools) + 1):
        c = coarse()
        kernels.append(tuple(1 if ci else k for ci, k in zip(c, kernel)))
        if i < len(pools):
            p = tuple(1 if ci else f for ci, f in zip(c, pools[i]))
            out_pools.append(p)
            step = [v * f for v, f in zip(step, p)]
    return kernels, out_pools, stem


class UNet(nn.Module):
    """A 2D/3D U-Net (or encoder-decoder with ``skips=False``) for image-to-image regression.

    Parameters
    ----------
    ndim : {2, 3}
        Spatial dimensions.
    in_channels, out_channels : int
        Input and output channels (e.g. 1 -> 1 for restoration, 1 -> 3 for affinities).
    depth : int
        Number of resolution levels (encoder blocks); ``depth - 1`` poolings.
    base_channels : int
        Channels at the first level; multiplied by ``channel_growth`` at each level.
    convs_per_block : int
        Convolutions per encoder/decoder block.
    norm : {"batch", "group", "instance", "none"}
    activation : {"relu", "leaky_relu", "elu", "gelu", "silu"}
    kernel : int or tuple
        Convolution kernel, e.g. ``(1, 3, 3)`` for stacks with a coarse Z step.
    pool : int, tuple, or list of tuples
        Pooling factor per level, e.g. ``(1, 2, 2)`` to never pool along Z.
    conv : {"full", "factorized", "separable"}
        Convolution kind (see :func:`mire.nets.layers.conv`); ``"factorized"`` is ~2x cheaper in 3D.
    stem : int or tuple
        Space-to-depth factor applied first (and undone by a pixel-shuffle at the end): the
        convolutions then run on ``prod(stem)`` times fewer positions. 1 disables it.
    residual : bool
        Predict a correction added to the input (needs ``in_channels == out_channels``); the
        output layer starts at zero, so an untrained residual network is the identity.
    skips : bool
        Concatenate encoder features into the decoder (U-Net) or not (encoder-decoder).
    channel_growth : float
        Channel multiplier per level.
    max_channels : int, optional
        Cap on the channels of the deepest levels (keeps deep presets affordable).
    block : {"plain", "residual"}
        ``"plain"``: ``convs_per_block`` x conv-norm-act. ``"residual"``: the same convolutions
        as a residual module in every encoder and decoder level (see
        :class:`mire.nets.layers.ResidualBlock`; Lee et al. 2017). Unrelated to ``residual``,
        which adds the input to the output.
    spacing : sequence of float, optional
        Voxel size per axis. Given, the levels where an axis is coarse use kernel size 1 and no
        pooling along it (see :func:`anisotropic_layout`: 1x3x3 kernels and 1x2x2 pooling on
        ssTEM); isotropic spacing gives the same network as ``None``.

    Examples
    --------
    >>> import torch
    >>> net = UNet(ndim=3, depth=3, base_channels=8, pool=(1, 2, 2))
    >>> net(torch.zeros(1, 1, 4, 32, 32)).shape
    torch.Size([1, 1, 4, 32, 32])
    >>> net.size_multiple
    (1, 4, 4)
    """

    def __init__(self, *, ndim: int = 3, in_channels: int = 1, out_channels: int = 1, depth: int = 3,
                 base_channels: int = 16, convs_per_block: int = 2, norm: str = "batch",
                 activation: str = "relu", kernel=3, pool=2, conv: str = "full", stem=1,
                 residual: bool = False, skips: bool = True, channel_growth: float = 2.0,
                 max_channels: int | None = None, block: str = "plain", spacing=None):
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if norm not in NORMS:
            raise ValueError(f"unknown normalization {norm!r}; choose from {NORMS}")
        if conv not in CONV_KINDS:
            raise ValueError(f"unknown conv kind {conv!r}; choose from {CONV_KINDS}")
        if residual and in_channels != out_channels:
            raise ValueError(f"residual=True needs in_channels == out_channels, got {in_channels} and {out_channels}")
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose from {sorted(BLOCKS)}")
        kernel_t = as_tuple(kernel, ndim, name="kernel")
        stem_t = as_tuple(stem, ndim, name="stem")
        pools = _pools(pool, depth, ndim)
        if spacing is not None:
            spacing = [float(v) for v in spacing]
            if len(spacing) != ndim:
                raise ValueError(f"spacing has {len(spacing)} values for a {ndim}D network")
            kernels, pools, stem_t = anisotropic_layout(spacing, kernel=kernel_t, pools=pools, stem=stem_t)
        else:
            kernels = [kernel_t] * depth
        #: the kernel of each level (encoder and decoder alike)
        self.level_kernels = kernels
        # JSON-able record of everything needed to rebuild this network
        self.config = {
            "arch": "unet" if skips else "encoder_decoder", "ndim": ndim, "in_channels": in_channels,
            "out_channels": out_channels, "depth": depth, "base_channels": base_channels,
            "convs_per_block": convs_per_block, "norm": norm, "activation": activation,
            "kernel": list(kernel_t), "pool": [list(p) for p in pools], "conv": conv, "stem": list(stem_t),
            "residual": residual, "channel_growth": channel_growth,
            "max_channels": max_channels, "block": block, "spacing": spacing,
        }
        self.ndim, self.residual, self.skips = ndim, residual, skips
        self.in_channels, self.out_channels = in_channels, out_channels
        self.size_multiple = tuple(s * math.prod(p[i] for p in pools) for i, s in enumerate(stem_t))

        chans = [int(round(base_channels * channel_growth ** i)) for i in range(depth)]
        if max_channels is not None:
            chans = [min(c, int(max_channels)) for c in chans]
        Block = BLOCKS[block]
        opts = dict(ndim=ndim, n_convs=convs_per_block, norm=norm, act=activation, conv_kind=conv)
        Conv = conv_cls(ndim)
        Pool = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[ndim]
        Up = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[ndim]

        self.stem_in = SpaceToDepth(stem_t) if math.prod(stem_t) > 1 else nn.Identity()
        self.stem_out = DepthToSpace(stem_t) if math.prod(stem_t) > 1 else nn.Identity()
        first_in = in_channels * math.prod(stem_t)
        self.encoders = nn.ModuleList(
            [Block(first_in if i == 0 else chans[i - 1], chans[i], kernel=kernels[i], **opts) for i in range(depth)])
        self.pools = nn.ModuleList([Pool(p, p) if math.prod(p) > 1 else nn.Identity() for p in pools])
        # transposed conv with kernel == stride: a learned, overlap-free upsampling (no checkerboard)
        self.ups = nn.ModuleList([Up(chans[i + 1], chans[i], pools[i], stride=pools[i]) for i in range(depth - 1)])
        self.decoders = nn.ModuleList(
            [Block(chans[i] * (2 if skips else 1), chans[i], kernel=kernels[i], **opts) for i in range(depth - 1)])
        self.head = Conv(chans[0], out_channels * math.prod(stem_t), 1)
        if residual:
            # start as the identity: training then only has to learn the correction, instead of
            # first unlearning a random one (much faster on a CPU budget)
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape[2:])
        if len(shape) != self.ndim or any(s % m for s, m in zip(shape, self.size_multiple)):
            raise ValueError(f"input spatial shape {shape} must be {self.ndim}D with sizes divisible by "
                             f"{self.size_multiple} (pad it, or use mire.learn.predict_tiled)")
        h = self.stem_in(x)
        feats = []
        for i, enc in enumerate(self.encoders):
            if i > 0:
                h = self.pools[i - 1](h)
            h = enc(h)
            feats.append(h)
        for i in reversed(range(len(self.decoders))):
            h = self.ups[i](h)
            if self.skips:
                h = torch.cat([h, feats[i]], dim=1)
            h = self.decoders[i](h)
        out = self.stem_out(self.head(h))
        return out + x if self.residual else out


class EncoderDecoder(UNet):
    """The encoder-decoder without skip connections (the paper's "baseline CNN"); see :class:`UNet`.

    Examples
    --------
    >>> import torch
    >>> net = EncoderDecoder(ndim=2, depth=3, base_channels=8)
    >>> net(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, **kwargs):
        kwargs.pop("skips", None)
        super().__init__(skips=False, **kwargs)


def transfer_output_channels(source: UNet, target: UNet, channel_map, *, init_std: float = 1e-3,
                             seed: int = 0) -> UNet:
    """Copy ``source``'s weights into ``target``, a copy of the same network with other output channels.

    Every weight but the 1x1 head's is copied unchanged. Output channel ``c`` of ``target`` takes
    the head weights of ``source``'s channel ``channel_map[c]`` (an int), or, where that is
    ``None``, small normal weights (``init_std``) and a zero bias, so that a new channel starts
    near probability 0.5 without disturbing the trunk.

    Parameters
    ----------
    source, target : UNet
        Same config except ``out_channels``.
    channel_map : sequence of int or None
        One entry per output channel of ``target``.
    init_std : float
        Standard deviation of a new channel's weights.
    seed : int
        Seed of the new channels' weights.

    Returns
    -------
    target : UNet
        The same object, weights replaced.
    """
    a = {k: v for k, v in source.config.items() if k != "out_channels"}
    b = {k: v for k, v in target.config.items() if k != "out_channels"}
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError(f"the networks differ in more than their output channels: {diff}")
    channel_map = list(channel_map)
    if len(channel_map) != target.out_channels:
        raise ValueError(f"channel_map has {len(channel_map)} entries for {target.out_channels} output channels")
    bad = [c for c in channel_map if c is not None and not 0 <= int(c) < source.out_channels]
    if bad:
        raise ValueError(f"channel_map entries {bad} are not channels of the source (0..{source.out_channels - 1})")
    state = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("head.")}
    # the head has out_channels * prod(stem) rows; DepthToSpace gives channel c the rows c*P .. (c+1)*P
    per = source.head.out_channels // source.out_channels
    w_src, b_src = source.head.weight.detach(), source.head.bias.detach()
    gen = torch.Generator().manual_seed(int(seed))
    w = torch.empty((target.head.out_channels,) + tuple(w_src.shape[1:]), dtype=w_src.dtype)
    bias = torch.zeros(target.head.out_channels, dtype=b_src.dtype)
    for c, s in enumerate(channel_map):
        rows = slice(c * per, (c + 1) * per)
        if s is None:
            w[rows] = torch.randn(w[rows].shape, generator=gen, dtype=w.dtype) * init_std
        else:
            src_rows = slice(int(s) * per, (int(s) + 1) * per)
            w[rows], bias[rows] = w_src[src_rows], b_src[src_rows]
    state["head.weight"], state["head.bias"] = w, bias
    target.load_state_dict(state)
    return target


def transfer_body(state: dict, config: dict, target: UNet) -> UNet:
    """Load a pretrained network's body (every weight but the 1x1 ``head``) into ``target``.

    The transfer of self-supervised pretraining (:mod:`mire.learn.pretext`): the pretext network
    and ``target`` are the same U-Net but for the output channels (e.g. one reconstructed
    intensity vs three affinities), and ``target`` keeps its own, freshly initialized head,
    since the pretext head's outputs mean something else.

    Parameters
    ----------
    state : dict
        The pretrained network's ``state_dict``.
    config : dict
        Its config (``model.config``); must equal ``target.config`` but for ``out_channels``.
    target : UNet

    Returns
    -------
    target : UNet
        The same object, body weights replaced, head untouched.

    Examples
    --------
    >>> import torch
    >>> from mire.nets import build_model
    >>> src = build_model("tiny", ndim=2, residual=False)
    >>> dst = build_model("tiny", ndim=2, residual=False, out_channels=2)
    >>> _ = transfer_body(src.state_dict(), src.config, dst)
    >>> bool(torch.equal(dst.state_dict()["encoders.0.0.weight"], src.state_dict()["encoders.0.0.weight"]))
    True
    """
    a = {k: v for k, v in dict(config).items() if k != "out_channels"}
    b = {k: v for k, v in target.config.items() if k != "out_channels"}
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        raise ValueError("the pretrained network differs from the target in more than its output channels: "
                         + ", ".join(f"{k} ({a.get(k)!r} != {b.get(k)!r})" for k in diff))
    own = target.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    missing = sorted(k for k in own if not k.startswith("head.") and k not in body)
    extra = sorted(k for k in body if k not in own)
    if missing or extra:
        raise ValueError(f"pretrained weights do not fit the target: missing {missing[:3]}, unexpected {extra[:3]}")
    own.update({k: v.clone() for k, v in body.items()})
    target.load_state_dict(own)
    return target
