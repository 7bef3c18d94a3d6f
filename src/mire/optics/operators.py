"""Linear operators of the forward model, in torch, each with an exact adjoint.

y_t = D H W(theta_t) x : warp (object motion), blur by the PSF, downsample by pixel
integration. Every solver in mire (deconvolution, super-resolution) calls ``forward``
and ``adjoint`` of these classes, and the simulator uses the same ``forward``.

Tensors carry the spatial axes last; any leading axes are a batch (frames, channels).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch

from mire._fft import fast_len, irfftn, rfftn
from mire._torch import default_device


def _spatial(x: torch.Tensor, shape: tuple, what: str) -> None:
    if tuple(x.shape[x.ndim - len(shape):]) != tuple(shape):
        raise ValueError(f"{what}: expected trailing shape {tuple(shape)}, got {tuple(x.shape)}")


class LinearOperator:
    """Base class: ``forward`` maps ``in_shape`` to ``out_shape``; ``adjoint`` goes back.

    ``A @ B`` composes (``B`` applied first); ``A.T`` is the adjoint as an operator.
    """

    in_shape: tuple
    out_shape: tuple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def __matmul__(self, other: "LinearOperator") -> "Compose":
        return Compose(self, other)

    @property
    def T(self) -> "LinearOperator":
        return _Adjoint(self)

    @property
    def ndim(self) -> int:
        return len(self.in_shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_shape={self.in_shape}, out_shape={self.out_shape})"


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        self.op, self.in_shape, self.out_shape = op, op.out_shape, op.in_shape

    def forward(self, x):
        return self.op.adjoint(x)

    def adjoint(self, y):
        return self.op.forward(y)


class Identity(LinearOperator):
    def __init__(self, shape):
        self.in_shape = self.out_shape = tuple(int(n) for n in shape)

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y


class Compose(LinearOperator):
    """Product ``ops[0] @ ops[1] @ ...``: the last operator is applied first."""

    def __init__(self, *ops: LinearOperator):
        flat: list[LinearOperator] = []
        for op in ops:
            flat.extend(op.ops if isinstance(op, Compose) else [op])
        for a, b in zip(flat[:-1], flat[1:]):
            if tuple(a.in_shape) != tuple(b.out_shape):
                raise ValueError(f"cannot compose {a!r} after {b!r}: shapes {b.out_shape} -> {a.in_shape}")
        self.ops = flat
        self.in_shape, self.out_shape = flat[-1].in_shape, flat[0].out_shape

    def forward(self, x):
        for op in reversed(self.ops):
            x = op.forward(x)
        return x

    def adjoint(self, y):
        for op in self.ops:
            y = op.adjoint(y)
        return y


def _sparse_otf(psf: np.ndarray, where, fft_shape) -> np.ndarray:
    """``rfftn`` of ``psf`` placed at the indices ``where`` of a zero grid ``fft_shape``, pruned.

    The grid is zero but for the PSF's lines, so each axis is transformed only along the lines that
    can be non-zero (those of the axes not yet transformed): about a third of a full transform and no
    full-size real grid. pocketfft (scipy.fft), one line at a time: the same bits in every process
    and at any thread count.
    """
    import scipy.fft

    workers = torch.get_num_threads()
    line = np.zeros(psf.shape[:-1] + (fft_shape[-1],), dtype=psf.dtype)
    line[..., where[-1]] = psf
    out = scipy.fft.rfft(line, axis=-1, workers=workers)
    for ax in reversed(range(psf.ndim - 1)):
        full = np.zeros(out.shape[:ax] + (fft_shape[ax],) + out.shape[ax + 1:], dtype=out.dtype)
        full[(slice(None),) * ax + (where[ax],)] = out
        out = scipy.fft.fft(full, axis=ax, overwrite_x=True, workers=workers)
    return np.ascontiguousarray(out)


class Blur(LinearOperator):
    """Convolution with a PSF by FFT.

    Parameters
    ----------
    psf : array_like
        Kernel with the same number of dimensions as ``shape``; its centre is
        ``np.array(psf.shape) // 2``. It is used as given (normalize it first).
    shape : tuple of int
        Shape of the *output* image.
    boundary : {"circular", "zero", "valid"}
        ``"circular"``: periodic convolution, ``in_shape == shape``.
        ``"zero"``: linear convolution of a zero-padded image, cropped to ``shape``.
        ``"valid"``: the unknown is larger than the image by the PSF support
        (``in_shape = shape + psf.shape - 1``), so the model has no wrap-around
        and no assumption about what lies outside the field of view; this is the
        boundary to use for deconvolution.
    dtype, device : torch dtype and device.
    """

    def __init__(self, psf, shape, *, boundary: str = "circular", dtype=torch.float32, device=None):
        psf = np.asarray(psf, dtype=np.float64)
        shape = tuple(int(n) for n in shape)
        if psf.ndim != len(shape):
            raise ValueError(f"psf is {psf.ndim}D but the image shape {shape} is {len(shape)}D")
        if not np.all(np.isfinite(psf)) or psf.size == 0:
            raise ValueError("psf is empty or contains NaN/inf")
        if boundary not in ("circular", "zero", "valid"):
            raise ValueError(f"boundary must be 'circular', 'zero' or 'valid', got {boundary!r}")
        k = np.array(psf.shape)
        c = k // 2
        self.boundary, self.psf_shape = boundary, tuple(int(v) for v in k)
        self.dtype, self.device = dtype, device or default_device()
        if boundary == "circular":
            if np.any(k > np.array(shape)):
                raise ValueError(f"psf shape {psf.shape} is larger than the image {shape}; use boundary='zero'")
            self.in_shape = self.out_shape = shape
            fft_shape = shape
            self._x_slice = self._y_slice = tuple(slice(0, n) for n in shape)
        elif boundary == "zero":
            # the grid need only hold the PSF's reach past each border (the larger side), so the
            # image's zero padding, not its far end, wraps into the output
            self.in_shape = self.out_shape = shape
            fft_shape = tuple(fast_len(int(n + max(cc, kk - 1 - cc))) for n, kk, cc in zip(shape, k, c))
            self._x_slice = self._y_slice = tuple(slice(0, n) for n in shape)
        else:
            self.out_shape = shape
            self.in_shape = tuple(int(n + kk - 1) for n, kk in zip(shape, k))
            fft_shape = tuple(fast_len(n) for n in self.in_shape)
            self._x_slice = tuple(slice(0, n) for n in self.in_shape)
            # outputs whose whole kernel footprint lies inside the unknown
            self._y_slice = tuple(slice(int(kk - 1 - cc), int(kk - 1 - cc + n)) for n, kk, cc in zip(shape, k, c))
        self.fft_shape = tuple(int(n) for n in fft_shape)
        # PSF centre at index 0, its other pixels wrapped to the far ends (no full-size np.roll)
        where = [(np.arange(kk) - cc) % n for kk, cc, n in zip(k, c, self.fft_shape)]
        dims = tuple(range(-len(shape), 0))
        self._dims = dims
        ctype = torch.complex128 if dtype == torch.float64 else torch.complex64
        if torch.device(self.device).type == "cpu" and dtype == torch.float32:
            self.otf = torch.from_numpy(_sparse_otf(psf.astype(np.float32), where, self.fft_shape))
        else:
            # float64 (the simulator): the full transform, so simulated data keep their recorded bits
            # (a last-bit change of the blurred image moves numpy's Poisson sampler onto another stream)
            kernel = np.zeros(self.fft_shape)
            kernel[np.ix_(*where)] = psf
            # pocketfft on the CPU (exact=True): the same OTF bits in every process and at any thread count
            self.otf = rfftn(torch.as_tensor(kernel, dtype=dtype, device=self.device), dim=dims, exact=True).to(ctype)

    @property
    def x_region(self):
        """Where the unknown sits on the FFT grid ``fft_shape`` (slices from the origin)."""
        return self._x_slice

    @property
    def y_region(self):
        """Where the output sits on the FFT grid ``fft_shape``."""
        return self._y_slice

    def _pad(self, x, region):
        if tuple(x.shape[-len(self.fft_shape):]) == self.fft_shape and all(
            s.start == 0 for s in region
        ):
            return x
        out = x.new_zeros(tuple(x.shape[: x.ndim - len(self.fft_shape)]) + self.fft_shape)
        out[(Ellipsis,) + tuple(region)] = x
        return out

    def _conv(self, x, otf):
        return irfftn(rfftn(x, dim=self._dims) * otf, s=self.fft_shape, dim=self._dims)

    def forward(self, x):
        _spatial(x, self.in_shape, "Blur.forward")
        y = self._conv(self._pad(x, self._x_slice), self.otf)
        return y[(Ellipsis,) + self._y_slice]

    def adjoint(self, y):
        _spatial(y, self.out_shape, "Blur.adjoint")
        x = self._conv(self._pad(y, self._y_slice), self.otf.conj())
        return x[(Ellipsis,) + self._x_slice]


class Downsample(LinearOperator):
    """Integer downsampling by pixel integration (the mean over each block).

    ``in_shape`` must be divisible by ``factor`` on every axis.
    """

    def __init__(self, factor, in_shape):
        in_shape = tuple(int(n) for n in in_shape)
        f = tuple(int(v) for v in np.broadcast_to(np.asarray(factor, dtype=int), (len(in_shape),)))
        if any(v < 1 for v in f):
            raise ValueError(f"downsampling factor must be >= 1, got {f}")
        if any(n % v for n, v in zip(in_shape, f)):
            raise ValueError(f"shape {in_shape} is not divisible by the downsampling factor {f}")
        self.factor, self.in_shape = f, in_shape
        self.out_shape = tuple(n // v for n, v in zip(in_shape, f))
        self._scale = 1.0 / math.prod(f)

    def forward(self, x):
        _spatial(x, self.in_shape, "Downsample.forward")
        lead = tuple(x.shape[: x.ndim - self.ndim])
        split = []
        for n, v in zip(self.out_shape, self.factor):
            split += [n, v]
        x = x.reshape(lead + tuple(split))
        red = tuple(len(lead) + 2 * i + 1 for i in range(self.ndim))
        return x.sum(dim=red) * self._scale

    def adjoint(self, y):
        _spatial(y, self.out_shape, "Downsample.adjoint")
        nlead = y.ndim - self.ndim
        for i, v in enumerate(self.factor):
            y = torch.repeat_interleave(y, v, dim=nlead + i)
        return y * self._scale


def rotation_matrix(rotation, ndim: int) -> np.ndarray | torch.Tensor:
    """Rotation matrix acting on index coordinates (row, col) or (z, row, col).

    ``rotation`` is an angle in radians (2D; in 3D a rotation in the YX plane, the
    usual in-plane motion of a stage) or, in 3D, a 3x3 matrix.
    """
    if isinstance(rotation, torch.Tensor) and rotation.ndim == 0:
        c, s = torch.cos(rotation), torch.sin(rotation)
        r2 = torch.stack([torch.stack([c, -s]), torch.stack([s, c])])
        if ndim == 2:
            return r2
        r3 = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
        r3 = r3.clone()
        r3[1:, 1:] = r2
        return r3
    r = np.asarray(rotation if not isinstance(rotation, torch.Tensor) else rotation.detach().cpu(), dtype=float)
    if r.ndim == 0:
        c, s = math.cos(float(r)), math.sin(float(r))
        r2 = np.array([[c, -s], [s, c]])
        if ndim == 2:
            return r2
        r3 = np.eye(3)
        r3[1:, 1:] = r2
        return r3
    if r.shape != (ndim, ndim):
        raise ValueError(f"rotation must be an angle or a {ndim}x{ndim} matrix, got shape {r.shape}")
    return r


@functools.lru_cache(maxsize=8)
def _index_grid(shape: tuple, dtype, device: str) -> torch.Tensor:
    """Index coordinates of every pixel of ``shape`` as an (N, d) tensor; cached because solvers build
    one Warp per frame and per registration update on the same grid."""
    grids = torch.meshgrid(*[torch.arange(n, dtype=dtype, device=device) for n in shape], indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


class Warp(LinearOperator):
    """Sub-pixel shift and rotation by (multi)linear interpolation, with its exact transpose.

    The output sees the object moved by ``shift`` and rotated by ``rotation``
    about ``center``: ``y(p) = x(R^T (p - c_out - shift) + c_in)`` in index
    coordinates. Samples that fall outside the input are zero.

    ``shift`` and ``rotation`` may be torch tensors that require grad: the
    interpolation weights are then differentiable, which lets solvers refine the
    registration jointly with the image.

    Parameters
    ----------
    in_shape : tuple of int
    shift : sequence of float
        Displacement per axis, in pixels.
    rotation : float, 3x3 array or tensor
        Angle in radians (2D, or in-plane in 3D) or a 3D rotation matrix.
    out_shape : tuple of int, optional
        Defaults to ``in_shape``.
    center : sequence of float, optional
        Rotation centre in input coordinates; default the array centre.
    """

    def __init__(self, in_shape, *, shift=None, rotation=0.0, out_shape=None, center=None,
                 dtype=torch.float32, device=None):
        self.in_shape = tuple(int(n) for n in in_shape)
        self.out_shape = tuple(int(n) for n in (out_shape or in_shape))
        d = len(self.in_shape)
        if d not in (2, 3):
            raise ValueError(f"Warp supports 2D and 3D, got {d}D")
        self.dtype, self.device = dtype, device or default_device()
        tensor_params = isinstance(shift, torch.Tensor) or isinstance(rotation, torch.Tensor)
        if shift is None:
            shift = [0.0] * d
        if tensor_params:
            shift_t = shift if isinstance(shift, torch.Tensor) else torch.as_tensor(shift, dtype=dtype)
            rot = rotation if isinstance(rotation, torch.Tensor) else torch.as_tensor(rotation, dtype=dtype)
            shift_t = shift_t.to(dtype=dtype, device=self.device)
            rmat = rotation_matrix(rot.to(dtype=dtype, device=self.device), d)
            rmat = rmat if isinstance(rmat, torch.Tensor) else torch.as_tensor(rmat, dtype=dtype, device=self.device)
        else:
            shift_t = torch.as_tensor(np.asarray(shift, dtype=float), dtype=dtype, device=self.device)
            rmat = torch.as_tensor(rotation_matrix(rotation, d), dtype=dtype, device=self.device)
        if shift_t.shape != (d,):
            raise ValueError(f"shift must have {d} values, got shape {tuple(shift_t.shape)}")
        self.shift, self.rotation = shift_t, rmat
        c_in = torch.as_tensor(
            [(n - 1) / 2 for n in self.in_shape] if center is None else list(center), dtype=dtype, device=self.device
        )
        c_out = c_in + torch.as_tensor([(m - n) / 2 for m, n in zip(self.out_shape, self.in_shape)],
                                       dtype=dtype, device=self.device)
        self._c_in, self._c_out = c_in, c_out
        self._differentiable = bool(shift_t.requires_grad or rmat.requires_grad)
        self._cache = None if self._differentiable else self._weights()

    def _weights(self):
        d = self.ndim
        p = _index_grid(self.out_shape, self.dtype, str(self.device))  # (N, d), shared by same-shape warps
        src = (p - self._c_out - self.shift) @ self.rotation + self._c_in  # R^T applied to row vectors
        base = torch.floor(src.detach())
        frac = src - base
        base = base.long()
        idx, wts = [], []
        strides = [math.prod(self.in_shape[i + 1:]) for i in range(d)]
        for corner in itertools.product((0, 1), repeat=d):
            cidx = base + torch.as_tensor(corner, device=self.device)
            w = torch.ones(p.shape[0], dtype=self.dtype, device=self.device)
            inside = torch.ones(p.shape[0], dtype=torch.bool, device=self.device)
            lin = torch.zeros(p.shape[0], dtype=torch.long, device=self.device)
            for a in range(d):
                w = w * (frac[:, a] if corner[a] else 1 - frac[:, a])
                inside &= (cidx[:, a] >= 0) & (cidx[:, a] < self.in_shape[a])
                lin = lin + cidx[:, a].clamp(0, self.in_shape[a] - 1) * strides[a]
            idx.append(lin)
            wts.append(w * inside.to(self.dtype))
        return torch.stack(idx), torch.stack(wts)  # (2^d, N)

    def forward(self, x):
        _spatial(x, self.in_shape, "Warp.forward")
        idx, w = self._cache if self._cache is not None else self._weights()
        lead = tuple(x.shape[: x.ndim - self.ndim])
        flat = x.reshape(lead + (-1,))
        y = (flat[..., idx] * w).sum(dim=-2)
        return y.reshape(lead + self.out_shape)

    def adjoint(self, y):
        _spatial(y, self.out_shape, "Warp.adjoint")
        idx, w = self._cache if self._cache is not None else self._weights()
        lead = tuple(y.shape[: y.ndim - self.ndim])
        flat = y.reshape(lead + (1, -1)) * w  # (..., 2^d, N)
        out = y.new_zeros(lead + (math.prod(self.in_shape),))
        out = out.index_add(-1, idx.reshape(-1), flat.reshape(lead + (-1,)))
        return out.reshape(lead + self.in_shape)


def frame_operator(hr_shape, *, psf=None, factor=1, shift=None, rotation=0.0, boundary: str = "circular",
                   dtype=torch.float32, device=None) -> LinearOperator:
    """The forward model of one frame, ``D H W(theta)``: warp, blur, downsample.

    Parameters
    ----------
    hr_shape : tuple of int
        Shape of the high-resolution image ``x``.
    psf : array_like, optional
        PSF on the high-resolution grid; none means no blur.
    factor : int or sequence of int
        Downsampling factor (``hr_shape`` must be divisible by it).
    shift, rotation : the frame's motion, see :class:`Warp`.
    """
    hr_shape = tuple(int(n) for n in hr_shape)
    ops: list[LinearOperator] = []
    if np.any(np.asarray(factor) != 1):
        ops.append(Downsample(factor, hr_shape))
    if psf is not None:
        ops.append(Blur(psf, hr_shape, boundary=boundary, dtype=dtype, device=device))
    moving = shift is not None or (not isinstance(rotation, torch.Tensor) and np.any(np.asarray(rotation) != 0)) \
        or isinstance(rotation, torch.Tensor)
    if moving:
        ops.append(Warp(hr_shape, shift=shift, rotation=rotation, dtype=dtype, device=device))
    if not ops:
        return Identity(hr_shape)
    return ops[0] if len(ops) == 1 else Compose(*ops)
