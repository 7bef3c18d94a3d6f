"""Choosing the TV weight from the data itself: users do not know lambda.

Three rules:

* ``"jinv"``: J-invariant hold-out calibration (Noise2Self, Batson & Royer 2019). A random
  subset J of pixels is removed from the data term (mask 0), the problem is solved, and each held-out
  pixel is predicted by the blurred estimate ``(H x)_J``. Because ``x`` never saw ``y_J`` and the noise
  is independent between pixels, ``E ||(Hx)_J - y_J||^2 = ||(Hx)_J - (H x_true)_J||^2 + |J| sigma^2``:
  the hold-out error ranks weights by how well they predict the clean blurred image, with no
  knowledge of the noise level. It is minimized over ``log(weight)`` (coarse grid, warm-started from
  strong to weak regularization, then golden-section refinement).
* ``"discrepancy"``: Morozov's discrepancy principle, the weight whose residual ``||Hx - y||^2 / n``
  equals the noise variance estimated from the finest wavelet detail (MAD rule, as ``skimage.restoration.estimate_sigma``).
* ``"sure"``: Stein's unbiased estimate of the prediction risk ``||H x - H x_true||^2 / n``,
  ``||Hx - y||^2 / n - sigma^2 + 2 sigma^2 div(y -> Hx) / n``, with the divergence estimated by
  Monte Carlo (one extra solve on ``y + eps b`` for a random probe ``b``; Ramani, Blu & Unser 2008,
  IEEE TIP 17(9)), minimized like the others. Each trial weight costs two solves.

The J-invariant rule tracks the best weight closely at moderate and high noise but collapses to
a tiny weight at low noise with a near-delta PSF (held-out pixels are then predicted well by mere
interpolation of their noisy neighbours). The discrepancy principle never failed badly but, as
Morozov's rule is known to for deconvolution, over-smooths: on the paper-2020 protocol its weight
was 2-4x the best one (median 2.5x, 8 cases on 2 DIADEM stacks). SURE estimates the risk of the
*blurred* estimate, which is the risk of the estimate itself only when the blur is close to the
identity; with a real blur it under-weights the amplified high-frequency errors and picks too small
a weight (DIADEM N2-B2: 0.018 against a best 0.025).

The default ``"auto"`` rule therefore depends on the PSF:

* near-delta PSF (``max(psf) >= 0.5`` once normalized: Gaussian SD below about 0.5 px in 3D, 0.6 px
  in 2D; the problem is then mostly denoising): ``"sure"``. On the B1 conditions (SD 0.4) of 12
  DIADEM crops (OP_1..OP_4 x N1/N2/N3) its weight was within 0.04 dB of the best of a 6-weight
  grid in every case, 0.4 dB above the rule below on average (up to 1.2 dB); on the held-out
  OP_5 and OP_6 (6 cases) within 0.08 dB of the oracle and +0.26..+1.97 dB (mean +0.78) above
  0.7 x discrepancy (experiments/results/paper2020_classical.md);
* otherwise the discrepancy weight times ``AUTO_FACTOR = 0.7``, or the SURE weight when that is
  larger (L2 data). The risk is lopsided: too small a weight falls off a cliff (synthetic N2-B2
  neurites, 24x96x96: 0.4x the discrepancy weight gave 26.6 dB, 1x gave 35.3), too large a weight
  costs little. 0.4 was first calibrated on 8 DIADEM cases; on 16 DIADEM crops (OP_1, OP_2, OP_4,
  OP_5 x N1-B1, N2-B1, N2-B2, N3-B3) 0.4 and 0.7 tie (28.38 vs 28.35 dB mean) while 1.0 loses 1 dB,
  so 0.7 keeps DIADEM and avoids the cliff. The SURE guard: on whole, > 99 % dark stacks at high
  noise the residual hardly depends on the weight (OP_6 N2-B3 central 32x192x192 crop with the paper's
  G of SD 0.9: ``|log(resid / sigma^2)|`` 0.002-0.08 over weights 1e-4..0.3), so a 2 % error of the
  noise estimate moves the discrepancy weight tenfold: 0.0053 (25.4 dB, SSIM 0.21) where the best
  is about 0.04 (41.4 dB); SURE chose 0.042 (41.4 dB) there, and 0.028 (39.9 dB, discrepancy 25.9) on
  OP_5 N3-B1. SURE's own bias with a real blur is towards too small a weight, so the larger of
  the two keeps the discrepancy's choice where it was good. The guard costs a second search (two
  solves per trial weight): on an OP_5 32x192x192 crop the search took 17.6 s instead of 5.8 s
  (the whole ``tv_deconvolve`` 21 s). Gating it on a flat discrepancy curve would not save it on
  such stacks: their curves all span less than 0.15 in ``|log(resid / sigma^2)|``.

Where the rule is SURE, :func:`tv_deconvolve` then runs :func:`choose_tv_bregman`: SURE again, over
pairs (larger weight, number of Bregman refinements). On the 15 B1 cases it gained +0.94 dB over the
single solve (+0.91 on the 6 held-out ones) and SSIM 0.82 -> 0.92. It costs 34 solves of 40 iterations
on the crop: 20.5 s on one core for the 150k-voxel crop of an OP_5 32x192x192 N2-B1 stack, against 12 s
for the weight search (there: +0.57 dB, the whole call 40 s instead of 15 s).

All run on a crop (the most textured of a few candidate blocks) with few iterations to stay cheap.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from mire._fft import irfftn, rfftn
from mire.restore._common import estimate_noise_sigma, normalize_spacing

#: The default rule's correction of the discrepancy weight (see the module docstring).
AUTO_FACTOR = 0.7
#: A normalized PSF whose peak holds at least this fraction of the light counts as near-delta.
NEAR_DELTA_PEAK = 0.5


def auto_rule(psf, data_term: str = "l2") -> str:
    """The rule ``method="auto"`` applies: ``"sure"`` for a near-delta PSF (L2 data), else ``"discrepancy"``."""
    k = np.asarray(psf, dtype=np.float64)
    near_delta = float(k.max()) >= NEAR_DELTA_PEAK * float(k.sum())
    return "sure" if near_delta and data_term == "l2" else "discrepancy"


def _search_crop(image: np.ndarray, max_voxels: int) -> np.ndarray:
    """The block of about ``max_voxels`` voxels with the most structure (std), among a small grid."""
    if image.size <= max_voxels:
        return image
    f = (max_voxels / image.size) ** (1.0 / image.ndim)
    shape = [max(8, min(n, int(round(n * f)))) for n in image.shape]
    while math.prod(shape) > max_voxels * 1.05:
        k = int(np.argmax(shape))
        shape[k] = max(8, int(shape[k] * 0.9))
    starts = [np.unique(np.linspace(0, n - s, 3).astype(int)) for n, s in zip(image.shape, shape)]
    best, best_std = None, -1.0
    for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, image.ndim):
        sl = tuple(slice(int(c), int(c) + s) for c, s in zip(corner, shape))
        sd = float(np.std(image[sl]))
        if sd > best_std:
            best, best_std = sl, sd
    return image[best]


def _holdout_mask(shape, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random(shape) < fraction


class _Sure:
    """Monte-Carlo SURE of the prediction risk ``||H x - H x_true||^2 / n`` of a solver's map ``y -> H x``.

    ``prob`` holds the data, ``prob_p`` the data plus ``eps`` times a random probe; solving both the
    same way gives the divergence of the map by a finite difference (Ramani, Blu & Unser 2008).
    """

    def __init__(self, crop, psf, *, spacing, positivity, seed, device):
        from mire.restore.tv import _make_problem

        self.sigma = estimate_noise_sigma(crop)
        opts = dict(spacing=spacing, data_term="l2", positivity=positivity, dtype=torch.float32, device=device)
        self.prob = _make_problem(crop, psf, **opts)
        rng = np.random.default_rng(seed)
        self.probe = torch.as_tensor(rng.standard_normal(self.prob.y.shape), dtype=torch.float32,
                                     device=device) * self.prob.mask
        self.eps = 0.1 * max(self.sigma, 1e-6)
        self.prob_p = _make_problem(crop, psf, **opts)
        self.prob_p.y = self.prob.y + self.eps * self.probe
        self.y, self.y_p = self.prob.y, self.prob_p.y  # the data, whatever Bregman steps do to prob.y
        self.n_obs = float(self.prob.mask.sum())

    def risk(self, x, x_p) -> float:
        from mire.restore.tv import _blur

        hx, hx_p = _blur(self.prob, x), _blur(self.prob, x_p)
        resid = float((self.prob.mask * (hx - self.y) ** 2).sum()) / self.n_obs
        df = float((self.probe * (hx_p - hx)).sum()) / self.eps / self.n_obs  # Monte-Carlo divergence of y -> H x
        return resid - self.sigma**2 + 2 * self.sigma**2 * df


def choose_tv_bregman(image, psf, *, weight, spacing=None, positivity: bool = True,
                      multipliers=(2.0, 3.5, 6.0, 10.0), max_steps: int = 3, n_iter: int = 40,
                      max_voxels: int = 150_000, seed: int = 0, return_curve: bool = False, device=None):
    """Choose a TV weight and a number of Bregman refinements together, by SURE.

    Bregman iterations (see :func:`mire.restore.tv_deconvolve`, ``bregman``) work with a larger weight
    than a single solve: each refinement gives back part of the contrast the weight took. The pairs
    tried are ``(weight, 0)`` (the single-solve weight, e.g. from :func:`choose_tv_weight`) and
    ``(m * weight, k)`` for every multiplier ``m`` and ``k = 0..max_steps``; each is scored by the
    Monte-Carlo SURE of ``y -> H x`` (the ``"sure"`` rule of :func:`choose_tv_weight`), which is the
    risk of the estimate itself when the PSF is near-delta; use it there (Gaussian noise, L2 data).

    On 15 paper-2020 B1 cases (DIADEM OP_1, OP_2, OP_4 to design it, OP_5, OP_6 held out; N1..N3)
    the pair chosen this way scored +0.94 dB over the single solve at the SURE weight
    (experiments/results/paper2020_classical.md). While designing it, SURE's pick over a grid of
    9-11 weights x 4-5 step counts was 0.02 dB (mean; at most 0.09) below the grid's best pair.

    Parameters
    ----------
    image : ndarray
        The image scaled to about [0, 1], as for :func:`choose_tv_weight`.
    psf : ndarray
        Normalized PSF.
    weight : float
        The single-solve weight the multipliers scale.
    multipliers : sequence of float
        Weight multipliers tried with refinements.
    max_steps : int
        Most Bregman refinements tried.
    n_iter : int
        ADMM iterations per solve (fixed, so both SURE solves truncate alike).
    max_voxels : int
        Size of the crop the search runs on.
    return_curve : bool
        Also return the list of ``(weight, steps, score)`` evaluated.

    Returns
    -------
    weight : float
    steps : int
    curve : list of (float, int, float), only with ``return_curve=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from mire.optics import gaussian_psf
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((48, 48)); truth[20:28, 8:40] = 1.0
    >>> noisy = truth + 0.1 * rng.standard_normal(truth.shape)
    >>> w, k = choose_tv_bregman(noisy / np.abs(noisy).max(), gaussian_psf(0.3, ndim=2), weight=0.05)
    >>> bool(w >= 0.05 and 0 <= k <= 3)
    True
    """
    from mire._torch import default_device
    from mire.restore.tv import SEARCH_ADAPT, SEARCH_RHO, _add_back_residual, _admm, _feasible

    if not (np.isfinite(weight) and weight > 0):
        raise ValueError(f"weight must be a finite number > 0, got {weight}")
    if int(max_steps) < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    device = torch.device(device) if device is not None else default_device()
    crop = _search_crop(np.asarray(image, dtype=np.float32), max_voxels)
    sure = _Sure(crop, psf, spacing=normalize_spacing(spacing, crop.ndim), positivity=positivity, seed=seed,
                 device=device)
    curve: list[tuple[float, int, float]] = []
    try:
        for m in (1.0, *multipliers):
            w = float(weight) * m
            sure.prob.y, sure.prob_p.y = sure.y, sure.y_p
            st = st_p = None
            for k in range(1 + (int(max_steps) if m != 1.0 else 0)):
                if k:  # Bregman step on both data sets
                    _add_back_residual(sure.prob, sure.y, st.x)
                    _add_back_residual(sure.prob_p, sure.y_p, st_p.x)
                st, _ = _admm(sure.prob, w, n_iter=n_iter, tol=0, state=st, rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT)
                st_p, _ = _admm(sure.prob_p, w, n_iter=n_iter, tol=0, state=st_p, rho0=SEARCH_RHO,
                                adapt_every=SEARCH_ADAPT)
                curve.append((w, k, sure.risk(_feasible(sure.prob, st.x), _feasible(sure.prob_p, st_p.x))))
    finally:
        sure.prob.y, sure.prob_p.y = sure.y, sure.y_p
    w, k, _ = min(curve, key=lambda t: t[2])
    return (w, k, curve) if return_curve else (w, k)


def choose_tv_weight(image, psf, *, method: str = "auto", spacing=None, data_term: str = "l2",
                     positivity: bool = True, bounds=(1e-4, 0.3), n_iter: int = 40, max_voxels: int = 150_000,
                     holdout: float = 0.1, seed: int = 0, return_curve: bool = False, device=None):
    """Choose the TV deconvolution weight from the data (no ground truth, no noise level needed).

    Parameters
    ----------
    image : ndarray
        The image **scaled to about [0, 1]** (as :func:`tv_deconvolve` does inside: divided by
        ``max(|image|)``); 2D or 3D.
    psf : ndarray
        Normalized PSF.
    method : {"auto", "discrepancy", "jinv", "sure"}
        ``"auto"`` (default): ``"sure"`` for a near-delta PSF, else the discrepancy weight times
        ``AUTO_FACTOR`` (0.7) or, when larger, the SURE weight (see :func:`auto_rule` and the
        module docstring);
        ``"discrepancy"``: Morozov's rule as is; ``"jinv"``: J-invariant hold-out calibration;
        ``"sure"``: Monte-Carlo SURE of the prediction risk (L2 data; about twice the cost).
    bounds : (float, float)
        Search interval for the weight.
    n_iter : int
        ADMM iterations per trial weight (warm-started).
    max_voxels : int
        Size of the crop the search runs on.
    holdout : float
        Fraction of pixels held out (``"jinv"``).
    return_curve : bool
        Also return the list of ``(weight, score)`` pairs evaluated.

    Returns
    -------
    weight : float
    curve : list of (float, float), only with ``return_curve=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from mire.optics import gaussian_psf
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((64, 64)); truth[20:44, 16:48] = 1.0
    >>> noisy = ndimage.gaussian_filter(truth, 1.0) + 0.1 * rng.standard_normal(truth.shape)
    >>> w = choose_tv_weight(noisy / np.abs(noisy).max(), gaussian_psf(1.0, ndim=2))
    >>> bool(1e-3 < w < 0.3)
    True
    """
    from mire._torch import default_device
    from mire.restore.tv import SEARCH_ADAPT, SEARCH_RHO, _admm, _make_problem

    if method not in ("auto", "jinv", "discrepancy", "sure"):
        raise ValueError(f"weight search method must be 'auto', 'jinv', 'discrepancy' or 'sure', got {method!r}")
    if method == "auto":
        rule = auto_rule(psf, data_term)
        opts = dict(spacing=spacing, data_term=data_term, positivity=positivity, bounds=bounds, n_iter=n_iter,
                    max_voxels=max_voxels, seed=seed, return_curve=True, device=device)
        w, curve = choose_tv_weight(image, psf, method=rule, **opts)
        if rule == "discrepancy":
            w *= AUTO_FACTOR
            if data_term == "l2":  # the larger of the two: a guard against the discrepancy's collapse
                w_sure, curve_sure = choose_tv_weight(image, psf, method="sure", **opts)
                w, curve = max(w, w_sure), curve + curve_sure
        return (w, curve) if return_curve else w
    device = torch.device(device) if device is not None else default_device()
    img = np.asarray(image, dtype=np.float32)
    crop = _search_crop(img, max_voxels)
    sp = normalize_spacing(spacing, img.ndim)
    dtype = torch.float32
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    curve: list[tuple[float, float]] = []

    if method == "jinv":
        held = _holdout_mask(crop.shape, holdout, seed)
        prob = _make_problem(crop, psf, spacing=sp, data_term=data_term, positivity=positivity, dtype=dtype,
                             device=device, holdout=held)
        held_t = torch.as_tensor(held, device=device)
        y_held = torch.as_tensor(crop, dtype=dtype, device=device)[held_t]
        state = {"st": None}

        def score(logw: float) -> float:
            w = math.exp(logw)
            st, _ = _admm(prob, w, n_iter=n_iter, tol=1e-4, state=state["st"], rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT)
            state["st"] = st
            hx = irfftn(rfftn(st.x) * prob.otf, s=prob.domain.grid)[prob.domain.window]
            s = float(((hx[held_t] - y_held) ** 2).mean())
            curve.append((w, s))
            return s
    elif method == "sure":
        if data_term != "l2":
            raise ValueError("weight search 'sure' assumes Gaussian noise: use data_term='l2'")
        sure = _Sure(crop, psf, spacing=sp, positivity=positivity, seed=seed, device=device)
        prob, prob_p = sure.prob, sure.prob_p
        state = {"st": None}

        def score(logw: float) -> float:
            w = math.exp(logw)
            # both solves start from the same state and run the same iterations, so their
            # truncation errors largely cancel in the divergence difference
            start = state["st"]
            st, _ = _admm(prob, w, n_iter=n_iter, tol=0, state=copy.deepcopy(start) if start is not None else None,
                          rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT)
            st_p, _ = _admm(prob_p, w, n_iter=n_iter, tol=0, state=copy.deepcopy(start) if start is not None else None,
                            rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT)
            state["st"] = st
            s = sure.risk(st.x, st_p.x)
            curve.append((w, s))
            return s
    else:
        sigma = estimate_noise_sigma(crop)
        prob = _make_problem(crop, psf, spacing=sp, data_term=data_term, positivity=positivity, dtype=dtype,
                             device=device)
        n_obs = float(prob.mask.sum())
        state = {"st": None}

        def score(logw: float) -> float:
            w = math.exp(logw)
            st, _ = _admm(prob, w, n_iter=n_iter, tol=1e-4, state=state["st"], rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT)
            state["st"] = st
            hx = irfftn(rfftn(st.x) * prob.otf, s=prob.domain.grid)
            resid = float((prob.mask * (hx - prob.y) ** 2).sum()) / n_obs
            s = abs(math.log(max(resid, 1e-20)) - math.log(max(sigma**2, 1e-20)))
            curve.append((w, s))
            return s

    # coarse grid from strong to weak regularization (warm starts converge fastest in that order)
    grid = np.linspace(hi, lo, 6)
    scores = [score(g) for g in grid]
    k = int(np.argmin(scores))
    a, b = grid[min(k + 1, len(grid) - 1)], grid[max(k - 1, 0)]
    # golden-section refinement on the bracketing interval
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = score(c), score(d)
    for _ in range(2):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = score(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = score(d)
    best_w, _ = min(curve, key=lambda t: t[1])
    return (best_w, curve) if return_curve else best_w
