"""Variational Bayesian super-resolution with a total-variation prior (Babacan, Molina & Katsaggelos 2011).

Model: ``y = A(theta) x + n`` with noise precision ``beta`` (per pixel ``beta * w_ti`` when
robust, the EM of :mod:`mire.superres.robust`) and the TV prior

    p(x | alpha) ∝ alpha^(N-1) exp(-alpha TV(x)),   TV(x) = sum_i |grad x|_i

(isotropic, forward differences with reflecting borders). The exponent is exact: TV is
homogeneous of degree one, so its normalizer scales as ``alpha^-(N-1)`` on the images
orthogonal to a constant (which TV does not see).

The posterior is not Gaussian, but TV has a quadratic majorizer at every ``u_i > 0``,

    |grad x|_i <= (|grad x|_i^2 + u_i) / (2 sqrt(u_i)),

which turns the prior into a Gaussian with per-pixel precisions ``alpha / sqrt(u_i)`` on the
gradient. Variational Bayes with ``q(x) = N(mu, Sigma)`` then alternates

    Sigma^-1 = beta A^T W A + alpha D^T diag(1 / sqrt(u)) D,   mu = beta Sigma A^T W y,
    u_i = E_q |grad x|_i^2 = |grad mu|_i^2 + sum_a [D_a Sigma D_a^T]_ii,
    alpha = (N - 1) / sum_i sqrt(u_i),   beta = (M - gamma) / |y - A mu|^2_W,

with ``gamma = N - tr(Sigma alpha D^T diag(1/sqrt(u)) D)`` the effective number of
parameters (so ``beta`` is the mean of its variational posterior, ``E|y - A x|^2`` included).
Each pass is an iteratively reweighted Gaussian (the "adaptive" Gaussian prior of
:mod:`mire.superres.bayes` with ``rho = 1 / sqrt(u)``), so the CG solves, the circulant
preconditioner and the posterior SD of that module apply unchanged; nothing is tuned by
hand: ``alpha``, ``beta`` and the robust weights come from the frames.

The per-pixel gradient variance ``[D_a Sigma D_a^T]_ii`` (which makes this the posterior
mean, not a reweighted MAP estimate: flat regions get ``u_i`` about their own posterior
variance instead of 0) is estimated by coloured probing in gradient space, as the
posterior SD is: probes hold random signs on the pixels of one colour (index mod
``var_distance`` on every axis) of one gradient axis, and ``diag(D_a S^-1 D_a^T) ~ sum_c
z_c * (D_a S^-1 D_a^T z_c)``; the error is the posterior covariance of gradients at least
``var_distance`` apart. Cost per pass: ``ndim * var_distance ** ndim`` CG solves (8 in 2D
with the default 2), batched, each O(N) per iteration. The first pass uses ``u = 1``
(the Gaussian gradient prior, hyperparameters from the back-projection), so no TV
smoothing constant is chosen by hand either.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mire.superres._model import DTYPE
from mire.superres._problem import Problem
from mire.superres._solvers import cg, rademacher
from mire.superres.bayes import RIDGE, CirculantPreconditioner, Posterior, _forward_diffs, \
    _forward_diffs_adjoint, gradient_energy_map, posterior_sd
from mire.superres.robust import student_t_weights


def gradient_probes(shape, distance: int, generator: torch.Generator):
    """Coloured probes in gradient space: ``(axis, colour)`` pairs, random signs on one colour of one axis."""
    d = len(shape)
    grids = np.meshgrid(*[np.arange(n) % distance for n in shape], indexing="ij")
    colour = np.zeros(shape, dtype=np.int64)
    for g in grids:
        colour = colour * distance + g
    colour = torch.as_tensor(colour)
    for a in range(d):
        signs = rademacher(tuple(shape), generator=generator, dtype=DTYPE)
        for c in range(distance**d):
            yield a, torch.where(colour == c, signs, torch.zeros_like(signs))


def gradient_variance(post: Posterior, shape, *, distance: int = 2, n_iter: int = 100, tol: float = 1e-4,
                      seed: int = 0, precond=None, x0=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel posterior variance of the gradient, ``sum_a [D_a S^-1 D_a^T]_ii``, by coloured probing.

    Returns the variance map and the probe solutions (a warm start for the next pass, ``x0``).
    """
    d = len(shape)
    gen = torch.Generator().manual_seed(seed + 2)
    probes = list(gradient_probes(shape, distance, gen))
    # b = D_a^T z: a probe of one gradient axis, moved to image space
    rhs = torch.stack([_forward_diffs_adjoint([z if k == a else torch.zeros_like(z) for k in range(d)], d)
                       for a, z in probes])
    sol = cg(post, rhs, ndim=d, x0=x0, n_iter=n_iter, tol=tol, precond=precond)
    var = torch.zeros(shape, dtype=DTYPE)
    for (a, z), u in zip(probes, sol):
        var += z * _forward_diffs(u, d)[a]
    return var.clamp_min(0), sol


def solve_bayes_tv(prob: Problem, x0: torch.Tensor, *, n_outer: int = 10, n_iter: int = 100, tol: float = 1e-5,
                   var_distance: int = 2, var_tol: float = 1e-2, sd_distance: int | None = 4, seed: int = 0,
                   precondition: bool = True, outer_tol: float = 3e-3) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Posterior mean, per-pixel posterior SD (None if ``sd_distance`` is None) and hyperparameters.

    ``n_outer`` variational passes at most (registration refined between passes when the
    problem asks for it); stops earlier when the mean changes by less than ``outer_tol``
    (relative, RMS) between passes. Returns ``(mu, sd, info)`` with ``info`` holding
    ``alpha`` (the TV weight), ``beta``, ``rho`` (the final ``1 / sqrt(u)``: small on edges)
    and ``history`` (``alpha``, ``beta``, ``gamma``, ``change`` per pass).
    """
    model, d = prob.model, prob.ndim
    shape = model.hr_shape
    n_hr, m_obs = math.prod(shape), prob.frames.numel()
    prob.update_noise(x0)
    # pass 0: the Gaussian gradient prior (u = 1), its precision from the back-projection
    rho = torch.ones(shape, dtype=DTYPE)
    g2 = gradient_energy_map(x0, d)
    alpha = 0.5 * n_hr / max(float(0.5 * g2.sum() + 0.5 * RIDGE * (x0 * x0).sum()), 1e-12)
    mu, probe_sol = x0, None
    hist = {"alpha": [], "beta": [], "gamma": [], "change": []}
    for k in range(n_outer):
        post = Posterior(prob, alpha, "adaptive", rho)
        pre = CirculantPreconditioner(post, "adaptive") if precondition else None
        mu_old = mu
        mu = cg(post, post.rhs(), ndim=d, x0=mu, n_iter=n_iter, tol=tol, precond=pre)
        # the variances only set the weights (a 1% error in u is a 0.5% error in 1/sqrt(u)): a loose
        # tolerance suffices, and it makes these solves, not the mean, the cheaper part of a pass
        var, probe_sol = gradient_variance(post, shape, distance=var_distance, n_iter=n_iter, tol=var_tol,
                                           seed=seed, precond=pre, x0=probe_sol)
        u = gradient_energy_map(mu, d) + var
        # tr(Sigma alpha D^T diag(rho) D) = alpha sum_i rho_i var_i (the ridge's share is negligible)
        gamma = min(max(n_hr - alpha * float((rho * var).sum()), 1.0), min(n_hr, m_obs) - 1.0)
        r = prob.residual(mu)
        if prob.robust:
            for _ in range(3):
                prob.weights = student_t_weights(r, prob.beta, prob.nu)
                prob.beta = (m_obs - gamma) / max(float((prob.weights * r**2).sum()), 1e-300)
        else:
            prob.beta = (m_obs - gamma) / max(float((r * r).sum()), 1e-300)
        # the majorizer is tight at u = E|grad x|^2; a floor keeps 1/sqrt(u) finite if a pixel's
        # gradient and its variance both vanish (far below any noise level: not a smoothing constant)
        sqrt_u = torch.sqrt(u.clamp_min(1e-12 * float(u.mean())))
        rho = 1.0 / sqrt_u
        alpha = (n_hr - 1) / float(sqrt_u.sum())
        change = float(torch.linalg.vector_norm(mu - mu_old) / torch.linalg.vector_norm(mu).clamp_min(1e-300))
        for key, val in zip(hist, (alpha, prob.beta, gamma, change)):
            hist[key].append(val)
        prob.history.append(change)
        if k > 0 and change < outer_tol:
            break
        if k < n_outer - 1:
            prob.update_registration(mu)
    post = Posterior(prob, alpha, "adaptive", rho)
    pre = CirculantPreconditioner(post, "adaptive") if precondition else None
    mu = cg(post, post.rhs(), ndim=d, x0=mu, n_iter=n_iter, tol=tol, precond=pre)
    sd = None if sd_distance is None else posterior_sd(post, shape, distance=sd_distance, n_iter=n_iter,
                                                        seed=seed, precond=pre)
    return mu, sd, {"beta": prob.beta, "alpha": alpha, "rho": rho, "history": hist}
