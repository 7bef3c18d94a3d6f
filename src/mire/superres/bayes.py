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

Calibration of the SD: it is the exact posterior SD *of the model*. On a scene drawn from the
prior the learned hyperparameters come out right and the SD matches the actual error
(RMS error / RMS SD about 1, 66% of pixels within one SD; tests/superres). On the Fig. 1
camera scene the SD is about 2.6x the RMS error (98% of pixels within one SD, a probing
estimate that equals Hutchinson's unbiased trace there): the gradient prior, with its
precision learned from the few thousand well-determined directions, expects far more
fine detail in the directions the frames do not determine than the anti-aliased image
has. The SD is then conservative, not wrong for the model. The Laplacian prior, which the
evidence prefers on that scene (``prior="auto"`` picks it), expects the right amount and
is calibrated there: RMS error / RMS SD 1.10, 78% / 93% of pixels within 1 / 2 SD
(experiments/results/superres_fig1.md). Either way the SD of a stationary prior hardly
varies across the image, so it says how far to trust the image overall, not which
pixels are wrong.

``prior="adaptive"``: the gradient prior with per-pixel precisions ``lam * rho_i``,
``rho_i ~ Gamma(nu/2, nu/2)`` learned by EM (:func:`adaptive_weights`), a continuous line
process in the spirit of the compound MRF of Kanemura et al. (2009): for fixed ``rho`` the
posterior is Gaussian, so everything above applies unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mire._fft import irfftn, rfftn
from mire.superres._model import DTYPE
from mire.superres._problem import Problem
from mire.superres._solvers import cg, rademacher, slq_quadratic_log
from mire.superres.priors import QUADRATIC
from mire.superres.robust import student_t_weights

RIDGE = 1e-4  # relative ridge on P: makes the prior proper (P alone ignores the mean intensity)


def _forward_diffs(x: torch.Tensor, ndim: int) -> list[torch.Tensor]:
    """Forward differences along each spatial axis, zero in the last slice (reflecting border): full shape."""
    out = []
    for a in range(x.ndim - ndim, x.ndim):
        n = x.shape[a]
        d = x.narrow(a, 1, n - 1) - x.narrow(a, 0, n - 1)
        out.append(torch.cat([d, torch.zeros_like(x.narrow(a, 0, 1))], dim=a))
    return out


def _forward_diffs_adjoint(gs: list[torch.Tensor], ndim: int) -> torch.Tensor:
    """Adjoint of :func:`_forward_diffs` (its last slice per axis is ignored, as it is always zero)."""
    out = torch.zeros_like(gs[0])
    for g, a in zip(gs, range(gs[0].ndim - ndim, gs[0].ndim)):
        n = g.shape[a]
        gg = g.narrow(a, 0, n - 1)
        z = torch.zeros_like(g.narrow(a, 0, 1))
        out = out + torch.cat([z, gg], dim=a) - torch.cat([gg, z], dim=a)
    return out


def gradient_energy_map(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """``|grad x|^2`` per pixel (forward differences), the statistic of the adaptive prior."""
    return sum(g**2 for g in _forward_diffs(x, ndim))


class Posterior:
    """The Gaussian posterior precision ``S`` for the current registration and hyperparameters.

    ``rho`` (adaptive prior only): the per-pixel precision multipliers of the gradient prior,
    ``P = D^T diag(rho) D`` (``rho = 1`` everywhere is the ``"gradient"`` prior).
    """

    def __init__(self, prob: Problem, lam: float, prior: str, rho: torch.Tensor | None = None):
        self.prob, self.lam, self.rho = prob, lam, rho
        self.p_op = QUADRATIC["gradient" if prior == "adaptive" else prior]

    def prior_op(self, v):
        if self.rho is not None:
            d = self.prob.ndim
            return _forward_diffs_adjoint([self.rho * g for g in _forward_diffs(v, d)], d) + RIDGE * v
        return self.p_op(v, self.prob.ndim) + RIDGE * v

    def __call__(self, v):
        m = self.prob.model
        return self.prob.beta * m.adjoint(self.prob.weighted(m.forward(v))) + self.lam * self.prior_op(v)

    def rhs(self):
        return self.prob.beta * self.prob.model.adjoint(self.prob.weighted(self.prob.frames))


class CirculantPreconditioner:
    """Fourier (circulant) approximation of ``S``, used as the CG preconditioner.

    Averaged over frame positions, ``D^T D`` acts like a convolution with a triangle of
    width ``2 factor - 1`` divided by ``factor^ndim``, so ``A^T W A ~ (T mean(w) / f^d) H^T K H``,
    and ``P`` is nearly circulant: ``S ~ F^-1 diag(m(omega)) F``. Solving with ``m`` costs two
    FFTs and cuts the CG iterations several-fold; the exact ``S`` is still what CG solves.
    """

    def __init__(self, post: Posterior, prior: str):
        prob = post.prob
        model = prob.model
        shape, d = model.hr_shape, model.ndim
        freqs = [2 * np.pi * np.fft.fftfreq(n) for n in shape[:-1]] + [2 * np.pi * np.fft.rfftfreq(shape[-1])]
        grids = np.meshgrid(*freqs, indexing="ij")
        kern = np.ones(grids[0].shape)
        lap = np.zeros(grids[0].shape)
        for g, f in zip(grids, model.factor):
            with np.errstate(invalid="ignore", divide="ignore"):
                box = np.where(np.abs(np.sin(g / 2)) < 1e-12, 1.0, np.sin(f * g / 2) / (f * np.sin(g / 2)))
            kern = kern * box**2
            lap = lap + 2 - 2 * np.cos(g)
        otf2 = np.ones_like(kern)
        if model.blur is not None:
            # the blur's own kernel (centre at index 0, wrapped), moved onto this grid
            kk = irfftn(model.blur.otf, s=model.blur.fft_shape).numpy()
            offs = [np.arange(-(int(k) // 2), int(k) - int(k) // 2) for k in model.blur.psf_shape]
            psf = np.zeros(shape)
            psf[np.ix_(*[o % n for o, n in zip(offs, shape)])] = kk[np.ix_(*[o % n for o, n in
                                                                           zip(offs, model.blur.fft_shape)])]
            otf2 = np.abs(np.fft.rfftn(psf)) ** 2
        w_mean = 1.0 if prob.weights is None else float(prob.weights.mean())
        data = prob.beta * model.n_frames * w_mean / math.prod(model.factor) * otf2 * kern
        # the adaptive prior's per-pixel weights are replaced by their mean (the circulant part)
        rho_mean = 1.0 if post.rho is None else float(post.rho.mean())
        prior_spec = (rho_mean * lap if prior in ("gradient", "adaptive") else lap**2) + RIDGE
        self.m = torch.as_tensor(data + post.lam * prior_spec, dtype=DTYPE)
        self.shape, self.dims = shape, tuple(range(-d, 0))

    def _apply(self, r, power):
        return irfftn(rfftn(r, dim=self.dims) * self.m**power, s=self.shape, dim=self.dims)

    def __call__(self, r):
        return self._apply(r, -1.0)

    def sqrt(self, r):
        return self._apply(r, 0.5)

    def inv_sqrt(self, r):
        return self._apply(r, -0.5)

    def logdet(self) -> float:
        # rfft holds each conjugate pair once: count the non-self-conjugate columns twice
        n_last = self.shape[-1]
        mult = np.full(self.m.shape[-1], 2.0)
        mult[0] = 1.0
        if n_last % 2 == 0:
            mult[-1] = 1.0
        return float((torch.log(self.m) * torch.as_tensor(mult)).sum())


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
                 batch: int = 8, seed: int = 0, precond=None) -> torch.Tensor:
    """Per-pixel posterior SD ``sqrt(diag S^-1)`` by coloured probing (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed + 1)
    diag = torch.zeros(shape, dtype=DTYPE)
    probes = list(probing_vectors(shape, distance, gen))
    for i in range(0, len(probes), batch):
        z = torch.stack(probes[i:i + batch])
        u = cg(post, z, ndim=len(shape), n_iter=n_iter, tol=tol, precond=precond)
        diag += (z * u).sum(dim=0)
    return torch.sqrt(diag.clamp_min(0))


BAYES_PRIORS = ("gradient", "laplacian", "adaptive")


def prior_logdet(prior: str, shape) -> float:
    """``log|P|`` of the prior precision structure (``lambda = 1``), exactly, in O(N).

    The difference operators use reflecting (Neumann) borders, which the DCT-II
    diagonalizes: ``D^T D`` has eigenvalues ``mu_k = sum_a 2 - 2 cos(pi k_a / n_a)`` and the
    Laplacian prior ``L^T L`` has ``mu_k^2``; the ridge adds ``RIDGE``. This term of the log
    marginal likelihood does not depend on the data, but it differs between priors: without
    it the evidence of the gradient and Laplacian priors could not be compared. For
    ``"adaptive"`` (``D^T diag(rho) D``) the value for ``rho = 1`` is returned.
    """
    mu = np.zeros(())
    for n in shape:
        mu = np.add.outer(mu, 2 - 2 * np.cos(np.pi * np.arange(n) / n))
    eig = mu**2 if prior == "laplacian" else mu
    return float(np.sum(np.log(eig + RIDGE)))


def adaptive_weights(mu: torch.Tensor, lam: float, grad_var: float, nu: float, ndim: int) -> torch.Tensor:
    """E-step of the adaptive prior: ``rho_i = (nu + ndim) / (nu + lam E|grad x|_i^2)``.

    The gradient at pixel i is Gaussian with precision ``lam * rho_i`` per component and
    ``rho_i ~ Gamma(nu/2, nu/2)`` (a Student-t on gradients, a continuous line process):
    pixels on an edge get a small ``rho`` and stop being smoothed. ``E|grad x|^2`` is the
    posterior mean's squared gradient plus the posterior variance of the gradient
    (``grad_var``, one number: its average over the image).
    """
    return (nu + ndim) / (nu + lam * (gradient_energy_map(mu, ndim) + grad_var))


def solve_bayes(prob: Problem, x0: torch.Tensor, *, prior: str = "gradient", n_outer: int = 5,
                n_probes: int = 4, n_iter: int = 100, tol: float = 1e-5, sd_distance: int | None = 4,
                seed: int = 0, precondition: bool = True,
                prior_nu: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Posterior mean, per-pixel posterior SD (None if ``sd_distance`` is None) and hyperparameters.

    ``prior="adaptive"``: the gradient prior with per-pixel precisions ``lam * rho_i`` learned
    by EM like the robust likelihood's (``prior_nu`` degrees of freedom; see
    :func:`adaptive_weights`), the compound (edge-preserving) Gaussian MRF of Kanemura et al.
    For fixed ``rho`` the posterior is still Gaussian, so the mean, the hyperparameter updates
    and the posterior SD use the same machinery; the reported log marginal likelihood is the
    one given the current ``rho`` with ``log|P|`` taken at ``rho = 1`` (not comparable with
    the other priors'; theirs are exact up to the stochastic ``log|S|``).
    """
    if prior not in BAYES_PRIORS:
        raise ValueError(f"the Bayesian method needs a Gaussian (or conditionally Gaussian) prior: "
                         f"{', '.join(map(repr, BAYES_PRIORS))}, or 'tv' (variational, "
                         f"mire.superres.bayes_tv) or 'auto', got {prior!r}")
    model, d = prob.model, prob.ndim
    shape = model.hr_shape
    n_hr, m_obs = math.prod(shape), prob.frames.numel()
    gen = torch.Generator().manual_seed(seed)
    prob.update_noise(x0)
    p_op = QUADRATIC["gradient" if prior == "adaptive" else prior]
    lam = 0.5 * n_hr / max(float((x0 * p_op(x0, d)).sum() + RIDGE * (x0 * x0).sum()), 1e-12)
    rho = torch.ones(shape, dtype=DTYPE) if prior == "adaptive" else None
    logdet_p = prior_logdet(prior, shape)
    mu = x0
    # the same probes every round (common random numbers): smoother hyperparameter updates,
    # and each solve starts from the previous round's solution
    z = rademacher((n_probes,) + tuple(shape), generator=gen, dtype=DTYPE)
    u = None
    hist = {"log_marginal_likelihood": [], "beta": [], "lambda": [], "gamma": []}
    for k in range(n_outer):
        post = Posterior(prob, lam, prior, rho)
        pre = CirculantPreconditioner(post, prior) if precondition else None
        mu = cg(post, post.rhs(), ndim=d, x0=mu, n_iter=n_iter, tol=tol, precond=pre)
        # probes b = M^1/2 z: preconditioned CG then runs Lanczos on M^-1/2 S M^-1/2 from z itself,
        # so SLQ gives log|S| - log|M|, and tr(S^-1 P) = E[u . P M^-1/2 z] with u = S^-1 M^1/2 z
        b = pre.sqrt(z) if pre is not None else z
        u, (tdiag, toff) = cg(post, b, ndim=d, x0=u, n_iter=n_iter, tol=tol, precond=pre, lanczos=True) \
            if u is None else _cg_lanczos_restart(post, b, u, d, n_iter, tol, pre)
        pz = post.prior_op(pre.inv_sqrt(z) if pre is not None else z)
        tr_sp = float((u * pz).sum() / n_probes)
        gamma = min(max(n_hr - lam * tr_sp, 1.0), min(n_hr, m_obs) - 1.0)
        r = prob.residual(mu)
        e_d = 0.5 * float((prob.weighted(r) * r).sum())
        e_p = 0.5 * float((mu * post.prior_op(mu)).sum())
        logdet = float(np.mean(slq_quadratic_log(tdiag, toff, np.full(n_probes, float(n_hr)))))
        if pre is not None:
            logdet += pre.logdet()
        sum_log_w = 0.0 if prob.weights is None else float(torch.log(prob.weights).sum())
        lml = (-prob.beta * e_d - lam * e_p + 0.5 * m_obs * math.log(prob.beta) + 0.5 * sum_log_w
               + 0.5 * n_hr * math.log(lam) + 0.5 * logdet_p - 0.5 * logdet - 0.5 * m_obs * math.log(2 * math.pi))
        hist["log_marginal_likelihood"].append(lml)
        hist["beta"].append(prob.beta)
        hist["lambda"].append(lam)
        hist["gamma"].append(gamma)
        prob.history.append(lml)
        # MacKay / EM updates of the hyperparameters (and the robust precisions)
        lam_old = lam
        lam = gamma / max(2 * e_p, 1e-300)
        if rho is not None:
            # average posterior variance of a gradient component: tr(S^-1 D^T diag(rho) D) / sum(rho)
            grad_var = max(tr_sp, 0.0) / float(rho.sum())
            rho = adaptive_weights(mu, lam, d * grad_var, prior_nu, d)
        if prob.robust:
            for _ in range(3):
                prob.weights = student_t_weights(r, prob.beta, prob.nu)
                prob.beta = (m_obs - gamma) / max(float((prob.weights * r**2).sum()), 1e-300)
        else:
            prob.beta = (m_obs - gamma) / max(2 * e_d, 1e-300)
        u = u * 0 if abs(lam / lam_old - 1) > 0.5 or rho is not None else u  # a stale start only helps when S barely moved
        if k < n_outer - 1:
            prob.update_registration(mu)
    post = Posterior(prob, lam, prior, rho)
    pre = CirculantPreconditioner(post, prior) if precondition else None
    mu = cg(post, post.rhs(), ndim=d, x0=mu, n_iter=n_iter, tol=tol, precond=pre)
    sd = None if sd_distance is None else posterior_sd(post, shape, distance=sd_distance, n_iter=n_iter,
                                                        seed=seed, precond=pre)
    return mu, sd, {"beta": prob.beta, "lambda": lam, "history": hist, "rho": rho}


def _cg_lanczos_restart(post, b, u0, d, n_iter, tol, pre):
    """Warm-started probe solve; the Lanczos coefficients then describe the residual's Krylov
    space, not z's, so they are only used for the log-determinant when the start is zero."""
    if float(u0.abs().max()) == 0:
        return cg(post, b, ndim=d, n_iter=n_iter, tol=tol, precond=pre, lanczos=True)
    u = cg(post, b, ndim=d, x0=u0, n_iter=n_iter, tol=tol, precond=pre)
    _, lz = cg(post, b, ndim=d, n_iter=12, tol=0.0, precond=pre, lanczos=True)  # short Lanczos run for SLQ
    return u, lz
