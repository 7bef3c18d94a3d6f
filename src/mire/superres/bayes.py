"""Bayesian super-resolution: Tipping and Bishop (2003), marginalizing over the high-res image.

Model (paper Eqs. 6-8): ``y = A(theta) x + n`` with noise precision ``beta`` (per pixel
``beta * w_ti`` when robust), and a Gaussian smoothness prior ``x ~ N(0, (lambda P)^-1)``
with ``P = D^T D`` (first differences; ``prior="laplacian"`` uses ``L^T L``) plus a tiny ridge
that makes it proper. The posterior over ``x`` is Gaussian,

    S = beta A^T W A + lambda P,   mu = beta S^-1 A^T W y,   Sigma = S^-1,

and the registration and hyperparameters maximize the marginal likelihood

    log p(y | theta, beta, lambda) = -beta/2 |y - A mu|^2_W - lambda/2 mu^T P mu
        + M/2 log beta + 1/2 sum log w + N/2 log lambda - 1/2 log|S| + const.

How it is made tractable for real image sizes (N high-res pixels, never an N x N matrix):

* ``mu``: conjugate gradients, each step one application of ``A`` and ``A^T`` (FFT blur,
  sparse warp): O(N) per step.
* Hyperparameters: MacKay's fixed-point updates ``lambda = gamma / (mu^T P mu)``,
  ``beta = (M - gamma) / |y - A mu|^2_W`` with ``gamma = N - lambda tr(S^-1 P)``. The trace
  is estimated by Hutchinson's estimator with a few Rademacher probes (one CG solve each).
  We chose stochastic estimators over a Fourier (circulant) approximation because with
  rotations, occlusions and robust per-pixel weights ``A^T W A`` is far from circulant,
  while for a trace over N ~ 10^4-10^6 nearly-equal diagonal terms the Hutchinson
  relative error is about ``sqrt(2 / N)``: 4 probes are plenty.
* ``log|S|`` (only to report the marginal likelihood): stochastic Lanczos quadrature
  from the Lanczos coefficients the same CG probe solves produce, at no extra cost.
* Registration: Gauss-Newton on ``beta/2 |y_t - A_t(theta) mu|^2_W`` plus the registration
  prior, at the posterior mean. This drops the (small) dependence of ``log|S|`` on the
  registration, the usual EM-like simplification.
* Per-pixel posterior SD: ``sqrt(diag S^-1)`` by probing: the pixels are coloured on a grid
  of spacing ``sd_distance`` (``sd_distance ** ndim`` colours), each probe holds random
  signs on one colour, and ``diag(S^-1) ~ sum_c z_c * (S^-1 z_c)``. Its error is the
  posterior covariance between same-coloured pixels, at least ``sd_distance`` apart,
  which decays quickly for a smoothness prior (validated against the exact inverse in the
  tests). Cost: ``sd_distance ** ndim`` solves, all O(N).

Every step is linear in the number of pixels, times the CG iteration count.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mire.superres._model import DTYPE
from mire.superres._problem import Problem
from mire.superres._solvers import cg, rademacher, slq_quadratic_log
from mire.superres.priors import QUADRATIC
from mire.superres.robust import student_t_weights

RIDGE = 1e-4  # relative ridge on P: makes the prior proper (P alone ignores the mean intensity)


class Posterior:
    """The Gaussian posterior precision ``S`` for the current registration and hyperparameters."""

    def __init__(self, prob: Problem, lam: float, prior: str):
        self.prob, self.lam, self.p_op = prob, lam, QUADRATIC[prior]

    def prior_op(self, v):
        return self.p_op(v, self.prob.ndim) + RIDGE * v

    def __call__(self, v):
        m = self.prob.model
        return self.prob.beta * m.adjoint(self.prob.weighted(m.forward(v))) + self.lam * self.prior_op(v)

    def rhs(self):
        return self.prob.beta * self.prob.model.adjoint(self.prob.weighted(self.prob.frames))


def probing_vectors(shape, distance: int, generator: torch.Generator):
    """Coloured probes: one per colour (pixel index mod ``distance`` on every axis), random signs on it."""
    grids = np.meshgrid(*[np.arange(n) % distance for n in shape], indexing="ij")
    colour = np.zeros(shape, dtype=np.int64)
    for g in grids:
        colour = colour * distance + g
    colour = torch.as_tensor(colour)
    signs = rademacher(tuple(shape), generator=generator, dtype=DTYPE)
    for c in range(distance ** len(shape)):
        yield torch.where(colour == c, signs, torch.zeros_like(signs))


def posterior_sd(post: Posterior, shape, *, distance: int = 4, n_iter: int = 200, tol: float = 1e-4,
                 batch: int = 8, seed: int = 0) -> torch.Tensor:
    """Per-pixel posterior SD ``sqrt(diag S^-1)`` by coloured probing (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed + 1)
    diag = torch.zeros(shape, dtype=DTYPE)
    probes = list(probing_vectors(shape, distance, gen))
    for i in range(0, len(probes), batch):
        z = torch.stack(probes[i:i + batch])
        u = cg(post, z, ndim=len(shape), n_iter=n_iter, tol=tol)
        diag += (z * u).sum(dim=0)
    return torch.sqrt(diag.clamp_min(0))


def solve_bayes(prob: Problem, x0: torch.Tensor, *, prior: str = "gradient", n_outer: int = 6,
                n_probes: int = 4, n_iter: int = 150, tol: float = 1e-5, sd_distance: int | None = 4,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Posterior mean, per-pixel posterior SD (None if ``sd_distance`` is None) and hyperparameters."""
    if prior not in QUADRATIC:
        raise ValueError(f"the Bayesian method needs a Gaussian prior: 'gradient' or 'laplacian', got {prior!r}")
    model, d = prob.model, prob.ndim
    shape = model.hr_shape
    n_hr, m_obs = math.prod(shape), prob.frames.numel()
    gen = torch.Generator().manual_seed(seed)
    prob.update_noise(x0)
    p_op = QUADRATIC[prior]
    lam = 0.5 * n_hr / max(float((x0 * p_op(x0, d)).sum() + RIDGE * (x0 * x0).sum()), 1e-12)
    mu = x0
    hist = {"log_marginal_likelihood": [], "beta": [], "lambda": [], "gamma": []}
    for k in range(n_outer):
        post = Posterior(prob, lam, prior)
        mu = cg(post, post.rhs(), ndim=d, x0=mu, n_iter=n_iter, tol=tol)
        z = rademacher((n_probes,) + tuple(shape), generator=gen, dtype=DTYPE)
        u, (tdiag, toff) = cg(post, z, ndim=d, n_iter=n_iter, tol=tol, lanczos=True)
        tr_sp = float((u * post.prior_op(z)).sum() / n_probes)
        gamma = min(max(n_hr - lam * tr_sp, 1.0), min(n_hr, m_obs) - 1.0)
        r = prob.residual(mu)
        e_d = 0.5 * float((prob.weighted(r) * r).sum())
        e_p = 0.5 * float((mu * post.prior_op(mu)).sum())
        logdet = float(np.mean(slq_quadratic_log(tdiag, toff, np.full(n_probes, float(n_hr)))))
        sum_log_w = 0.0 if prob.weights is None else float(torch.log(prob.weights).sum())
        lml = (-prob.beta * e_d - lam * e_p + 0.5 * m_obs * math.log(prob.beta) + 0.5 * sum_log_w
               + 0.5 * n_hr * math.log(lam) - 0.5 * logdet - 0.5 * m_obs * math.log(2 * math.pi))
        hist["log_marginal_likelihood"].append(lml)
        hist["beta"].append(prob.beta)
        hist["lambda"].append(lam)
        hist["gamma"].append(gamma)
        prob.history.append(lml)
        # MacKay / EM updates of the hyperparameters (and the robust precisions)
        lam = gamma / max(2 * e_p, 1e-300)
        if prob.robust:
            for _ in range(3):
                prob.weights = student_t_weights(r, prob.beta, prob.nu)
                prob.beta = (m_obs - gamma) / max(float((prob.weights * r**2).sum()), 1e-300)
        else:
            prob.beta = (m_obs - gamma) / max(2 * e_d, 1e-300)
        if k < n_outer - 1:
            prob.update_registration(mu)
    post = Posterior(prob, lam, prior)
    mu = cg(post, post.rhs(), ndim=d, x0=mu, n_iter=n_iter, tol=tol)
    sd = None if sd_distance is None else posterior_sd(post, shape, distance=sd_distance, n_iter=n_iter,
                                                        seed=seed)
    return mu, sd, {"beta": prob.beta, "lambda": lam, "history": hist}
