"""Simulation protocols: degraded test images (paper-2020) and multi-frame low-res sequences.

Both go through the shared forward model of :mod:`mire.optics.operators` (``Blur``,
``Warp``, ``Downsample``), so the solvers that invert it see exactly the model the
data were made with.
"""

from __future__ import annotations

import numpy as np
import torch

from mire._validate import check_image
from mire.optics.noise import NOISE_MODELS, add_noise
from mire.optics.operators import Blur, frame_operator
from mire.optics.psf import gaussian_psf, parse_psf

#: Blur sigma (voxels) of the paper-2020 blur levels B1 / B2 / B3.
BLUR_SIGMAS = {"B1": 0.4, "B2": 0.8, "B3": 1.2}
#: Gaussian noise SD as a fraction of the image peak for N1 / N2 / N3 (500, 1000, 1500 on a peak of 7000).
NOISE_FRACTIONS = {"N1": 1 / 14, "N2": 1 / 7, "N3": 3 / 14}
#: The nine conditions of Ishii et al. 2020, Table 2: "N1-B1", "N1-B2", ..., "N3-B3".
CONDITIONS = tuple(f"{n}-{b}" for n in NOISE_FRACTIONS for b in BLUR_SIGMAS)

# np.pad modes for the non-periodic boundaries; scipy.ndimage's names, so that
# boundary="reflect" means the same as gaussian_filter(mode="reflect").
_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge"}
BOUNDARIES = (*_PAD_MODES, "zero", "circular")


def parse_condition(condition: str) -> tuple[float, float]:
    """``"N2-B3"`` -> (blur sigma in voxels, noise SD as a fraction of the peak).

    Examples
    --------
    >>> parse_condition("N2-B3")
    (1.2, 0.14285714285714285)
    """
    if not isinstance(condition, str) or condition.upper() not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; valid conditions are {', '.join(CONDITIONS)}")
    n, b = condition.upper().split("-")
    return BLUR_SIGMAS[b], NOISE_FRACTIONS[n]


def blur(image, psf, *, boundary: str = "reflect") -> np.ndarray:
    """Convolve ``image`` with ``psf`` through :class:`mire.optics.Blur`, in float64.

    Parameters
    ----------
    image : ndarray
    psf : ndarray
        Same number of dimensions as ``image``, centre at ``np.array(psf.shape) // 2``.
    boundary : {"reflect", "mirror", "nearest", "zero", "circular"}
        What lies outside the field of view. The first three pad the image
        (scipy.ndimage's conventions: ``"reflect"`` repeats the edge pixel,
        ``d c b a | a b c d``) and apply ``Blur(boundary="valid")`` on the padded
        image, so the result equals ``scipy.ndimage.convolve(image, psf,
        mode=boundary)``. ``"zero"`` assumes darkness outside, ``"circular"``
        wraps around.

    Returns
    -------
    ndarray of float64, same shape as ``image``.

    Examples
    --------
    >>> import numpy as np
    >>> from mire.optics import gaussian_psf
    >>> out = blur(np.ones((8, 8)), gaussian_psf(1.0, ndim=2))
    >>> bool(np.allclose(out, 1.0))  # reflection keeps a flat image flat
    True
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of {', '.join(BOUNDARIES)}")
    image = np.asarray(image, dtype=np.float64)
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != image.ndim:
        raise ValueError(f"psf is {psf.ndim}D but the image is {image.ndim}D")
    if boundary in _PAD_MODES:
        # "valid" needs the unknown to extend by the PSF support: psf.shape - 1 in total,
        # split like Blur's centre convention (c before, k - 1 - c after).
        pad = [(k // 2, k - 1 - k // 2) for k in psf.shape]
        x = np.pad(image, pad, mode=_PAD_MODES[boundary])
        op = Blur(psf, image.shape, boundary="valid", dtype=torch.float64, device="cpu")
    else:
        x = image
        op = Blur(psf, image.shape, boundary=boundary, dtype=torch.float64, device="cpu")
    with torch.no_grad():
        return op.forward(torch.from_numpy(np.ascontiguousarray(x))).numpy()


def simulate(image, *, condition: str | None = "N2-B2", seed=0, blur_sigma=None, noise: str | None = None,
             noise_sigma: float | None = None, gain: float | None = None, psf=None,
             boundary: str = "reflect") -> np.ndarray:
    """Degrade a clean image as a microscope would: PSF blur, then detector noise.

    The default reproduces the paper-2020 protocol (Ishii et al. 2020, Table 2):
    ``I_test = I * G_sigma + N`` with an isotropic Gaussian PSF of sigma 0.4 / 0.8 /
    1.2 voxels for B1 / B2 / B3 (3D for a 3D stack, 2D for a 2D image) and white
    Gaussian noise of SD ``peak/14``, ``peak/7``, ``3 peak/14`` for N1 / N2 / N3,
    ``peak = image.max()``. On DIADEM OP_1 this gives input PSNRs of 22.92 / 16.89 /
    13.36 dB for N1-B1 / N2-B2 / N3-B3 (paper: 22.89 / 16.75 / 13.26).

    Parameters
    ----------
    image : array_like
        Clean image, 2D or 3D (any numeric dtype; computed in float64).
    condition : str or None
        One of :data:`CONDITIONS` (``"N1-B1"`` ... ``"N3-B3"``), or None to give
        every parameter explicitly (no blur and no noise unless asked for).
    seed : int, numpy.random.Generator or None
        Seed of the noise.
    blur_sigma : float or sequence of float, optional
        Gaussian PSF sigma in pixels (one per axis for anisotropic voxels);
        overrides the condition's blur. 0 means no blur.
    noise : {"gaussian", "poisson", "poisson-gaussian", "none"}, optional
        Noise model; default Gaussian (the paper's). With a condition, the
        condition's SD ``s = fraction * peak`` sets the strength: Poisson gets
        ``gain = s^2 / peak`` (shot-noise SD ``s`` at the peak); Poisson-Gaussian
        splits the variance at the peak in half between shot and read noise.
    noise_sigma : float, optional
        SD of the Gaussian (read) noise in intensity units; overrides the condition.
    gain : float, optional
        Intensity units per photon for the Poisson models (see
        :func:`mire.optics.add_noise`); overrides the condition. Default without a
        condition: 1 (the image values are photon counts).
    psf : array_like or str, optional
        A measured PSF (array, file path) or a spec like ``"gaussian:2,0.9,0.9"``
        (see :func:`mire.optics.parse_psf`); replaces the Gaussian blur.
    boundary : {"reflect", "mirror", "nearest", "zero", "circular"}
        How the blur treats the edges, see :func:`blur`. The default reflection
        neither darkens the borders (as ``"zero"`` does) nor mixes opposite edges
        (``"circular"``). For the paper's input PSNRs the choice hardly matters
        (OP_1: "reflect" and "zero" differ by < 0.001 dB), because the noise
        dominates the error and the stacks are dark at their borders.

    Returns
    -------
    degraded : ndarray of float64, same shape as ``image``. Not clipped: Gaussian
        noise makes some values negative, as in the paper.

    Raises
    ------
    ValueError
        Unknown condition (the message lists the valid ones), NaN / inf or empty
        image, image not 2D/3D, both ``psf`` and ``blur_sigma``, a noise model that
        misses its strength, or a negative image under Poisson noise.

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.zeros((16, 32, 32)); clean[8, 16, 16] = 100.0
    >>> noisy = simulate(clean, condition="N1-B2", seed=0)
    >>> noisy.shape, noisy.dtype
    ((16, 32, 32), dtype('float64'))
    >>> round(float(np.std(noisy - simulate(clean, condition="N1-B2", noise="none"))), 1)  # 100/14
    7.1
    """
    img = check_image(image, ndim=(2, 3), allow_bool=False).astype(np.float64)
    cond_sigma = cond_frac = None
    if condition is not None:
        cond_sigma, cond_frac = parse_condition(condition)
    if psf is not None and blur_sigma is not None:
        raise ValueError("give either psf or blur_sigma, not both")
    noise = "gaussian" if noise is None else str(noise).lower()
    if noise not in (*NOISE_MODELS, "none"):
        raise ValueError(f"unknown noise model {noise!r}; choose one of {', '.join(NOISE_MODELS)}, none")

    # -- blur: the shared forward model ------------------------------------------------
    if psf is not None:
        kernel = parse_psf(psf, ndim=img.ndim)
        if kernel.ndim != img.ndim:
            raise ValueError(f"psf is {kernel.ndim}D but the image is {img.ndim}D")
    else:
        sigma = blur_sigma if blur_sigma is not None else cond_sigma
        kernel = None if sigma is None or np.all(np.asarray(sigma) == 0) else gaussian_psf(sigma, ndim=img.ndim)
    out = blur(img, kernel, boundary=boundary) if kernel is not None else img.copy()
    if kernel is not None and img.min() >= 0 and kernel.min() >= 0:
        # a non-negative image blurred by a non-negative PSF is non-negative; FFT round-off
        # (~1e-15) is not, and would make Poisson noise reject it
        np.maximum(out, 0.0, out=out)

    # -- noise, scaled to the peak of the clean image ---------------------------------
    if noise == "none":
        return out
    peak = float(img.max())
    level = None if cond_frac is None else cond_frac * peak  # the condition's noise SD
    explicit = noise_sigma is not None and (noise == "gaussian" or gain is not None)
    if level is not None and peak <= 0 and not explicit:
        raise ValueError(f"the condition's noise is a fraction of the image peak, but the peak (max) is {peak:g}; "
                         "give noise_sigma (and gain) explicitly")
    if noise == "gaussian":
        sd = noise_sigma if noise_sigma is not None else level
        if sd is None:
            raise ValueError("Gaussian noise needs noise_sigma (or a condition)")
        return add_noise(out, model="gaussian", sigma=sd, seed=seed)
    if noise == "poisson":
        if noise_sigma is not None:
            raise ValueError("noise='poisson' takes no noise_sigma; use 'poisson-gaussian' to add read noise")
        g = gain if gain is not None else (level**2 / peak if level is not None else 1.0)
        return add_noise(out, model="poisson", gain=g, seed=seed)
    # poisson-gaussian: by default half of the condition's variance at the peak from each part
    g = gain if gain is not None else (level**2 / (2 * peak) if level is not None else 1.0)
    sd = noise_sigma if noise_sigma is not None else (level / np.sqrt(2) if level is not None else None)
    if sd is None:
        raise ValueError("Poisson-Gaussian noise needs noise_sigma (the read-noise SD) or a condition")
    return add_noise(out, model="poisson-gaussian", sigma=sd, gain=g, seed=seed)


def _per_frame(value, n_frames: int, tail: tuple, name: str, rng) -> np.ndarray:
    """A scalar ``a`` draws uniform values in [-a, a]; an array is taken as the per-frame values."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        if not np.isfinite(arr) or arr < 0:
            raise ValueError(f"{name} must be a finite amplitude >= 0 or an array of shape {(n_frames, *tail)}")
        return rng.uniform(-float(arr), float(arr), (n_frames, *tail))
    if arr.shape != (n_frames, *tail):
        raise ValueError(f"{name} array must have shape {(n_frames, *tail)} (one per frame), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr.copy()


def _occlusion_mask(shape: tuple, fraction: float, rng) -> np.ndarray:
    """Random axis-aligned boxes (10-35 % of each side) until ``fraction`` of the area is covered."""
    mask = np.zeros(shape, dtype=bool)
    if fraction <= 0:
        return mask
    target = fraction * mask.size
    while mask.sum() < target:
        box = []
        for n in shape:
            side = int(rng.integers(max(1, round(0.10 * n)), max(2, round(0.35 * n)) + 1))
            side = min(side, n)
            start = int(rng.integers(0, n - side + 1))
            box.append(slice(start, start + side))
        mask[tuple(box)] = True
    return mask


def simulate_frames(image, *, n_frames: int = 15, factor=4, shift=1.0, rotation=0.05, psf_sigma=1.0,
                    noise: float = 0.02, occlusion: float = 0.0, seed=0) -> tuple[np.ndarray, dict]:
    """Low-resolution frames of a moving object: the multi-frame super-resolution protocol.

    Frame ``t`` is ``y_t = D H W(theta_t) x + n_t`` (paper Fig. 1), built with
    :func:`mire.optics.frame_operator` in float64: ``W`` warps the high-res image,
    ``H`` blurs with a Gaussian PSF on the high-res grid (zero boundary, since the
    warp already fills the outside with zeros), ``D`` integrates blocks of
    ``factor`` pixels, and ``n_t`` is white Gaussian noise. Occlusions then
    replace random boxes of some frames with junk (values unrelated to ``x``:
    the "very low precision" pixels a robust likelihood must learn to ignore).

    **Motion convention** (that of :class:`mire.optics.Warp`, in high-res index
    coordinates, axes in array order (row, col) or (z, row, col)): with ``c`` the
    array centre ``(n - 1) / 2``, ``R`` the rotation by ``rotations[t]`` radians
    (in 3D a rotation in the YX plane), and ``s = shifts[t]``,
    ``(W x)(p) = x(R^T (p - c - s) + c)``: the object is rotated about the centre
    by ``rotations[t]`` and then moved by ``+s`` (a positive shift moves it toward
    higher indices). Rebuild frame ``t`` exactly with::

        A = frame_operator(image.shape, psf=truth["psf"], factor=truth["factor"],
                           shift=truth["shifts"][t], rotation=truth["rotations"][t],
                           boundary=truth["boundary"], dtype=torch.float64)

    Parameters
    ----------
    image : array_like
        High-resolution image, 2D or 3D; its shape must be divisible by ``factor``.
    n_frames : int
        Number of frames T.
    factor : int or sequence of int
        Downsampling factor per axis (4 means 4x4 pixels -> 1 in 2D).
    shift : float or array of shape (T, ndim)
        Amplitude ``a``: shifts uniform in ``[-a, a]`` high-res pixels on every
        axis; or the shifts themselves.
    rotation : float or array of shape (T,)
        Amplitude in radians (uniform in ``[-a, a]``), or the angles themselves.
    psf_sigma : float or sequence of float
        Gaussian PSF sigma in high-res pixels (0: no blur).
    noise : float
        Noise SD as a fraction of the image peak (``max(image)``).
    occlusion : float in [0, 1)
        Fraction of each frame's area covered by occluding boxes (the boxes may
        overlap, so the cover is at least this and a little more).
    seed : int or numpy.random.Generator
        One seed drives motion, noise and occlusions.

    Returns
    -------
    frames : ndarray of float64, shape (T, *lr_shape)
    truth : dict
        ``"shifts"`` (T, ndim) high-res pixels, ``"rotations"`` (T,) radians,
        ``"psf_sigma"``, ``"psf"`` (the kernel used), ``"factor"`` (tuple per axis),
        ``"boundary"`` (of the blur), ``"noise_sigma"`` (absolute SD),
        ``"occlusion_masks"`` (T, *lr_shape) bool, True where a frame is junk.

    Examples
    --------
    >>> import numpy as np
    >>> frames, truth = simulate_frames(np.random.default_rng(0).random((64, 64)), n_frames=5, seed=1)
    >>> frames.shape, truth["shifts"].shape, truth["rotations"].shape
    ((5, 16, 16), (5, 2), (5,))
    """
    img = check_image(image, ndim=(2, 3), allow_bool=False).astype(np.float64)
    if int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames}")
    n_frames = int(n_frames)
    fac = np.asarray(factor)
    if fac.ndim > 1 or fac.size not in (1, img.ndim):
        raise ValueError(f"factor must be one integer or one per axis ({img.ndim}), got {factor}")
    fac = np.broadcast_to(fac.ravel(), (img.ndim,))
    if np.any(fac < 1) or np.any(fac != np.round(fac)):
        raise ValueError(f"factor must be a positive integer per axis, got {factor}")
    fac = tuple(int(v) for v in fac)
    if any(n < f for n, f in zip(img.shape, fac)):  # else the crop suggested below would be empty
        raise ValueError(f"image shape {img.shape} is smaller than the downsampling factor {fac} on an axis: "
                         "a frame would have no pixel")
    if any(n % f for n, f in zip(img.shape, fac)):
        raise ValueError(f"image shape {img.shape} is not divisible by the downsampling factor {fac}; "
                         f"crop it to {tuple(n - n % f for n, f in zip(img.shape, fac))} first")
    noise = float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a fraction of the peak >= 0, got {noise}")
    occlusion = float(occlusion)
    if not 0 <= occlusion < 1:
        raise ValueError(f"occlusion must be a fraction in [0, 1), got {occlusion}")

    rng = np.random.default_rng(seed)
    shifts = _per_frame(shift, n_frames, (img.ndim,), "shift", rng)
    rotations = _per_frame(rotation, n_frames, (), "rotation", rng)
    psf = None if np.all(np.asarray(psf_sigma) == 0) else gaussian_psf(psf_sigma, ndim=img.ndim)
    peak = float(img.max())
    noise_sigma = noise * peak
    lr_shape = tuple(n // f for n, f in zip(img.shape, fac))

    x = torch.from_numpy(np.ascontiguousarray(img))
    frames = np.empty((n_frames, *lr_shape))
    masks = np.zeros((n_frames, *lr_shape), dtype=bool)
    lo, hi = float(img.min()), peak
    for t in range(n_frames):
        op = frame_operator(img.shape, psf=psf, factor=fac, shift=shifts[t], rotation=float(rotations[t]),
                            boundary="zero", dtype=torch.float64, device="cpu")
        with torch.no_grad():
            frames[t] = op.forward(x).numpy()
        if noise_sigma > 0:
            frames[t] += rng.normal(0.0, noise_sigma, lr_shape)
        masks[t] = _occlusion_mask(lr_shape, occlusion, rng)
        # junk: uniform over the image's range, so it is neither obviously dark nor bright
        frames[t][masks[t]] = rng.uniform(lo, hi, int(masks[t].sum()))
    truth = {
        "shifts": shifts, "rotations": rotations, "psf_sigma": psf_sigma, "psf": psf, "factor": fac,
        "boundary": "zero", "noise_sigma": noise_sigma, "occlusion_masks": masks,
    }
    return frames, truth
