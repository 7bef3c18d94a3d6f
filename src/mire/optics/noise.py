"""Noise models of the detector: Gaussian read noise, Poisson shot noise, and both.

The last factor of the forward model ``y = D H W x + n``. Everything is seeded with
:func:`numpy.random.default_rng` so a simulation is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np

from mire._validate import check_image

NOISE_MODELS = ("gaussian", "poisson", "poisson-gaussian")


def _check_level(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def add_noise(image, *, model: str = "gaussian", sigma: float | None = None, gain: float = 1.0,
              seed=None) -> np.ndarray:
    """Add detector noise to an image.

    Parameters
    ----------
    image : array_like
        Noise-free image (any number of dimensions), in intensity units.
    model : {"gaussian", "poisson", "poisson-gaussian"}
        ``"gaussian"``: ``image + N(0, sigma^2)`` (white read noise).
        ``"poisson"``: shot noise, ``gain * Poisson(image / gain)``: the image
        divided by ``gain`` is the expected photon count, so the variance of a
        pixel is ``gain * image`` and its mean stays ``image``.
        ``"poisson-gaussian"``: shot noise as above plus Gaussian read noise of
        SD ``sigma``.
    sigma : float, optional
        SD of the Gaussian part, in intensity units; required for ``"gaussian"``
        and ``"poisson-gaussian"``, must be left out for ``"poisson"``.
    gain : float
        Intensity units per photon (> 0) for the Poisson models. A larger gain
        means fewer photons and stronger shot noise.
    seed : int, numpy.random.Generator or None
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same noise.

    Returns
    -------
    noisy : ndarray of float64, same shape as ``image``.

    Raises
    ------
    ValueError
        Unknown ``model``, missing or negative ``sigma``, ``gain <= 0``, NaN in
        the image, or negative intensities under a Poisson model (a photon
        count cannot be negative).

    Examples
    --------
    >>> import numpy as np
    >>> noisy = add_noise(np.full((64, 64), 10.0), model="poisson", gain=0.5, seed=0)
    >>> round(float(noisy.mean()), 1), round(float(noisy.var()), 0)  # mean 10, variance gain*10
    (10.0, 5.0)
    """
    if model not in NOISE_MODELS:
        raise ValueError(f"unknown noise model {model!r}; choose one of {', '.join(NOISE_MODELS)}")
    img = check_image(image).astype(np.float64)
    rng = np.random.default_rng(seed)
    if model == "poisson" and sigma is not None:
        raise ValueError("noise model 'poisson' takes no sigma; use 'poisson-gaussian' to add read noise")
    if model in ("gaussian", "poisson-gaussian"):
        if sigma is None:
            raise ValueError(f"noise model {model!r} needs sigma (SD of the Gaussian read noise)")
        sigma = _check_level(sigma, "sigma")
    if model == "gaussian":
        return img + rng.normal(0.0, sigma, img.shape) if sigma > 0 else img

    gain = float(gain)
    if not np.isfinite(gain) or gain <= 0:
        raise ValueError(f"gain must be a finite number > 0, got {gain}")
    low = float(img.min())
    if low < 0:
        raise ValueError(f"Poisson noise needs a non-negative image (expected photon counts), "
                         f"but its minimum is {low:g}; shift or clip it first")
    noisy = gain * rng.poisson(img / gain).astype(np.float64)
    if model == "poisson-gaussian" and sigma > 0:
        noisy += rng.normal(0.0, sigma, img.shape)
    return noisy
