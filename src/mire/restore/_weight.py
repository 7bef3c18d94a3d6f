"""Choosing the TV weight from the data itself: users do not know lambda.

The default (``"auto"``, Gaussian/L2 data term) is **SURE on a stratified tile sample of the whole
stack**: Stein's unbiased estimate of the prediction risk ``||H x - H x_true||^2`` of the map
``y -> H x(y)`` (Ramani, Blu & Unser 2008, IEEE TIP 17(9)), with heteroscedastic noise,

    SURE = ||H x - y||^2 - sum_i v_i + 2 sum_i v_i d(H x)_i / d y_i,

where ``v_i`` is the noise variance at voxel ``i`` from a Poisson-Gaussian noise model fitted to the
image itself (:func:`mire.restore._common.estimate_noise_model`) and the divergence is a Monte-Carlo
finite difference (one extra solve on ``y + eps sqrt(v) b`` for a Gaussian probe ``b``). Why this rule:

* it estimates the risk over the **whole stack**, not over a crop: the stack is cut into tiles, the
  most structured tiles are always solved and the rest are represented by one random tile per
  stratum (strata of equal count by tile standard deviation), each weighted by the inverse of its
  inclusion probability (Horvitz-Thompson), so the sum is an unbiased estimate of the whole-stack
  SURE whatever the fraction of dark voxels. (The previous rule searched the single "most textured"
  block: on a sparse stack that block is all neuron, and its best weight is not the stack's.)
* it needs no constant fitted to any data set: the noise model is estimated, scale and offset enter
  only through it (multiplying the stack by c multiplies the variances by c^2 and leaves the argmin in
  normalized units unchanged; an offset changes the normalization and the weight follows it);
* its minimizer tracks the weight of the best PSNR with a real blur too on whole stacks (the earlier
  claim that SURE under-weights with a real blur came from one bright crop; see
  experiments/results/tv_weight_stress.md for the stress set, designed on one half and reported on
  the other).

The weight is searched over ``log(weight)``: a descending grid by factors of 2 from 0.3 (warm starts
converge fastest from strong to weak regularization), stopped two steps after the minimum, a walk
upwards if the minimum is at the top, two half steps (factor sqrt 2) either side of the minimum, then
the vertex of a parabola through the minimum and its neighbours.

Other rules, kept for comparison and for the non-Gaussian data terms:

* ``"cv"``: hold-out cross-validation on the same tile sample, **one solve per trial**: the data term
  sees the even voxels of a checkerboard only, and ``H x`` is scored against ``y`` on the odd ones.
  The noise of a held-out voxel is independent of the data the solve saw, so the mean squared error
  there is an unbiased estimate of the prediction risk of the half-data estimate plus the (weight-
  independent) noise variance: its argmin is the half-data problem's best weight. With a PSF that
  spreads light (each ``x`` is seen through several voxels) the half-data problem behaves like the
  whole-data problem with half its data term and twice its noise variance; the best TV weight grows
  like the noise SD (TV shrinks gradients by a soft threshold), so the whole-data weight is the
  half-data one times ``HOLDOUT_CORRECTION = 1 / sqrt(1/2)`` (checked against the truth:
  tests/restore/test_tv.py, experiments/tv_holdout_correction.py). It halves the search's cost but
  its score has about sqrt(2) times SURE's scatter; it was not adopted as the default
  (experiments/results/tv_cv_route_b.md);
* ``"jinv"``: J-invariant hold-out calibration (Noise2Self, Batson & Royer 2019) on one crop;
* ``"discrepancy"``: Morozov's discrepancy principle on one crop (the residual equals the noise
  variance); ``"auto"`` uses it, times ``AUTO_FACTOR``, for the ``"l1"`` and ``"poisson"`` data terms,
  where SURE for Gaussian noise does not apply.

Where the PSF is near-delta (:func:`is_near_delta`; the risk of ``H x`` is then the risk of ``x``),
:func:`tv_deconvolve` also runs :func:`choose_tv_bregman`: SURE over pairs (larger weight, number of
Bregman refinements), on the same tile sample.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import torch
from scipy import ndimage

from mire._fft import irfftn, rfftn
from mire.restore._common import NoiseModel, estimate_noise_model, estimate_noise_sigma, normalize_spacing

#: The discrepancy weight's correction where ``"auto"`` uses it (l1 / poisson data terms).
AUTO_FACTOR = 0.7
#: A normalized PSF whose peak holds at least this fraction of the light counts as near-delta.
NEAR_DELTA_PEAK = 0.5
#: SURE's probe step relative to the local noise SD: small enough for a linearization, large enough
#: to stay above float32 rounding of the solves.
_SURE_EPS = 0.1
#: Total voxels of the tile sample the default search solves.
SEARCH_VOXELS = 240_000
#: Width of the tiles' scoring margin in PSF radii (:func:`_margin`).
MARGIN_RADII = 1.0
#: ADMM iterations per solve of a SURE trial (fixed: data and probe solves truncate alike).
SEARCH_ITER = 40
#: Under test (issue #20, not the default): when set to k, each SURE trial solves the data problem
#: ``SEARCH_ITER`` iterations, then the probe problem k iterations from that state and the data problem the same
#: k further (``SEARCH_ITER + 2k`` per tile instead of ``2 SEARCH_ITER``). ``None``: both solves run
#: ``SEARCH_ITER`` from the previous trial's state (experiments/results/tv_probe_restart_gate.md).
PROBE_RESTART = None
#: Whole-data weight over the half-data (checkerboard hold-out) weight of equal risk: ``1 / sqrt(q)``
#: for the kept fraction ``q = 1/2`` (see :func:`choose_tv_weight`, ``"cv"``).
HOLDOUT_CORRECTION = math.sqrt(2.0)


def is_near_delta(psf) -> bool:
    """Whether a PSF is close to the identity (its peak holds at least half of its light)."""
    k = np.asarray(psf, dtype=np.float64)
    return float(k.max()) >= NEAR_DELTA_PEAK * float(k.sum())


def auto_rule(psf, data_term: str = "l2") -> str:
    """The rule ``method="auto"`` applies: ``"sure"`` for the L2 data term (any PSF), else ``"discrepancy"``.

    (``"cv"``, one solve per trial instead of SURE's two, was measured as the default and not adopted:
    experiments/results/tv_cv_route_b.md.)"""
    return "sure" if data_term == "l2" else "discrepancy"


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


def _tile_shape(shape, voxels: int) -> list[int]:
    f = (voxels / math.prod(shape)) ** (1.0 / len(shape))
    t = [max(8, min(n, int(round(n * f)))) for n in shape]
    while math.prod(t) > voxels * 1.05 and max(t) > 8:
        k = int(np.argmax(t))
        t[k] = max(8, int(t[k] * 0.9))
    return t


def _margin(psf_shape) -> tuple:
    """Context solved around a tile but not scored: one PSF radius per axis, at least 2 voxels (the
    reach of TV's finite differences beyond a near-delta PSF's).

    ``H x`` inside the tile reads ``x`` up to one PSF radius outside it, and that ``x`` is held by the
    data of the margin; the unknown-boundary extension of the tile's problem adds another radius
    beyond. Converged, the tile's ``H x`` is then within about 1 % of the noise SD of the whole
    image's (tests/restore/test_tv.py). Two radii, the previous rule, chose the same weights to
    within the search's own scatter on the design stacks at 1.7x the cost; no margin biased them
    low (to 0.63x): experiments/results/tv_search_speed.md."""
    return tuple(max(2, int(round(MARGIN_RADII * (int(k) // 2)))) for k in psf_shape)


def tiling(shape, voxels: int) -> list[tuple]:
    """Non-overlapping tiles of about ``voxels`` voxels covering an array of ``shape``."""
    t = _tile_shape(shape, voxels)
    splits = [np.array_split(np.arange(n), max(1, int(math.ceil(n / tt)))) for n, tt in zip(shape, t)]
    return [tuple(slice(int(a[0]), int(a[-1]) + 1) for a in combo) for combo in itertools.product(*splits)]


def _strata(proxy: np.ndarray, n_strata: int, rule: str) -> list[np.ndarray]:
    """Split indices sorted by decreasing ``proxy`` into ``n_strata`` non-empty strata.

    ``"count"``: equal counts. ``"cumulative"``: equal sums of the proxy (boundaries at equal shares
    of its cumulative sum): Neyman's allocation for one unit per stratum asks for strata of equal
    ``N_h S_h``, and where the spread of the tiles' scores grows with their structure (``S_h`` about
    proportional to the mean proxy) that is an equal proxy sum. Structured tiles then fall in small
    strata of small weight and the large, heavily weighted strata hold the featureless tiles, whose
    scores are alike. A proxy that is all zero falls back to equal counts."""
    n = len(proxy)
    total = float(np.sum(proxy))
    if rule == "count" or not total > 0:
        return np.array_split(np.arange(n), n_strata)
    c = np.cumsum(proxy) / total
    b = np.searchsorted(c, np.arange(1, n_strata) / n_strata, side="left") + 1
    for k in range(len(b)):  # at least one index per stratum, in order
        b[k] = min(max(b[k], (b[k - 1] if k else 0) + 1), n - (n_strata - 1 - k))
    return np.split(np.arange(n), b)


def sample_tiles(image, *, max_voxels: int = SEARCH_VOXELS, n_tiles: int = 6, n_certain: int = 3,
                 psf_shape=None, seed: int = 0, noise: NoiseModel | None = None,
                 strata: str = "count") -> list[tuple[tuple, float]]:
    """A stratified sample of tiles whose weighted sum estimates a sum over the whole image.

    The image is cut into non-overlapping tiles of about ``max_voxels / n_tiles`` voxels. The
    ``n_certain`` tiles of largest standard deviation are always taken (weight 1); the others are
    sorted by standard deviation, split into ``n_tiles - n_certain`` strata of equal count, and one
    tile is drawn at random per stratum, with weight the stratum's size (the inverse of its
    inclusion probability: Horvitz-Thompson). ``strata="cumulative"`` makes strata of equal SD sums
    instead (:func:`_strata`); ``noise`` ranks tiles by their signal SD (SD less the model's noise).
    Neither is the default: on fresh tile seeds the equal-sum strata improved the worst loss against
    the best grid weight but not the mean (experiments/results/tv_tile_seed.md).

    An image of at most ``max_voxels`` voxels, or one whose
    tiles would cost more to solve than the whole (with their context margins, :func:`_margin`, and
    PSF padding), is one tile of weight 1.

    Returns
    -------
    list of (tuple of slice, float)
        Tiles and their weights.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((64, 256, 256), np.float32); img[30:34, 100:104, :] = 1
    >>> tiles = sample_tiles(img, max_voxels=60_000)
    >>> n = sum(w * np.prod([s.stop - s.start for s in sl]) for sl, w in tiles)
    >>> bool(abs(n / img.size - 1) < 0.05), any(img[sl].any() for sl, _ in tiles)
    (True, True)
    """
    img = np.asarray(image)
    whole = [(tuple(slice(0, n) for n in img.shape), 1.0)]
    if img.size <= max_voxels:
        return whole
    tiles = tiling(img.shape, max(1, max_voxels // n_tiles))
    if len(tiles) <= n_tiles:
        return whole
    if psf_shape is not None:
        k, m = np.asarray(psf_shape) - 1, _margin(psf_shape)
        cost = lambda shape: math.prod(int(n + kk) for n, kk in zip(shape, k))  # noqa: E731
        per_tile = cost([min(n, s.stop - s.start + 2 * mm) for s, mm, n in zip(tiles[0], m, img.shape)])
        if per_tile * n_tiles >= cost(img.shape):
            return whole
    sd = np.array([float(np.std(img[sl])) for sl in tiles])
    if noise is not None:
        # the tile's signal SD: its variance less the noise variance the model predicts at its mean
        # (raw SD ranks bright, noisy background above faint structure under Poisson noise)
        mean = np.array([float(np.mean(img[sl])) for sl in tiles])
        sd = np.sqrt(np.maximum(sd**2 - noise.variance(mean), 0.0))
    order = np.argsort(-sd, kind="stable")
    n_certain = max(0, min(int(n_certain), n_tiles - 1))
    chosen = [(tiles[i], 1.0) for i in order[:n_certain]]
    rest = order[n_certain:]
    rng = np.random.default_rng(seed)
    for stratum in (rest[ix] for ix in _strata(sd[rest], n_tiles - n_certain, strata)):
        if len(stratum):
            chosen.append((tiles[int(rng.choice(stratum))], float(len(stratum))))
    return chosen


def _with_margin(sl, margin, shape) -> tuple:
    """The tile ``sl`` widened by ``margin`` on each side, within ``shape`` (the context it is solved with)."""
    return tuple(slice(max(0, a.start - m), min(n, a.stop + m)) for a, m, n in zip(sl, margin, shape))


def _tile_window(prob, sl, outer) -> tuple:
    """Where the tile ``sl`` lies in the grid of ``prob``, the problem of its context ``outer``."""
    return tuple(slice(o.start + a.start - b.start, o.start + a.stop - b.start)
                 for o, a, b in zip(prob.domain.window, sl, outer))


class _Sample:
    """SURE of ``y -> H x`` summed over a weighted tile sample (see the module docstring).

    Each tile holds the problem of its data, the problem of its data plus ``eps sqrt(v) b``, the probe
    scaled by the local noise SD and its Horvitz-Thompson weight.
    """

    def __init__(self, image, psf, *, spacing, positivity, seed, device, noise: NoiseModel | None = None,
                 max_voxels: int = SEARCH_VOXELS, tiles=None, probe_seed: int | None = None):
        from mire.restore.tv import _make_problem

        img = np.asarray(image, dtype=np.float32)
        self.noise = estimate_noise_model(img) if noise is None else noise
        opts = dict(spacing=spacing, data_term="l2", positivity=positivity, dtype=torch.float32, device=device)
        rng = np.random.default_rng(seed if probe_seed is None else probe_seed)
        self.tiles = []
        margin = _margin(np.shape(psf))
        if tiles is None:
            tiles = sample_tiles(img, max_voxels=max_voxels, psf_shape=np.shape(psf), seed=seed)
        for sl, w in tiles:
            # solve the tile with context around it, score only the tile itself
            outer = _with_margin(sl, margin, img.shape)
            tile = img[outer]
            prob = _make_problem(tile, psf, **opts)
            inner = torch.zeros_like(prob.y)
            win = _tile_window(prob, sl, outer)
            inner[win] = 1.0
            var = self.noise.variance(ndimage.gaussian_filter(tile.astype(np.float64), 1.0)).astype(np.float32)
            sd = torch.zeros_like(prob.y)
            sd[prob.domain.window] = torch.as_tensor(np.sqrt(var), device=device)
            sd *= inner
            probe = sd * torch.as_tensor(rng.standard_normal(prob.y.shape), dtype=torch.float32, device=device)
            prob_p = _make_problem(tile, psf, **opts)
            prob_p.y = prob.y + _SURE_EPS * probe
            self.tiles.append({"prob": prob, "prob_p": prob_p, "y": prob.y, "y_p": prob_p.y, "probe": probe,
                               "inner": inner, "var": float((sd * sd).sum()), "w": w})
        self.n = sum(t["w"] * float(t["inner"].sum()) for t in self.tiles)

    def reset(self) -> None:
        """Put the original data back (Bregman steps change ``prob.y``)."""
        for t in self.tiles:
            t["prob"].y, t["prob_p"].y = t["y"], t["y_p"]

    def risk(self, xs, xps) -> float:
        """Mean SURE per voxel of the estimates ``xs`` (data) and ``xps`` (perturbed data), one per tile."""
        from mire.restore.tv import _blur

        total = 0.0
        for t, x, xp in zip(self.tiles, xs, xps):
            p = t["prob"]
            hx, hxp = _blur(p, x), _blur(p, xp)
            resid = float((t["inner"] * (hx - t["y"]) ** 2).sum())
            div = float((t["probe"] * (hxp - hx)).sum()) / _SURE_EPS
            total += t["w"] * (resid - t["var"] + 2.0 * div)
        return total / self.n


def checkerboard(shape) -> np.ndarray:
    """The voxels of odd index sum: half of the voxels, each with all its face neighbours outside."""
    idx = np.indices(shape).sum(0)
    return (idx % 2).astype(bool)


class _HoldoutSample:
    """Hold-out prediction error of ``y -> H x`` on a weighted tile sample (see :func:`choose_tv_weight`).

    Each tile's problem has its data term on the even voxels of the checkerboard (whole-image parity)
    only; the score is the squared error of ``H x`` against ``y`` on the odd voxels of the tile itself
    (not its margin), Horvitz-Thompson weighted as in :class:`_Sample`.
    """

    def __init__(self, image, psf, *, spacing, positivity, seed, device, max_voxels: int = SEARCH_VOXELS):
        from mire.restore.tv import _make_problem

        img = np.asarray(image, dtype=np.float32)
        held_all = checkerboard(img.shape)
        opts = dict(spacing=spacing, data_term="l2", positivity=positivity, dtype=torch.float32, device=device)
        self.tiles = []
        margin = _margin(np.shape(psf))
        for sl, w in sample_tiles(img, max_voxels=max_voxels, psf_shape=np.shape(psf), seed=seed):
            outer = _with_margin(sl, margin, img.shape)
            prob = _make_problem(img[outer], psf, holdout=held_all[outer], **opts)
            score = torch.zeros_like(prob.y)
            win = _tile_window(prob, sl, outer)
            score[win] = torch.as_tensor(held_all[sl], dtype=torch.float32, device=device)
            self.tiles.append({"prob": prob, "score": score, "w": w})
        self.n = sum(t["w"] * float(t["score"].sum()) for t in self.tiles)

    def risk(self, xs) -> float:
        """Mean squared hold-out prediction error per scored voxel (the noise variance included)."""
        from mire.restore.tv import _blur

        total = 0.0
        for t, x in zip(self.tiles, xs):
            p = t["prob"]
            total += t["w"] * float((t["score"] * (_blur(p, x) - p.y) ** 2).sum())
        return total / self.n


def _minimize_log_weight(score, *, start: float = 0.3, lo: float = 1e-5, hi: float = 30.0,
                         factor: float = 2.0) -> float:
    """Minimize ``score(weight)`` over ``log(weight)``: descending grid, early stop, walk up, parabola."""
    pts: dict[float, float] = {}

    def ev(w):
        pts[w] = score(w)
        return pts[w]

    w = start
    ev(w)
    while w / factor >= lo:
        w /= factor
        ev(w)
        ws = sorted(pts)
        k = int(np.argmin([pts[v] for v in ws]))
        if k >= 2:  # two rises below the minimum (ws ascending: indices below k are weaker weights)
            break
    w = start
    while min(pts, key=pts.get) == max(pts) and w * factor <= hi:
        w *= factor
        ev(w)
    # refine: half steps (factor sqrt 2) either side of the minimum, then a parabola through the
    # minimum and its two neighbours
    wk = min(pts, key=pts.get)
    for f in (math.sqrt(factor), 1 / math.sqrt(factor)):
        if lo <= wk * f <= hi and (wk * f) not in pts:
            ev(wk * f)
    ws = sorted(pts)
    s = [pts[v] for v in ws]
    k = int(np.argmin(s))
    if 0 < k < len(ws) - 1:
        x = np.log(ws[k - 1:k + 2])
        a, b, _ = np.polyfit(x, s[k - 1:k + 2], 2)
        if a > 0:
            return float(np.exp(np.clip(-b / (2 * a), x[0], x[2])))
    return float(ws[k])


def choose_tv_bregman(image, psf, *, weight, spacing=None, positivity: bool = True,
                      multipliers=(2.0, 3.5, 6.0, 10.0), max_steps: int = 3, n_iter: int = 40,
                      max_voxels: int = SEARCH_VOXELS, seed: int = 0, return_curve: bool = False, device=None,
                      noise: NoiseModel | None = None):
    """Choose a TV weight and a number of Bregman refinements together, by SURE.

    Bregman iterations (see :func:`mire.restore.tv_deconvolve`, ``bregman``) work with a larger weight
    than a single solve: each refinement gives back part of the contrast the weight took. The pairs
    tried are ``(weight, 0)`` (the single-solve weight, e.g. from :func:`choose_tv_weight`) and
    ``(m * weight, k)`` for every multiplier ``m`` and ``k = 0..max_steps``; each is scored by the
    Monte-Carlo SURE of ``y -> H x`` on the tile sample of :func:`choose_tv_weight`, which is the
    risk of the estimate itself when the PSF is near-delta; use it there (Gaussian noise, L2 data).

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
        Voxels of the tile sample the search runs on.
    return_curve : bool
        Also return the list of ``(weight, steps, score)`` evaluated.
    noise : NoiseModel, optional
        Noise model of ``image``; estimated from it by default.

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
    img = np.asarray(image, dtype=np.float32)
    sample = _Sample(img, psf, spacing=normalize_spacing(spacing, img.ndim), positivity=positivity, seed=seed,
                     device=device, noise=noise, max_voxels=max_voxels)
    curve: list[tuple[float, int, float]] = []
    opts = dict(n_iter=n_iter, tol=0, rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT, objective_every=0,
                log_change=False)
    try:
        for m in (1.0, *multipliers):
            w = float(weight) * m
            sample.reset()
            sts = [None] * len(sample.tiles)
            sts_p = [None] * len(sample.tiles)
            for k in range(1 + (int(max_steps) if m != 1.0 else 0)):
                xs, xps = [], []
                for i, t in enumerate(sample.tiles):
                    if k:  # Bregman step on both data sets
                        _add_back_residual(t["prob"], t["y"], sts[i].x)
                        _add_back_residual(t["prob_p"], t["y_p"], sts_p[i].x)
                    sts[i], _ = _admm(t["prob"], w, state=sts[i], **opts)
                    sts_p[i], _ = _admm(t["prob_p"], w, state=sts_p[i], **opts)
                    xs.append(_feasible(t["prob"], sts[i].x))
                    xps.append(_feasible(t["prob_p"], sts_p[i].x))
                curve.append((w, k, sample.risk(xs, xps)))
    finally:
        sample.reset()
    w, k, _ = min(curve, key=lambda t: t[2])
    return (w, k, curve) if return_curve else (w, k)


def choose_tv_weight(image, psf, *, method: str = "auto", spacing=None, data_term: str = "l2",
                     positivity: bool = True, bounds=(1e-4, 0.3), n_iter: int = SEARCH_ITER,
                     max_voxels: int = SEARCH_VOXELS, holdout: float = 0.1, seed: int = 0,
                     return_curve: bool = False, device=None, noise: NoiseModel | None = None):
    """Choose the TV deconvolution weight from the data (no ground truth, no noise level needed).

    Parameters
    ----------
    image : ndarray
        The image **scaled to about [0, 1]** (as :func:`tv_deconvolve` does inside: divided by
        ``max(|image|)``); 2D or 3D.
    psf : ndarray
        Normalized PSF.
    method : {"auto", "cv", "discrepancy", "jinv", "sure"}
        ``"auto"`` (default): ``"sure"`` for the L2 data term, else the discrepancy weight times
        ``AUTO_FACTOR`` (see :func:`auto_rule` and the module docstring);
        ``"sure"``: Monte-Carlo SURE with a fitted Poisson-Gaussian noise model, summed over a
        stratified tile sample of the whole image (two solves per trial weight);
        ``"cv"``: checkerboard hold-out prediction error on the same tile sample (one solve per trial
        weight, see the module docstring), for a PSF that is not near-delta;
        ``"discrepancy"``: Morozov's rule on one crop; ``"jinv"``: J-invariant hold-out calibration on
        one crop.
    bounds : (float, float)
        Search interval of ``"discrepancy"`` and ``"jinv"``; ``"sure"`` starts at the upper bound and
        may walk above it (up to 100x) when the risk still falls there.
    n_iter : int
        ADMM iterations per trial weight (warm-started).
    max_voxels : int
        Voxels of the tile sample (``"sure"``) or of the crop (the others) the search runs on.
    holdout : float
        Fraction of pixels held out (``"jinv"``).
    return_curve : bool
        Also return the list of ``(weight, score)`` pairs evaluated.
    noise : NoiseModel, optional
        Noise model of ``image`` (``"sure"``); by default fitted to it
        (:func:`mire.restore._common.estimate_noise_model`).

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

    if method not in ("auto", "cv", "jinv", "discrepancy", "sure"):
        raise ValueError("weight search method must be 'auto', 'cv', 'jinv', 'discrepancy' or 'sure', "
                         f"got {method!r}")
    if method == "auto":
        rule = auto_rule(psf, data_term)
        opts = dict(spacing=spacing, data_term=data_term, positivity=positivity, bounds=bounds, n_iter=n_iter,
                    max_voxels=max_voxels, seed=seed, return_curve=True, device=device, noise=noise)
        w, curve = choose_tv_weight(image, psf, method=rule, **opts)
        if rule == "discrepancy":
            w *= AUTO_FACTOR
        return (w, curve) if return_curve else w
    device = torch.device(device) if device is not None else default_device()
    img = np.asarray(image, dtype=np.float32)
    sp = normalize_spacing(spacing, img.ndim)
    dtype = torch.float32
    curve: list[tuple[float, float]] = []

    if method == "sure":
        if data_term != "l2":
            raise ValueError("weight search 'sure' assumes Gaussian noise: use data_term='l2'")
        sample = _Sample(img, psf, spacing=sp, positivity=positivity, seed=seed, device=device, noise=noise,
                         max_voxels=max_voxels)
        states = [None] * len(sample.tiles)
        # the score reads only the states: no objective or change logs (a tenth of the search's time)
        opts = dict(n_iter=n_iter, tol=0, rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT, objective_every=0,
                    log_change=False)

        def sure_score(w: float) -> float:
            xs, xps = [], []
            for i, t in enumerate(sample.tiles):
                # both solves start from the same state and run the same iterations, so their
                # truncation errors largely cancel in the divergence difference
                # (the data solve takes the stored state over: one copy per tile, not two)
                start = states[i]
                if PROBE_RESTART:
                    k_opts = dict(opts, n_iter=int(PROBE_RESTART))
                    st, _ = _admm(t["prob"], w, state=start, **opts)
                    st_p, _ = _admm(t["prob_p"], w, state=copy.deepcopy(st), **k_opts)
                    st, _ = _admm(t["prob"], w, state=st, **k_opts)
                else:
                    st_p, _ = _admm(t["prob_p"], w, state=copy.deepcopy(start) if start is not None else None, **opts)
                    st, _ = _admm(t["prob"], w, state=start, **opts)
                states[i] = st
                xs.append(st.x)
                xps.append(st_p.x)
            s = sample.risk(xs, xps)
            curve.append((w, s))
            return s

        best_w = _minimize_log_weight(sure_score, start=float(bounds[1]), lo=float(bounds[0]),
                                      hi=100.0 * float(bounds[1]))
        return (best_w, curve) if return_curve else best_w

    if method == "cv":
        if data_term != "l2":
            raise ValueError("weight search 'cv' uses the L2 data term: use data_term='l2'")
        if is_near_delta(psf):
            # a held-out voxel is then seen by none of the kept ones: the half-data problem is
            # inpainting, not the whole-data problem at twice the noise (use "sure")
            raise ValueError("weight search 'cv' needs a PSF that spreads light (not near-delta): use 'sure'")
        sample = _HoldoutSample(img, psf, spacing=sp, positivity=positivity, seed=seed, device=device,
                                max_voxels=max_voxels)
        states = [None] * len(sample.tiles)
        opts = dict(n_iter=n_iter, tol=0, rho0=SEARCH_RHO, adapt_every=SEARCH_ADAPT, objective_every=0,
                    log_change=False)

        def cv_score(w: float) -> float:
            # w is the whole-data weight; the half-data problem is solved at w / HOLDOUT_CORRECTION
            xs = []
            for i, t in enumerate(sample.tiles):
                states[i], _ = _admm(t["prob"], w / HOLDOUT_CORRECTION, state=states[i], **opts)
                xs.append(states[i].x)
            s = sample.risk(xs)
            curve.append((w, s))
            return s

        best_w = _minimize_log_weight(cv_score, start=float(bounds[1]), lo=float(bounds[0]),
                                      hi=100.0 * float(bounds[1]))
        return (best_w, curve) if return_curve else best_w

    crop = _search_crop(img, max_voxels)
    lo, hi = math.log(bounds[0]), math.log(bounds[1])

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
    else:  # discrepancy
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
