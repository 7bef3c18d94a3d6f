"""``superresolve``: one entry point for every multi-frame estimator."""

from __future__ import annotations

import copy
import math

import torch

from mire.superres._model import DTYPE, FrameModel, check_frames, data_scale, make_psf
from mire.superres._problem import Problem
from mire.superres.register import params_from_registration, register_frames, registration_from_params

METHODS = ("ml", "map", "bayesian", "bayesian-registration")


def superresolve(frames, *, factor, method: str = "map", prior: str | None = None, psf_sigma=1.0, psf=None,
                 registration: dict | None = None, refine_registration: bool = True, robust: bool = False,
                 n_iter: int | None = None, n_outer: int | None = None, weight: float | None = None,
                 registration_sd=(1.0, 1.0), nu: float = 2.0, reference: int = 0, margin=None,
                 sd_distance: int | None = 4,
                 seed: int = 0, return_info: bool = False):
    """Reconstruct one high-resolution image from several shifted / rotated low-resolution frames.

    The frames are modelled as ``y_t = D H W(theta_t) x + n_t`` (:mod:`mire.optics`: warp,
    PSF blur, pixel-integrating downsampling by ``factor``), and ``x`` is estimated by

    - ``"ml"``: maximum likelihood (paper Eq. 4), CG on the normal equations with early
      stopping (``n_iter`` CG steps, default 8) alternating with registration refinement;
    - ``"map"``: MAP with ``prior="laplacian" | "tv" | "btv"`` (default ``"tv"``; Eq. 5) and a
      Gaussian prior on the registration around its initial estimate;
    - ``"bayesian"``: Tipping-Bishop marginalization over ``x`` (Eqs. 6-8) with a Gaussian
      smoothness prior (``prior="gradient"`` default, or ``"laplacian"``, or ``"adaptive"``: the
      gradient prior with per-pixel precisions learned by EM, an edge-preserving compound
      MRF); the noise and prior precisions are learned from the data and a per-pixel
      posterior SD is returned. The SD is exact for the model (checked against the exact
      inverse and, on scenes drawn from the prior, against the actual error); on real
      scenes it is only as good as the prior (on the Fig. 1 camera scene: 2.5x the actual
      RMS error with the gradient prior, which expects more fine detail than is there;
      0.9x with the Laplacian prior, which the evidence prefers there);
      ``prior="tv"``: variational Bayes with a total-variation prior (Babacan, Molina &
      Katsaggelos 2011; :mod:`mire.superres.bayes_tv`): an iteratively reweighted Gaussian
      whose weights, TV weight and noise precision come from the variational posterior; it
      returns the posterior mean and SD like the Gaussian priors, and combines with
      ``robust=True``;
    - ``"bayesian-registration"``: Pickup et al. marginalization over the registration
      (Laplace approximation) with a Huber image prior (Eq. 9).

    Parameters
    ----------
    frames : (T, Y, X) or (T, Z, Y, X) array
        Low-resolution frames of one scene (any intensity scale; NaN not allowed).
    factor : int or tuple of int
        Super-resolution factor per spatial axis (e.g. ``4``, or ``(1, 4, 4)`` for ZYX).
    method : str
        One of ``"ml"``, ``"map"``, ``"bayesian"``, ``"bayesian-registration"``.
    prior : str, optional
        Image prior (see ``method``): ``"laplacian" | "tv" | "btv"`` for ``"map"``,
        ``"gradient" | "laplacian" | "adaptive" | "tv" | "auto"`` for ``"bayesian"`` (``"auto"``: both
        Gaussian priors are fitted and the one with the higher marginal likelihood is kept,
        at twice the cost; ``info["evidence"]`` holds both, ``info["prior"]`` the choice).
    psf_sigma : float or tuple
        SD of the Gaussian PSF in high-res pixels (ignored when ``psf`` is given; 0: none).
    psf : array or str, optional
        PSF on the high-res grid, or a spec understood by :func:`mire.optics.parse_psf`.
    registration : dict, optional
        ``dict(shifts=(T, ndim), rotations=(T,))`` in high-res pixels and radians, in the
        :class:`mire.optics.Warp` convention; estimated with
        :func:`mire.superres.register_frames` when None.
    refine_registration : bool
        Refine the registration jointly with the image.
    robust : bool
        Hierarchical likelihood with per-pixel precisions learned by EM (Kanemura et al.),
        for occlusions and outliers; for every method.
    n_iter, n_outer : int, optional
        Inner iterations (CG or L-BFGS) and outer rounds (image / registration / noise).
    weight : float, optional
        Prior weight of ``"map"`` (frames are scaled to about [0, 1] first, so the default
        works for any bit depth) and ``"bayesian-registration"``. The Bayesian method learns it.
    registration_sd : (float, float)
        SD of the registration prior: shift in high-res px, rotation in degrees.
    nu : float
        Degrees of freedom of the robust (Student-t) likelihood.
    reference : int
        The frame whose coordinates the result uses.
    margin : int or tuple, optional
        High-res pixels reconstructed beyond the reference frame's field of view on each
        side (scene that only other frames see), cropped from the result. Default two
        low-res pixels.
    sd_distance : int or None
        Probing distance of the posterior SD estimator (``"bayesian"``); None skips it.
    seed : int
        Seed of the stochastic estimators.
    return_info : bool
        Also return a dict with ``registration`` (shifts, rotations), ``initial_registration``,
        hyperparameters (``beta``, ``lambda``, ``noise_sd``), ``history`` (objective or log marginal
        likelihood per round), ``weights`` (robust per-pixel precisions, (T, *lr)) and, for
        ``"bayesian"``, ``posterior_sd`` (and, for ``prior="adaptive"``, ``prior_weights``: the
        learned per-pixel multipliers of the prior precision, small on edges; for
        ``prior="tv"``: ``1 / sqrt(E|grad x|^2)`` per pixel in inverse frame units, with
        ``tv_weight`` the learned TV weight and ``bayes_history`` the variational passes).

    Returns
    -------
    image : ndarray of float64
        The high-resolution image, shape ``frames.shape[1:] * factor``, in the frames'
        intensity units and in the coordinates of the reference frame.
    info : dict
        Only with ``return_info=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from mire.superres import superresolve
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.random((4, 16, 16))
    >>> superresolve(frames, factor=2, method="ml", registration={"shifts": np.zeros((4, 2))},
    ...              refine_registration=False).shape
    (32, 32)
    """
    arr, f = check_frames(frames, factor=factor)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    n_t, d = arr.shape[0], arr.ndim - 1
    if not -n_t <= reference < n_t:
        raise ValueError(f"reference={reference} is not a frame index for {n_t} frames")
    reference %= n_t
    if not nu > 0:  # NaN too
        raise ValueError(f"nu must be > 0, got {nu}")
    if weight is not None and not (math.isfinite(float(weight)) and float(weight) >= 0):
        # a NaN weight passed `weight < 0` and gave an all-NaN image (exit 0, "noise SD nan")
        raise ValueError(f"weight must be a finite number >= 0 (or None for the default), got {weight}")
    for name, value in (("n_iter", n_iter), ("n_outer", n_outer)):
        # None picks the method's default; 0 would too (``n_iter or 8``), silently
        if value is not None and not (float(value) == int(value) and int(value) >= 1):
            raise ValueError(f"{name} must be a whole number >= 1 (or None for the method's default), got {value}")
    if registration is None:
        params = params_from_registration(register_frames(arr, factor=f, reference=reference), n_t, d)
    else:
        params = params_from_registration(registration, n_t, d)
    initial = params.copy()
    scale = data_scale(arr)
    hr_shape = tuple(n * k for n, k in zip(arr.shape[1:], f))
    if margin is None:  # two low-res pixels: covers the usual sub-pixel-to-pixel motions of a burst
        margin = tuple(2 * k for k in f)
    model = FrameModel(hr_shape, f, make_psf(psf, psf_sigma, d), params, margin=margin)
    reg_sd = None if registration_sd is None else (float(registration_sd[0]), math.radians(registration_sd[1]))
    prob = Problem(frames=torch.as_tensor(arr / scale, dtype=DTYPE), model=model, params0=initial,
                   reference=reference, robust=robust, nu=nu,
                   registration_sd=reg_sd if method != "ml" else None, refine=refine_registration)
    x0 = prob.back_projection()
    info: dict = {}
    sd = None
    if method == "ml":
        from mire.superres.ml_map import solve_ml

        x = solve_ml(prob, x0, n_iter=n_iter or 8, n_outer=n_outer or (4 if robust else 3))
    elif method == "map":
        from mire.superres.ml_map import solve_map

        x = solve_map(prob, x0, prior=prior or "tv", weight=weight, n_iter=n_iter or 60,
                      n_outer=n_outer or (4 if robust else 3))
    elif method == "bayesian" and prior == "tv":
        from mire.superres.bayes_tv import solve_bayes_tv

        # variational Bayes with the TV prior: the TV weight is learned like the Gaussian priors'
        # precisions, so there is nothing to tune; not a candidate of "auto" (no comparable evidence)
        x, sd, extra = solve_bayes_tv(prob, x0, n_outer=n_outer or 10, n_iter=n_iter or 100,
                                      sd_distance=sd_distance, seed=seed)
        info.update(tv_weight=extra["alpha"] / scale, bayes_history=extra["history"], prior="tv",
                    prior_weights=extra["rho"][model.crop].numpy() / scale)
    elif method == "bayesian":
        from mire.superres.bayes import solve_bayes

        # "auto": fit both Gaussian priors and keep the one with the higher evidence (log marginal
        # likelihood): the data choose how smooth the scene is, nothing is tuned on a ground truth
        candidates = ("gradient", "laplacian") if prior == "auto" else (prior or "gradient",)
        fits = []
        for cand in candidates:
            p_k = copy.deepcopy(prob) if len(candidates) > 1 else prob
            fits.append((cand, p_k) + solve_bayes(p_k, x0, prior=cand, n_outer=n_outer or 6, n_iter=n_iter or 150,
                                                  sd_distance=sd_distance, seed=seed))
        evidence = {f[0]: f[4]["history"]["log_marginal_likelihood"][-1] for f in fits}
        chosen, prob, x, sd, extra = max(fits, key=lambda f: evidence[f[0]])
        model = prob.model
        info.update(lambda_=extra["lambda"], bayes_history=extra["history"], prior=chosen, evidence=evidence)
        if extra["rho"] is not None:
            info["prior_weights"] = extra["rho"][model.crop].numpy()
    else:
        from mire.superres.bayes_registration import solve_bayes_registration

        x, extra = solve_bayes_registration(prob, x0, weight=weight, n_iter=n_iter or 60,
                                            n_outer=n_outer or (4 if robust else 3))
        info.update(extra)
    image = x[model.crop].numpy() * scale
    if not return_info:
        return image
    info.update({
        "registration": registration_from_params(prob.model.params),
        "initial_registration": registration_from_params(initial),
        "beta": prob.beta / scale**2,
        "noise_sd": scale / math.sqrt(prob.beta),
        "history": list(prob.history),
        "weights": None if prob.weights is None else prob.weights.numpy(),
        "scale": scale,
    })
    if "lambda_" in info:
        info["lambda"] = info.pop("lambda_") / scale**2
    if sd is not None:
        info["posterior_sd"] = sd[model.crop].numpy() * scale
    return image, info


