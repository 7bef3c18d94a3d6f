"""Bayesian super-resolution marginalizing over the registration (Pickup, Capel, Roberts, Zisserman 2007).

Instead of trusting one registration estimate, integrate it out (paper Eq. 9):

    p(x | y) ∝ p(x) ∫ p(y | x, theta) p(theta) dtheta.

The integral uses a Laplace approximation around the best registration ``theta_hat(x)``
for the current image: with ``S_t(x) = beta J_t(x)^T W J_t(x) + P_theta`` the Gauss-Newton
Hessian of frame t's negative log likelihood plus the registration prior precision,

    -log p(x | y) ≈ beta/2 sum_t |y_t - A_t(theta_hat) x|^2_W + 1/2 |theta_hat - theta_0|^2_P
                    + 1/2 sum_t log|S_t(x)| + lambda Huber(grad x) + const.

``J_t(x) = d(A_t x)/d theta`` is linear in ``x``, so the log-determinant term is a smooth
function of the image that penalizes images whose registration would be ill-determined
(the term a point estimate of theta ignores); its gradient comes from autograd. As in
Pickup et al., ``theta_hat`` is held fixed during an image update (the envelope theorem
removes its first-order effect on the first two terms) and re-estimated between updates.
The image prior is the Huber penalty on first differences (edge preserving, convex).
"""

from __future__ import annotations

import numpy as np
import torch

from mire.superres._model import DTYPE
from mire.superres._problem import Problem
from mire.superres._solvers import lbfgs
from mire.superres.ml_map import DEFAULT_WEIGHT
from mire.superres.priors import energy
from mire.superres.register import refine_registration


def solve_bayes_registration(prob: Problem, x0: torch.Tensor, *, weight: float | None = None,
                             huber: float = 0.02, n_iter: int = 60, n_outer: int = 3) -> tuple[torch.Tensor, dict]:
    """Image estimate with the registration marginalized (Laplace); returns the image and
    ``registration_posterior_sd`` (T, ndim + 1): the SD of each frame's parameters under the
    Laplace approximation (shift px, rotation rad)."""
    weight = DEFAULT_WEIGHT["huber"] if weight is None else float(weight)
    model, d, n_t = prob.model, prob.ndim, prob.model.n_frames
    prec = np.zeros(d + 1)
    if prob.registration_sd is not None:
        prec[:d] = 1.0 / prob.registration_sd[0] ** 2
        prec[d] = 1.0 / prob.registration_sd[1] ** 2
    # a weak floor keeps log|S_t| finite for frames whose motion the image cannot determine
    p_theta = torch.as_tensor(np.diag(np.maximum(prec, 1e-6)), dtype=DTYPE)
    x = x0
    prob.update_noise(x)
    hessians = np.zeros((n_t, d + 1, d + 1))
    for k in range(n_outer):
        terms = [None if t == prob.reference else model.jacobian_terms(model.params[t]) for t in range(n_t)]
        beta = prob.beta

        def objective(v):
            r = prob.residual(v)
            data = 0.5 * (prob.weighted(r) * r).sum()
            logdet = v.new_zeros(())
            for t, term in enumerate(terms):
                if term is None:
                    continue  # the reference frame's motion is fixed: nothing to marginalize
                _, jac = model.apply_jacobian(v, *term)
                j = jac.reshape(-1, d + 1)
                jw = j if prob.weights is None else j * prob.weights[t].reshape(-1, 1)
                logdet = logdet + torch.logdet(beta * jw.T @ j + p_theta)
            # the posterior divided by beta * T, so ``weight`` means what it means for MAP
            return (data + 0.5 * logdet / beta) / n_t + weight * energy("huber", v, d, huber=huber)

        x = lbfgs(objective, x, n_iter=n_iter, history=prob.history)
        prob.update_noise(x)
        if prob.refine and n_t > 1:
            _, hessians = refine_registration(model, x, prob.frames, prob.params0, reference=prob.reference,
                                              beta=prob.beta, weights=prob.weights,
                                              prior_sd=prob.registration_sd, n_steps=2, return_hessian=True)
    reg_sd = np.zeros((n_t, d + 1))
    for t in range(n_t):
        if t != prob.reference and np.all(np.isfinite(hessians[t])) and np.linalg.det(hessians[t]) > 0:
            reg_sd[t] = np.sqrt(np.diag(np.linalg.inv(hessians[t])))
    return x, {"registration_posterior_sd": reg_sd}
