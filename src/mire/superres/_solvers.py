"""Batched conjugate gradients (with the Lanczos coefficients for log-determinants) and L-BFGS."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch


def _dot(a, b, nd):
    return (a * b).sum(dim=tuple(range(a.ndim - nd, a.ndim)), keepdim=True)


def cg(apply_a: Callable, b: torch.Tensor, *, ndim: int, x0=None, n_iter: int = 50, tol: float = 1e-6,
       precond: Callable | None = None, lanczos: bool = False):
    """Solve ``A x = b`` for a symmetric positive definite ``A`` by (preconditioned) conjugate gradients.

    ``b`` may carry leading batch axes (several right-hand sides solved together: the
    operators apply to all of them in one call). Iteration stops when every relative
    residual is below ``tol`` or after ``n_iter`` steps (early stopping is the
    regularizer of the ML estimate).

    With ``lanczos=True`` also returns, per right-hand side, the Lanczos tridiagonal
    coefficients (diagonal, off-diagonal) of the (preconditioned) operator, from which
    stochastic Lanczos quadrature estimates ``z^T log(A) z``.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply_a(x) if x0 is not None else b.clone()
    z = precond(r) if precond is not None else r
    p = z.clone()
    rz = _dot(r, z, ndim)
    bnorm = torch.sqrt(_dot(b, b, ndim)).clamp_min(1e-300)
    alphas, betas = [], []
    for _ in range(n_iter):
        ap = apply_a(p)
        pap = _dot(p, ap, ndim)
        alpha = rz / pap.clamp_min(1e-300)
        x = x + alpha * p
        r = r - alpha * ap
        z = precond(r) if precond is not None else r
        rz_new = _dot(r, z, ndim)
        beta = rz_new / rz.clamp_min(1e-300)
        alphas.append(alpha.reshape(-1))
        betas.append(beta.reshape(-1))
        rz = rz_new
        if bool(torch.all(torch.sqrt(_dot(r, r, ndim)) / bnorm < tol)):
            break
        p = z + beta * p
    if not lanczos:
        return x
    a = torch.stack(alphas, dim=1).cpu().numpy()  # (batch, k)
    bt = torch.stack(betas, dim=1).cpu().numpy()
    k = a.shape[1]
    diag = 1.0 / a
    diag[:, 1:] += bt[:, :-1] / a[:, :-1]
    off = np.sqrt(np.maximum(bt[:, :-1], 0)) / a[:, :-1]
    return x, (diag, off[:, : k - 1])


def slq_quadratic_log(diag: np.ndarray, off: np.ndarray, znorm2: np.ndarray) -> np.ndarray:
    """Stochastic Lanczos quadrature: ``z^T log(A) z ~ |z|^2 e1^T log(T) e1`` per probe."""
    out = np.empty(len(diag))
    for i in range(len(diag)):
        t = np.diag(diag[i]) + np.diag(off[i], 1) + np.diag(off[i], -1)
        ev, vec = np.linalg.eigh(t)
        out[i] = znorm2[i] * float(np.sum(vec[0] ** 2 * np.log(np.maximum(ev, 1e-300))))
    return out


def lbfgs(energy: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, n_iter: int = 100,
          history: list | None = None) -> torch.Tensor:
    """Minimize a smooth scalar ``energy(x)`` with torch's L-BFGS (strong Wolfe line search)."""
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=n_iter, history_size=10, tolerance_grad=1e-10,
                            tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        e = energy(x)
        e.backward()
        return e

    opt.step(closure)
    if history is not None:
        with torch.no_grad():
            history.append(float(energy(x)))
    return x.detach()


def rademacher(shape, *, generator: torch.Generator, dtype, device=None) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=generator, device=device) * 2 - 1).to(dtype)


def log2pi(n: int) -> float:
    return n * math.log(2 * math.pi)
