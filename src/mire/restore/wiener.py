"""Wiener deconvolution, with the regularization estimated from the data when not given.

The image is padded by reflection (half the PSF support plus a margin) before the Fourier-domain
filter, so the periodic FFT sees a continuous image and the borders carry no wrap-around ringing;
the blur is the OTF of the shared :class:`mire.optics.Blur`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mire._fft import irfftn, rfftn
from mire._torch import default_device, to_numpy, to_tensor
from mire.restore._common import check_inputs, compute_dtype


def _signal_power(y_f: torch.Tensor, otf: torch.Tensor, noise_power: float, n: int, shape) -> torch.Tensor:
    """Object power spectrum model ``S(f) = A |f|^-beta`` fitted to the data.

    The raw estimate ``(|Y|^2 - n sigma^2) / |H|^2`` explodes wherever the OTF is small and the
    periodogram exceeds the noise floor by chance, so it is only trusted where the data clearly
    stand above the noise (``|Y|^2 > 3 n sigma^2``) and the OTF is not tiny; a power law (the
    usual spectrum of natural and microscopy images) fitted there in log-log extrapolates it.
    """
    d = len(shape)
    freqs = [torch.fft.fftfreq(m, device=y_f.device, dtype=otf.real.dtype) for m in shape[:-1]]
    freqs.append(torch.fft.rfftfreq(shape[-1], device=y_f.device, dtype=otf.real.dtype))
    grids = torch.meshgrid(*freqs, indexing="ij")
    radius = torch.sqrt(sum(g * g for g in grids))
    p = y_f.real**2 + y_f.imag**2
    h2 = otf.real**2 + otf.imag**2
    ok = (p > 3 * n * noise_power) & (h2 > 1e-3) & (radius > 0)
    r_min = float(1.0 / max(shape))
    if int(ok.sum()) < 10:  # hardly any signal above the noise: a flat, weak spectrum
        return torch.full_like(radius, n * noise_power)
    lr = torch.log(radius[ok])
    ls = torch.log((p[ok] - n * noise_power) / h2[ok])
    a = torch.stack([torch.ones_like(lr), lr], dim=1)
    coef = torch.linalg.lstsq(a.double(), ls.double().unsqueeze(1)).solution.squeeze(1)
    slope = float(coef[1])
    if slope > -1.0:
        # A flat or rising fit means the points above the noise are chance peaks of a noisy
        # periodogram, not signal: extrapolating it would trust the noise at high frequency and
        # blow it up by 1/|H|^2. Keep the usual falling spectrum (|f|^-2) through the same points.
        slope = -2.0
        intercept = float((ls.double() - slope * lr.double()).mean())
    else:
        intercept = float(coef[0])
    s = torch.exp(intercept + slope * torch.log(radius.clamp_min(r_min)).double()).to(radius.dtype)
    return s


def _rfft_weights(shape, device, dtype) -> torch.Tensor:
    """How many times each rfft coefficient appears in the full spectrum (1 or 2)."""
    n = shape[-1]
    w = torch.full((n // 2 + 1,), 2.0, device=device, dtype=dtype)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def gcv_balance(y_f: torch.Tensor, otf: torch.Tensor, shape, *, grid=None) -> float:
    """Constant Wiener/Tikhonov balance minimizing generalized cross-validation (Golub et al. 1979).

    For the filter ``A = |H|^2 / (|H|^2 + b)`` (diagonal in Fourier space) GCV is
    ``||(I - A) y||^2 / tr(I - A)^2``: the leave-one-out prediction error without knowing the
    noise level. It needs no spectrum model, so it cannot be fooled by chance peaks of the
    periodogram, and it costs one pass over the spectrum per candidate.
    """
    h2 = (otf.real**2 + otf.imag**2).double()
    p = (y_f.real**2 + y_f.imag**2).double()
    w = _rfft_weights(shape, p.device, p.dtype)
    grid = np.logspace(-6, 1, 57) if grid is None else grid
    best, best_b = math.inf, float(grid[0])
    for b in grid:
        damp = b / (h2 + b)
        resid = float((w * damp**2 * p).sum())
        trace = float((w * damp.expand_as(p)).sum())
        score = resid / max(trace, 1e-300) ** 2
        if score < best:
            best, best_b = score, float(b)
    return best_b


def wiener(image, psf, *, balance=None, noise_sigma=None, device=None, return_balance: bool = False):
    """Wiener deconvolution of a 2D or 3D image.

    ``X = conj(H) Y / (|H|^2 + balance)``. With ``balance=None`` the constant balance is chosen
    by generalized cross-validation (:func:`gcv_balance`), which needs no noise level; given a
    ``noise_sigma``, the per-frequency Wiener filter ``balance(f) = n sigma^2 / S(f)`` is used
    instead, with the object power spectrum ``S(f)`` a power law fitted to the data's
    periodogram where it stands above the noise.

    Parameters
    ----------
    image : array_like
        2D or 3D image.
    psf : array_like or str
        Kernel (normalized inside) or spec (``"gaussian:1.0"``, a file path).
    balance : float, optional
        Constant regularization (Tikhonov); ``None`` chooses it from the data (GCV).
    noise_sigma : float, optional
        Noise SD on the image's scale: switches to the per-frequency Wiener filter.
    device : torch device, optional
    return_balance : bool
        Also return the balance used (a float; per-frequency array with ``noise_sigma``).

    Returns
    -------
    restored : ndarray
        Same shape as ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from mire.restore import wiener
    >>> from mire.optics import gaussian_psf
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((64, 64)); truth[20:44, 28:36] = 1.0
    >>> noisy = ndimage.gaussian_filter(truth, 1.5) + 0.02 * rng.standard_normal(truth.shape)
    >>> out = wiener(noisy, gaussian_psf(1.5, ndim=2))
    >>> bool(np.abs(out - truth).mean() < np.abs(noisy - truth).mean())
    True
    """
    from mire.optics.operators import Blur

    img, kernel = check_inputs(image, psf)
    if balance is not None and not (np.isfinite(balance) and balance > 0):
        raise ValueError(f"balance must be a positive number, got {balance}")
    device = torch.device(device) if device is not None else default_device()
    dtype = compute_dtype(img)
    # reflection padding: wide enough for the PSF to see a continuous neighbourhood at every border
    pad = [(int(k), int(k)) for k in kernel.shape]
    pad = [(min(lo, n - 1), min(hi, n - 1)) for (lo, hi), n in zip(pad, img.shape)]
    padded = np.pad(img, pad, mode="reflect") if all(n > 1 for n in img.shape) else np.pad(img, pad, mode="edge")
    op = Blur(kernel, padded.shape, boundary="circular", dtype=dtype, device=device)
    y = to_tensor(padded, dtype=dtype, device=device)
    dims = tuple(range(y.ndim))
    y_f = rfftn(y, dim=dims)
    h = op.otf
    if balance is None and noise_sigma is None:
        reg = gcv_balance(y_f, h, tuple(padded.shape))
    elif balance is None:
        s = _signal_power(y_f, h, noise_sigma**2, y.numel(), tuple(padded.shape))
        reg = (y.numel() * noise_sigma**2) / s.clamp_min(1e-12)
        reg = torch.clamp(reg, max=1e12)
    else:
        reg = float(balance)
    x_f = h.conj() * y_f / (h.real**2 + h.imag**2 + reg)
    x = irfftn(x_f, s=tuple(padded.shape), dim=dims)
    crop = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, img.shape))
    out = to_numpy(x[crop]).astype(np.float64 if dtype == torch.float64 else np.float32, copy=False)
    if return_balance:  # e.g. to apply the balance GCV chose on a crop to every block of a big volume
        return out, (float(reg) if not torch.is_tensor(reg) or reg.numel() == 1 else to_numpy(reg))
    return out
