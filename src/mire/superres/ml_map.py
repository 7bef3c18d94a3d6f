"""Maximum-likelihood and MAP super-resolution with joint registration (paper Eqs. 4 and 5).

Both alternate an image update for fixed registration with a Gauss-Newton refinement of
every frame's shift and rotation for the fixed image (and, with ``robust=True``, the EM
update of the per-pixel precisions of :mod:`mire.superres.robust`).

- ML (Eq. 4): ``min_x sum_t |y_t - A_t x|^2`` by conjugate gradients on the normal
  equations, started from the shift-and-add image; the problem is ill-posed (the PSF and
  pixel integration remove high frequencies), so a small number of CG iterations is the
  regularizer (early stopping).
- MAP (Eq. 5): ``min_x 1/(2T) sum_t |y_t - A_t x|^2_W + weight R(x)`` with ``R`` from
  :mod:`mire.superres.priors`, plus a Gaussian prior on the registration around its initial
  estimate. Laplacian: CG on the (linear) normal equations; TV / BTV: L-BFGS.
"""

from __future__ import annotations

import torch

from mire.superres._problem import Problem
from mire.superres._solvers import cg, lbfgs
from mire.superres.priors import QUADRATIC, energy

# defaults for frames scaled to about [0, 1], chosen by hand (not tuned yet: the MDSP experiment
# uses 0.001 for TV on real camera sequences, where 0.004 posterizes)
DEFAULT_WEIGHT = {"laplacian": 0.02, "tv": 0.004, "btv": 0.0015, "huber": 0.05, "gradient": 0.01}


def solve_ml(prob: Problem, x0: torch.Tensor, *, n_iter: int = 8, n_outer: int = 3) -> torch.Tensor:
    """ML estimate: ``n_iter`` CG steps per outer round, registration refined between rounds."""
    model, d = prob.model, prob.ndim
    x = x0
    for k in range(n_outer):
        b = model.adjoint(prob.weighted(prob.frames))
        x = cg(lambda v: model.adjoint(prob.weighted(model.forward(v))), b, ndim=d, x0=x0, n_iter=n_iter,
               tol=1e-12)  # n_iter is the regularizer, not the tolerance
        prob.update_noise(x)
        r = prob.residual(x)
        prob.history.append(float(0.5 * (prob.weighted(r) * r).sum()))
        if k < n_outer - 1:
            prob.update_registration(x)
    return x


def map_energy(prob: Problem, x: torch.Tensor, prior: str, weight: float) -> torch.Tensor:
    r = prob.residual(x)
    return 0.5 * (prob.weighted(r) * r).sum() / prob.model.n_frames + weight * energy(prior, x, prob.ndim)


def solve_map(prob: Problem, x0: torch.Tensor, *, prior: str = "tv", weight: float | None = None,
              n_iter: int = 60, n_outer: int = 3) -> torch.Tensor:
    """MAP estimate with the image prior ``prior`` and the registration prior of ``prob``."""
    if prior not in DEFAULT_WEIGHT:
        raise ValueError(f"unknown prior {prior!r}; choose 'laplacian', 'tv' or 'btv'")
    weight = DEFAULT_WEIGHT[prior] if weight is None else float(weight)
    if weight < 0:
        raise ValueError(f"weight must be >= 0, got {weight}")
    model, d, n_t = prob.model, prob.ndim, prob.model.n_frames
    x = x0
    for k in range(n_outer):
        if prior in QUADRATIC:
            op = QUADRATIC[prior]
            b = model.adjoint(prob.weighted(prob.frames)) / n_t
            x = cg(lambda v: model.adjoint(prob.weighted(model.forward(v))) / n_t + weight * op(v, d), b,
                   ndim=d, x0=x, n_iter=max(n_iter, 1), tol=1e-6)
        else:
            x = lbfgs(lambda v: map_energy(prob, v, prior, weight), x, n_iter=n_iter)
        with torch.no_grad():
            prob.history.append(float(map_energy(prob, x, prior, weight)))
        prob.update_noise(x)
        if k < n_outer - 1:
            prob.update_registration(x)
    return x
