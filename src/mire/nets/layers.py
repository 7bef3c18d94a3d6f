"""Building blocks for the networks: N-d convolutions, normalization, activation, space-to-depth.

Everything is written for ``ndim`` 2 or 3 so the same definitions serve 2D images and 3D stacks.
"""

from __future__ import annotations

import math

from torch import nn

_ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(inplace=True),
}
NORMS = ("batch", "group", "instance", "none")
CONV_KINDS = ("full", "factorized", "separable")


def as_tuple(value, ndim: int, *, name: str) -> tuple[int, ...]:
    """An int or a length-``ndim`` sequence of positive ints -> tuple of ``ndim`` ints."""
    if isinstance(value, int):
        value = (value,) * ndim
    value = tuple(int(v) for v in value)
    if len(value) != ndim or any(v < 1 for v in value):
        raise ValueError(f"{name} must be a positive int or {ndim} positive ints, got {value}")
    return value


def conv_cls(ndim: int):
    return {2: nn.Conv2d, 3: nn.Conv3d}[ndim]


def activation(name: str) -> nn.Module:
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(_ACTIVATIONS)}") from None


def norm_layer(kind: str, channels: int, ndim: int) -> nn.Module:
    if kind == "batch":
        return {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[ndim](channels)
    if kind == "group":
        # 8 groups is the usual choice; fall back to a divisor for narrow layers
        groups = math.gcd(8, channels)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[ndim](channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}; choose from {NORMS}")


class PlaneConv3d(nn.Module):
    """A (1, ky, kx) 3D convolution run as a 2D convolution over the Z slices.

    Same result as ``nn.Conv3d`` with that kernel, but PyTorch's CPU backend has no fast (oneDNN)
    path for many 3D convolutions and falls back to a slow im2col loop: the 2D path is 3-5x faster.
    """

    def __init__(self, in_ch, out_ch, kernel2d, *, bias=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel2d, padding=tuple(k // 2 for k in kernel2d), bias=bias)

    def forward(self, x):
        n, c, z, y, w = x.shape
        h = self.conv(x.transpose(1, 2).reshape(n * z, c, y, w))
        return h.reshape(n, z, -1, y, w).transpose(1, 2)


class AxialConv3d(nn.Module):
    """A (kz, 1, 1) 3D convolution run as a (kz, 1) 2D convolution on (N, C, Z, Y*X) (see PlaneConv3d)."""

    def __init__(self, in_ch, out_ch, kz, *, bias=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, (kz, 1), padding=(kz // 2, 0), bias=bias)

    def forward(self, x):
        n, c, z, y, w = x.shape
        return self.conv(x.reshape(n, c, z, y * w)).reshape(n, -1, z, y, w)


def conv(in_ch: int, out_ch: int, kernel: tuple[int, ...], *, kind: str = "full", bias: bool = True) -> nn.Module:
    """A 'same'-padded convolution of the given ``kind``.

    ``"factorized"`` splits a k x k x k kernel into an in-plane (1, k, k) conv followed by an axial
    (k, 1, 1) conv: 12 instead of 27 weights per channel pair in 3D, and the axial part vanishes for
    anisotropic kernels whose first size is 1. ``"separable"`` is a depthwise conv followed by a 1x1
    pointwise conv (MobileNet style).
    """
    ndim = len(kernel)
    Conv = conv_cls(ndim)
    pad = tuple(k // 2 for k in kernel)
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"kernel sizes must be odd for 'same' padding, got {kernel}")
    if all(k == 1 for k in kernel):
        return Conv(in_ch, out_ch, kernel, bias=bias)
    if ndim == 3 and kernel[0] == 1 and kind in ("full", "factorized"):
        return PlaneConv3d(in_ch, out_ch, kernel[1:], bias=bias)
    if kind == "full":
        return Conv(in_ch, out_ch, kernel, padding=pad, bias=bias)
    if kind == "factorized":
        if ndim == 3:
            return nn.Sequential(PlaneConv3d(in_ch, out_ch, kernel[1:], bias=False),
                                 AxialConv3d(out_ch, out_ch, kernel[0], bias=bias))
        plane, axial = (1,) + kernel[1:], kernel[:1] + (1,)
        return nn.Sequential(Conv(in_ch, out_ch, plane, padding=(0, kernel[1] // 2), bias=False),
                             Conv(out_ch, out_ch, axial, padding=(kernel[0] // 2, 0), bias=bias))
    if kind == "separable":
        return nn.Sequential(
            Conv(in_ch, in_ch, kernel, padding=pad, groups=in_ch, bias=False),
            Conv(in_ch, out_ch, 1, bias=bias),
        )
    raise ValueError(f"unknown conv kind {kind!r}; choose from {CONV_KINDS}")


class ConvBlock(nn.Sequential):
    """``n_convs`` x (conv -> norm -> activation)."""

    def __init__(self, in_ch, out_ch, *, ndim, n_convs=2, kernel=3, norm="batch", act="relu", conv_kind="full"):
        kernel = as_tuple(kernel, ndim, name="kernel")
        layers = []
        for i in range(n_convs):
            layers += [
                # a bias is redundant right before a normalization that re-centres the activations
                conv(in_ch if i == 0 else out_ch, out_ch, kernel, kind=conv_kind, bias=norm == "none"),
                norm_layer(norm, out_ch, ndim),
                activation(act),
            ]
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """``n_convs`` x conv -> norm, activations between them, plus a skip; activation after the sum.

    The residual module of Lee et al. 2017 (the superhuman SNEMI3D U-Net) and He et al. 2016:
    ``act(branch(x) + skip(x))`` with ``branch`` = conv-norm-act-...-conv-norm and ``skip`` the
    identity, or a 1x1 convolution (no bias, then norm) when the channels change. A branch whose
    weights are zero adds nothing, so the block is then ``act(skip(x))``: the identity for the
    non-negative output of a previous ReLU block of the same width. Deep stacks of such blocks
    keep a short gradient path to every level.
    """

    def __init__(self, in_ch, out_ch, *, ndim, n_convs=2, kernel=3, norm="batch", act="relu", conv_kind="full"):
        super().__init__()
        kernel = as_tuple(kernel, ndim, name="kernel")
        if n_convs < 1:
            raise ValueError(f"a residual block needs at least one convolution, got n_convs={n_convs}")
        layers = []
        for i in range(n_convs):
            layers += [conv(in_ch if i == 0 else out_ch, out_ch, kernel, kind=conv_kind, bias=norm == "none"),
                       norm_layer(norm, out_ch, ndim)]
            if i < n_convs - 1:
                layers.append(activation(act))
        self.branch = nn.Sequential(*layers)
        if in_ch == out_ch:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Sequential(conv_cls(ndim)(in_ch, out_ch, 1, bias=norm == "none"),
                                      norm_layer(norm, out_ch, ndim))
        self.act = activation(act)

    def forward(self, x):
        return self.act(self.branch(x) + self.skip(x))


BLOCKS = {"plain": ConvBlock, "residual": ResidualBlock}


class SpaceToDepth(nn.Module):
    """Fold each ``factor`` block of voxels into channels (pixel-unshuffle, any ndim, anisotropic).

    (N, C, Z, Y, X) -> (N, C*fz*fy*fx, Z/fz, Y/fy, X/fx). Lossless, so a network that starts with it
    still sees every input voxel while its convolutions run on prod(factor) times fewer positions.
    """

    def __init__(self, factor: tuple[int, ...]):
        super().__init__()
        self.factor = tuple(factor)

    def forward(self, x):
        n, c, *sizes = x.shape
        nd = len(sizes)
        shape = [n, c]
        for s, f in zip(sizes, self.factor):
            shape += [s // f, f]
        x = x.reshape(shape)
        # order: n, c, f_0..f_{nd-1}, s_0..s_{nd-1}
        perm = [0, 1] + [3 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)]
        x = x.permute(perm)
        return x.reshape(n, c * math.prod(self.factor), *[s // f for s, f in zip(sizes, self.factor)])


class DepthToSpace(nn.Module):
    """Inverse of :class:`SpaceToDepth` (pixel-shuffle)."""

    def __init__(self, factor: tuple[int, ...]):
        super().__init__()
        self.factor = tuple(factor)

    def forward(self, x):
        n, cf, *sizes = x.shape
        nd = len(sizes)
        c = cf // math.prod(self.factor)
        x = x.reshape(n, c, *self.factor, *sizes)
        perm = [0, 1]
        for i in range(nd):
            perm += [2 + nd + i, 2 + i]
        x = x.permute(perm)
        return x.reshape(n, c, *[s * f for s, f in zip(sizes, self.factor)])
