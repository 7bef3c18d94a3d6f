"""Image priors for MAP and Bayesian super-resolution, as torch energies on the high-res grid.

- ``laplacian``: quadratic smoothness ``1/2 |Lap x|^2`` (Hardie et al.); linear normal
  equations, so the MAP estimate is a CG solve.
- ``tv``: total variation ``sum sqrt(|grad x|^2 + eps^2)`` (edge preserving, smoothed so
  L-BFGS applies).
- ``btv``: bilateral TV of Farsiu et al. 2004, ``sum_{l,m} alpha^{|l|+|m|} |x - S^l S^m x|``
  over shifts up to ``p`` pixels (Charbonnier-smoothed L1).
- ``huber``: Huber penalty on first differences (Pickup et al. 2007).
- ``gradient``: quadratic ``1/2 |grad x|^2`` (a Gaussian Markov random field).
"""

from __future__ import annotations

import torch

PRIORS = ("laplacian", "tv", "btv")


def _diff(x: torch.Tensor, axis: int, step: int = 1) -> torch.Tensor:
    n = x.shape[axis]
    return x.narrow(axis, step, n - step) - x.narrow(axis, 0, n - step)


def laplacian(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Discrete Laplacian with reflecting borders (no wrap-around at the image edges)."""
    out = torch.zeros_like(x)
    for a in range(x.ndim - ndim, x.ndim):
        xp = torch.cat([x.narrow(a, 0, 1), x, x.narrow(a, x.shape[a] - 1, 1)], dim=a)
        n = x.shape[a]
        out = out + xp.narrow(a, 0, n) + xp.narrow(a, 2, n) - 2 * x
    return out


def gradient_operator(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """``D^T D x`` for forward differences with reflecting borders (a negative Laplacian)."""
    return -laplacian(x, ndim)


def laplacian_operator(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """``L^T L x`` (the Laplacian above is symmetric, so this is ``L L x``)."""
    return laplacian(laplacian(x, ndim), ndim)


QUADRATIC = {"laplacian": laplacian_operator, "gradient": gradient_operator}


def energy(name: str, x: torch.Tensor, ndim: int, *, eps: float = 1e-3, btv_p: int = 2,
           btv_alpha: float = 0.7, huber: float = 0.01) -> torch.Tensor:
    """The prior energy ``R(x)`` (a scalar tensor) of the prior ``name``."""
    axes = range(x.ndim - ndim, x.ndim)
    if name == "laplacian":
        return 0.5 * (laplacian(x, ndim) ** 2).sum()
    if name == "gradient":
        return 0.5 * sum((_diff(x, a) ** 2).sum() for a in axes)
    if name == "tv":
        # forward differences cropped to a common shape so |grad x| is per pixel
        ds = [_diff(x, a) for a in axes]
        crop = tuple(slice(0, x.shape[a] - 1) if a in axes else slice(None) for a in range(x.ndim))
        g2 = sum(d[crop] ** 2 for d in ds)
        return torch.sqrt(g2 + eps**2).sum()
    if name == "btv":
        total = x.new_zeros(())
        last = x.ndim - 1
        for l in range(0, btv_p + 1):  # noqa: E741  (l, m as in Farsiu et al.)
            for m in range(-btv_p, btv_p + 1):
                if l == 0 and m <= 0:
                    continue  # each shift once (the other half-plane is the same pair of pixels)
                # x - S^l S^m x over the overlap, shifts in the last two axes
                a = x.narrow(last - 1, l, x.shape[-2] - l)
                b = x.narrow(last - 1, 0, x.shape[-2] - l)
                if m >= 0:
                    a, b = a.narrow(last, m, x.shape[-1] - m), b.narrow(last, 0, x.shape[-1] - m)
                else:
                    a, b = a.narrow(last, 0, x.shape[-1] + m), b.narrow(last, -m, x.shape[-1] + m)
                total = total + btv_alpha ** (abs(l) + abs(m)) * torch.sqrt((a - b) ** 2 + eps**2).sum()
        return total
    if name == "huber":
        total = x.new_zeros(())
        for a in axes:
            d = _diff(x, a).abs()
            total = total + torch.where(d <= huber, 0.5 * d**2, huber * d - 0.5 * huber**2).sum()
        return total
    raise ValueError(f"unknown prior {name!r}; choose one of {PRIORS + ('huber', 'gradient')}")
