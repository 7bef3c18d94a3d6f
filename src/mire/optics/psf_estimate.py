"""Estimate a PSF from an image of sub-resolution (or known-size) fluorescent beads."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mire._validate import check_image


def _background(image: np.ndarray) -> float:
    """Background level: the median of the dimmest half, robust to bright beads covering much of the field."""
    return float(np.median(image[image <= np.median(image)]))


def _find_beads(image: np.ndarray, *, threshold: float, min_separation: int) -> list[tuple]:
    """Integer positions of isolated local maxima above ``threshold``, brightest first."""
    smooth = ndimage.gaussian_filter(image, 1.0)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=2 * min_separation + 1)) & (smooth > threshold)
    coords = np.argwhere(peaks)
    order = np.argsort(-smooth[tuple(coords.T)])
    return [tuple(int(v) for v in coords[i]) for i in order]


def _subpixel_centre(image: np.ndarray, peak, radius: int) -> np.ndarray:
    """Centre of mass of the background-free intensity in a window around ``peak``."""
    sl = tuple(slice(max(p - radius, 0), p + radius + 1) for p in peak)
    win = np.clip(image[sl], 0, None)
    # only the upper half of the bead's intensity: the tails are where noise and neighbours live
    win = np.where(win > 0.5 * win.max(), win, 0)
    grids = np.meshgrid(*[np.arange(s.start, s.start + n) for s, n in zip(sl, win.shape)], indexing="ij")
    total = win.sum()
    return np.array([float((g * win).sum() / total) for g in grids])


def _sphere(diameter: float, ndim: int) -> np.ndarray:
    r = diameter / 2.0
    n = 2 * int(np.ceil(r)) + 3
    # supersample the ball so small beads get a smooth, correctly normalized profile
    ss = 5
    g = (np.arange(n * ss) + 0.5) / ss - n / 2
    grids = np.meshgrid(*([g] * ndim), indexing="ij")
    inside = (sum(v**2 for v in grids) <= r**2).astype(float)
    ball = inside.reshape(sum(((n, ss) for _ in range(ndim)), ())).mean(axis=tuple(range(1, 2 * ndim, 2)))
    return ball / ball.sum()


def estimate_psf(bead_image, *, size=None, bead_diameter: float = 0.0, max_beads: int = 50,
                 threshold: float | None = None, n_iter: int = 30) -> np.ndarray:
    """Estimate the PSF from an image of fluorescent beads.

    Steps: subtract the background (median of the dimmer half of the image), find isolated beads
    (local maxima of the smoothed image above ``threshold``, default half-way between the
    background and the brightest bead), locate each at sub-pixel precision (centre of mass of its
    upper half), resample a ``size`` window centred on it (spline shift), average the beads
    weighted by brightness, clip negatives and normalize to sum 1. With ``bead_diameter > 0`` the
    bead's own size is removed by Richardson-Lucy deconvolution of the average with a ball of that
    diameter (``n_iter`` iterations).

    Parameters
    ----------
    bead_image : array_like
        2D or 3D image with one or more beads.
    size : int or tuple of int, optional
        Output shape (odd sizes keep the peak on the centre pixel). Default: the largest odd
        window around the brightest bead that fits in the image, at most 31 per axis.
    bead_diameter : float
        Bead diameter in pixels (0: treat beads as points).
    max_beads : int
        Average at most this many beads (brightest first).
    threshold : float, optional
        Detection threshold on the background-subtracted image.
    n_iter : int
        Deconvolution iterations for ``bead_diameter > 0``.

    Returns
    -------
    psf : ndarray of float64
        Sum 1, peak at ``np.array(psf.shape) // 2``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from mire.optics import gaussian_psf
    >>> from mire.optics.psf_estimate import estimate_psf
    >>> img = np.zeros((64, 64)); img[20, 30] = img[44, 40] = 1000.0
    >>> img = ndimage.gaussian_filter(img, 1.5) + 10
    >>> psf = estimate_psf(img, size=15)
    >>> bool(np.abs(psf - gaussian_psf(1.5, ndim=2, size=15)).max() < 2e-3)
    True
    """
    img = check_image(bead_image, name="bead_image", ndim=(2, 3)).astype(np.float64)
    if bead_diameter < 0 or not np.isfinite(bead_diameter):
        raise ValueError(f"bead_diameter must be >= 0 pixels, got {bead_diameter}")
    sub = img - _background(img)
    if not np.max(sub) > 0:
        raise ValueError("bead_image has no signal above its background (is it blank?)")
    peak_val = float(ndimage.gaussian_filter(sub, 1.0).max())
    thr = 0.5 * peak_val if threshold is None else float(threshold)
    if size is None:
        first = np.unravel_index(np.argmax(ndimage.gaussian_filter(sub, 1.0)), sub.shape)
        half = [min(p, n - 1 - p, 15) for p, n in zip(first, sub.shape)]
        shape = tuple(2 * h + 1 for h in half)
    else:
        shape = tuple(int(v) for v in np.broadcast_to(np.asarray(size), (img.ndim,)))
    if any(n < 3 for n in shape):
        raise ValueError(f"PSF size {shape} is too small (need at least 3 pixels per axis)")
    half = np.array(shape) // 2
    sep = max(3, int(np.ceil(bead_diameter)) + 2)
    beads = _find_beads(sub, threshold=thr, min_separation=sep)
    stack, weights = [], []
    for peak in beads:
        centre = _subpixel_centre(sub, peak, radius=max(2, int(np.ceil(bead_diameter / 2)) + 2))
        lo = np.floor(centre).astype(int) - half - 1
        hi = lo + np.array(shape) + 2
        if np.any(lo < 0) or np.any(hi > np.array(sub.shape)):
            continue  # too close to the border for a full window
        win = sub[tuple(slice(a, b) for a, b in zip(lo, hi))]
        # move the sub-pixel centre onto the window's centre pixel (cubic spline, values near edges kept)
        frac = centre - np.floor(centre)
        win = ndimage.shift(win, -frac, order=3, mode="nearest")[tuple(slice(1, 1 + n) for n in shape)]
        stack.append(win)
        weights.append(win.sum())
        if len(stack) >= max_beads:
            break
    if not stack:
        raise ValueError(f"no bead found with a full {shape} window inside the image; pass a smaller size")
    w = np.clip(np.asarray(weights), 1e-12, None)
    psf = np.tensordot(w / w.sum(), np.stack(stack), axes=1)
    psf = np.clip(psf - np.median(_shell(psf)), 0, None)
    if bead_diameter > 0:
        from mire.restore.richardson_lucy import richardson_lucy

        ball = _sphere(bead_diameter, img.ndim)
        if all(b <= s for b, s in zip(ball.shape, shape)):
            psf = richardson_lucy(psf / psf.sum(), ball, n_iter=n_iter, boundary="zero", device="cpu",
                                  acceleration=None, background=0, read_noise=0)  # the classic RL
            psf = np.clip(np.asarray(psf, dtype=np.float64), 0, None)
    total = psf.sum()
    if not total > 0:
        raise ValueError("the averaged bead has no positive signal after background subtraction")
    return psf / total


def _shell(arr: np.ndarray) -> np.ndarray:
    inner = np.zeros(arr.shape, bool)
    inner[tuple(slice(1, -1) for _ in arr.shape)] = True
    return arr[~inner]
