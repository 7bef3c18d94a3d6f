"""Point spread functions: analytic Gaussians and measured PSFs."""

from __future__ import annotations

import math

import numpy as np

from mire._validate import check_image


def _per_axis(value, ndim: int, name: str) -> tuple:
    vals = np.atleast_1d(np.asarray(value, dtype=float))
    if vals.size == 1:
        vals = np.repeat(vals, ndim)
    if vals.size != ndim:
        raise ValueError(f"{name} has {vals.size} values but ndim={ndim}")
    return tuple(float(v) for v in vals)


def gaussian_psf(sigma, *, ndim: int | None = None, size=None, truncate: float = 4.0) -> np.ndarray:
    """Sampled Gaussian PSF, normalized to sum 1.

    Parameters
    ----------
    sigma : float or sequence of float
        Standard deviation in pixels, one value or one per axis (anisotropic
        voxels: e.g. ``(2.0, 0.8, 0.8)`` for ZYX).
    ndim : int, optional
        Number of dimensions; required when ``sigma`` is a scalar.
    size : int or sequence of int, optional
        Kernel shape (odd sizes keep the peak on the centre pixel). Default
        ``2 * ceil(truncate * sigma) + 1`` per axis.
    truncate : float
        Radius of the default support in units of sigma.

    Returns
    -------
    psf : ndarray of float64
        The kernel; its centre pixel is ``np.array(psf.shape) // 2``.

    Examples
    --------
    >>> psf = gaussian_psf(1.0, ndim=3)
    >>> psf.shape, round(float(psf.sum()), 6)
    ((9, 9, 9), 1.0)
    """
    if ndim is None:
        if np.ndim(sigma) == 0:
            raise ValueError("gaussian_psf: give ndim when sigma is a scalar")
        ndim = len(sigma)
    sig = _per_axis(sigma, ndim, "sigma")
    if any(s < 0 or not math.isfinite(s) for s in sig):
        raise ValueError(f"gaussian_psf: sigma must be finite and >= 0, got {sig}")
    if size is None:
        shape = tuple(2 * int(math.ceil(truncate * s)) + 1 for s in sig)
    else:
        shape = tuple(int(v) for v in _per_axis(size, ndim, "size"))
        if any(n < 1 for n in shape):
            raise ValueError(f"gaussian_psf: size must be >= 1, got {shape}")
    from mire.io.gate import check_fits_memory

    # before allocating: a mistyped sigma (gaussian:100) would otherwise take all memory and be
    # killed, not refused; the grids, the exponent and the kernel are float64 / int64 each
    check_fits_memory(f"gaussian_psf(sigma={sigma})", math.prod(shape) * 8 * (len(shape) + 3),
                      what=f"a {'x'.join(map(str, shape))} kernel",
                      hint="choose a smaller sigma (the kernel spans 2*ceil(4*sigma)+1 pixels per axis)")
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    arg = np.zeros(shape)
    for g, s in zip(grids, sig):
        if s == 0:
            arg = np.where(g == 0, arg, np.inf)  # a delta along this axis
        else:
            arg = arg + (g / s) ** 2
    psf = np.exp(-0.5 * arg)
    return psf / psf.sum()


def normalize_psf(psf, *, background: float | str | None = "border", center: bool = False) -> np.ndarray:
    """Make a measured PSF usable: subtract background, clip negatives, sum to 1.

    Parameters
    ----------
    psf : array_like
        A measured PSF (e.g. an averaged bead image).
    background : float, "border" or None
        Value subtracted before clipping: a number, the median of the outer
        one-pixel shell (``"border"``), or nothing.
    center : bool
        Roll the PSF so its centre of mass sits on the centre pixel.
    """
    arr = check_image(psf, name="psf").astype(np.float64)
    if background == "border":
        shell = np.ones(arr.shape, bool)
        shell[tuple(slice(1, -1) if n > 2 else slice(None) for n in arr.shape)] = False
        bg = float(np.median(arr[shell])) if shell.any() else 0.0
    elif background is None:
        bg = 0.0
    else:
        bg = float(background)
    arr = np.clip(arr - bg, 0, None)
    total = arr.sum()
    if not total > 0:
        raise ValueError("psf has no positive signal after background subtraction")
    arr /= total
    if center:
        grids = np.meshgrid(*[np.arange(n) for n in arr.shape], indexing="ij")
        com = [float((g * arr).sum()) for g in grids]
        shift = [int(round(n // 2 - c)) for n, c in zip(arr.shape, com)]
        arr = np.roll(arr, shift, axis=tuple(range(arr.ndim)))
    return arr


def load_psf(path, *, background: float | str | None = "border", center: bool = False) -> np.ndarray:
    """Read a measured PSF from any file :func:`mire.io.imread` understands and normalize it."""
    from mire.io import imread

    return normalize_psf(np.asarray(imread(path)), background=background, center=center)


def parse_psf(spec, *, ndim: int, image_shape=None) -> np.ndarray:
    """PSF from a user-facing spec: an array, ``"gaussian:0.9"``, ``"gaussian:2,0.9,0.9"`` or a file path.

    ``image_shape``: the image it will blur; a Gaussian spec whose kernel would be much larger than
    it (over 2n + 1 pixels along an axis of n) is refused before the kernel is built.
    """
    if not isinstance(spec, str):
        return normalize_psf(spec, background=None)
    if spec.lower().startswith("gaussian:"):
        try:
            sig = [float(v) for v in spec.split(":", 1)[1].split(",")]
        except ValueError as exc:
            raise ValueError(f"cannot read PSF spec {spec!r}: expected 'gaussian:SIGMA' or 'gaussian:SZ,SY,SX'") from exc
        sigma = sig[0] if len(sig) == 1 else sig
        if image_shape is not None and len(image_shape) == ndim and all(math.isfinite(v) for v in sig):
            # the default kernel size of gaussian_psf, known before any allocation
            size = [2 * int(math.ceil(4.0 * abs(v))) + 1 for v in _per_axis(sigma, ndim, "sigma")]
            if any(k > 2 * n + 1 for k, n in zip(size, image_shape)):
                raise ValueError(f"PSF {spec!r} makes a {'x'.join(map(str, size))} kernel, much larger than the "
                                 f"image {tuple(image_shape)}; is the sigma in pixels?")
        return gaussian_psf(sigma, ndim=ndim)
    return load_psf(spec)
