"""The multi-frame forward model y_t = D H W(theta_t) x, batched over frames.

Built from the shared operators of :mod:`mire.optics` (one ``Warp`` per frame, one
``Blur`` and one ``Downsample`` applied to all frames at once), so it is exactly
``mire.optics.frame_operator`` for each frame, only without rebuilding the blur
for every frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mire._validate import check_image
from mire.optics import Blur, Downsample, Warp, parse_psf

DTYPE = torch.float64  # CG and marginal-likelihood terms need the precision


def check_frames(frames, *, factor, name: str = "frames") -> tuple[np.ndarray, tuple[int, ...]]:
    """Validate a (T, Y, X) / (T, Z, Y, X) stack and the factor; return float64 frames and the per-axis factor.

    A list of frames of different shapes, NaNs, a factor < 1 or a non-integer factor raise
    a ``ValueError`` that says which.
    """
    if isinstance(frames, (list, tuple)):
        shapes = {np.shape(f) for f in frames}
        if len(shapes) > 1:
            raise ValueError(f"{name}: all frames must have the same shape, got shapes {sorted(shapes)}")
    arr = check_image(frames, name=name, ndim=(3, 4), allow_bool=False).astype(np.float64)
    if arr.shape[0] < 1:
        raise ValueError(f"{name} holds no frame")
    d = arr.ndim - 1
    try:
        f = np.asarray(factor, dtype=float)
    except (TypeError, ValueError):
        f = None
    if f is None or f.ndim > 1 or f.size not in (1, d):
        raise ValueError(f"factor must be one number or {d} numbers (one per spatial axis), got {factor!r}")
    f = np.broadcast_to(f, (d,))
    if np.any(~np.isfinite(f)) or np.any(f < 1) or np.any(f != np.round(f)):
        raise ValueError(f"factor must be an integer >= 1 on every axis, got {factor!r}")
    return arr, tuple(int(v) for v in f)


def make_psf(psf, psf_sigma, ndim: int):
    """The PSF on the high-res grid: an array, a spec string, or a Gaussian of ``psf_sigma`` (None / 0: no blur)."""
    if psf is not None:
        return parse_psf(psf, ndim=ndim)
    if psf_sigma is None or np.all(np.asarray(psf_sigma, dtype=float) == 0):
        return None
    from mire.optics import gaussian_psf

    sig = np.asarray(psf_sigma, dtype=float)
    if np.any(sig < 0) or not np.all(np.isfinite(sig)):
        raise ValueError(f"psf_sigma must be finite and >= 0, got {psf_sigma!r}")
    return gaussian_psf(sig if sig.ndim else float(sig), ndim=ndim)


class FrameModel:
    """``A x = [D H W(theta_t) x]_t`` for all frames, with the exact adjoint.

    Parameters
    ----------
    hr_shape : tuple of int
        High-resolution grid of the unknown ``x``: the frames' field of view (``lr_shape *
        factor``) plus ``margin`` on each side.
    factor : tuple of int
        Downsampling per axis.
    psf : ndarray or None
        PSF on the high-res grid.
    boundary : str
        Blur boundary (:class:`mire.optics.Blur`): ``"zero"`` (default) matches a warp that
        fills the outside with zeros and is what ``mire.optics.simulate_frames`` uses.
    params : (T, ndim + 1) array
        Per-frame shift (high-res px, Warp convention) and rotation (radians).

    margin : tuple of int
        High-res pixels of ``x`` beyond the reference frame's field of view on each side:
        the other frames see a little of the scene outside it (and, in simulations, the
        empty band the warp leaves), which a model without margin would have to explain
        with the wrong pixels.
    """

    def __init__(self, hr_shape, factor, psf, params, *, margin=0, boundary: str = "zero", device=None):
        self.fov_shape = tuple(int(n) for n in hr_shape)  # the reference frame's field of view
        self.ndim = len(self.fov_shape)
        self.margin = tuple(int(v) for v in np.broadcast_to(np.asarray(margin, dtype=int), (self.ndim,)))
        self.hr_shape = tuple(n + 2 * m for n, m in zip(self.fov_shape, self.margin))
        self.crop = tuple(slice(m, m + n) for m, n in zip(self.margin, self.fov_shape))
        self.factor = tuple(factor)
        self.device = device or torch.device("cpu")
        self.blur = None if psf is None else Blur(psf, self.fov_shape, boundary=boundary, dtype=DTYPE,
                                                 device=self.device)
        self.down = Downsample(self.factor, self.fov_shape)
        self.lr_shape = self.down.out_shape
        self.set_params(params)

    # -- registration ---------------------------------------------------------
    def set_params(self, params) -> None:
        params = np.asarray(params, dtype=np.float64)
        if params.ndim != 2 or params.shape[1] != self.ndim + 1:
            raise ValueError(f"registration parameters must have shape (T, {self.ndim + 1}), got {params.shape}")
        self.params = params.copy()
        self.warps = [self._warp(p) for p in params]

    def _warp(self, p):
        # Warp from the padded grid to the field of view; both centres coincide
        kw = dict(out_shape=self.fov_shape, dtype=DTYPE, device=self.device)
        if isinstance(p, torch.Tensor):
            return Warp(self.hr_shape, shift=p[: self.ndim], rotation=p[self.ndim], **kw)
        if np.all(p == 0):
            return None  # the identity (a crop): skip the interpolation
        return Warp(self.hr_shape, shift=p[: self.ndim], rotation=float(p[self.ndim]), **kw)

    @property
    def n_frames(self) -> int:
        return len(self.warps)

    # -- operators ----------------------------------------------------------------
    def _optics(self, xs):
        if self.blur is not None:
            xs = self.blur.forward(xs)
        return self.down.forward(xs)

    def _optics_adjoint(self, ys):
        xs = self.down.adjoint(ys)
        return self.blur.adjoint(xs) if self.blur is not None else xs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., *hr) -> (..., T, *lr)."""
        ax = x.ndim - self.ndim
        crop = (Ellipsis,) + self.crop
        xs = torch.stack([x[crop] if w is None else w.forward(x) for w in self.warps], dim=ax)
        return self._optics(xs)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(..., T, *lr) -> (..., *hr)."""
        ax = y.ndim - self.ndim - 1
        u = self._optics_adjoint(y)
        out = u.new_zeros(u.shape[:ax] + self.hr_shape)
        crop = (Ellipsis,) + self.crop
        for t, w in enumerate(self.warps):
            ut = u.select(ax, t)
            if w is None:
                out[crop] += ut
            else:
                out = out + w.adjoint(ut)
        return out

    def frame_forward(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """One frame's prediction with parameters ``p`` (a tensor that may require grad)."""
        return self._optics(self._warp(p).forward(x))

    def frame_jacobian(self, x: torch.Tensor, p) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction and its Jacobian w.r.t. one frame's parameters, (*lr) and (*lr, ndim + 1).

        Chain rule through the warp's sampling points: ``d(W x)/dp = grad(x)(src) . dsrc/dp``,
        with the image gradient (central differences) warped by the same ``Warp``. This is
        the derivative of the smooth image under the interpolant, which makes better
        Gauss-Newton steps than the piecewise-constant derivative of bilinear weights, and
        costs one warp instead of ``ndim + 1`` forward-mode passes through the
        differentiable ``Warp`` (the tests check both agree). Differentiable in ``x``
        (the Laplace approximation of :mod:`mire.superres.bayes_registration` needs that).
        """
        warp, coef = self.jacobian_terms(p)
        return self.apply_jacobian(x, warp, coef)

    def jacobian_terms(self, p):
        """The frame's Warp and ``dsrc_a/dp_k`` maps, shape (ndim + 1, ndim, *fov); they depend on ``p`` only."""
        d = self.ndim
        p = np.asarray(p, dtype=np.float64)
        warp = Warp(self.hr_shape, shift=p[:d], rotation=float(p[d]), out_shape=self.fov_shape, dtype=DTYPE,
                    device=self.device)
        grids = torch.meshgrid(*[torch.arange(n, dtype=DTYPE, device=self.device) for n in self.fov_shape],
                               indexing="ij")
        q = [g - (n - 1) / 2 - float(sv) for g, n, sv in zip(grids, self.fov_shape, p[:d])]  # p - c_out - s
        th = float(p[d])
        rot = np.eye(d)
        rot[-2:, -2:] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
        drot = np.zeros((d, d))
        drot[-2:, -2:] = [[-np.sin(th), -np.cos(th)], [np.cos(th), -np.sin(th)]]
        coef = torch.zeros((d + 1, d) + self.fov_shape, dtype=DTYPE, device=self.device)
        for a in range(d):
            for b in range(d):
                coef[b, a] = -float(rot[b, a])  # d src_a / d s_b = -R[b, a]
            coef[d, a] = sum(q[b] * float(drot[b, a]) for b in range(d))  # d src_a / d theta
        return warp, coef

    def apply_jacobian(self, x: torch.Tensor, warp, coef) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.ndim
        grads = torch.stack(torch.gradient(x, dim=tuple(range(d))))  # (d, *hr)
        stacked = warp.forward(torch.cat([x[None], grads]))
        wx, wg = stacked[0], stacked[1:]
        cols = (coef * wg[None]).sum(dim=1)  # (d + 1, *hr)
        out = self._optics(torch.cat([wx[None], cols]))
        return out[0], torch.movedim(out[1:], 0, -1)


def data_scale(frames: np.ndarray) -> float:
    """Intensity scale used to bring frames to about [0, 1], so default weights mean the same for any bit depth."""
    hi = float(np.percentile(frames, 99.9))
    lo = float(np.min(frames))
    s = max(abs(hi), abs(lo), hi - lo)
    return s if s > 0 else 1.0


def upsample_mean(frames: np.ndarray, factor) -> np.ndarray:
    """The frame mean, upsampled by pixel replication then cubic smoothing: the baseline and the initial x."""
    from scipy import ndimage

    mean = frames.mean(axis=0)
    return ndimage.zoom(mean, factor, order=3, mode="nearest", grid_mode=True)


def sample_size(shape) -> int:
    return int(math.prod(shape))
