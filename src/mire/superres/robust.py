"""Hierarchical (occlusion-robust) likelihood: a per-pixel noise precision learned by EM.

Kanemura, Maeda and Ishii (2009): each low-res pixel i of frame t has its own precision
``beta * w_ti`` with ``w_ti ~ Gamma(nu/2, nu/2)``; integrating ``w`` out gives a Student-t
likelihood. EM alternates the image update (a weighted least-squares problem) with

    E[w_ti] = (nu + 1) / (nu + beta * E[r_ti^2])

so pixels that the current image cannot explain (an occluding object, a dead pixel, a
bright speck) get a small precision and stop pulling the estimate (Fig. 1c of the paper).
"""

from __future__ import annotations

import torch


def student_t_weights(residual: torch.Tensor, beta: float, nu: float,
                      variance: torch.Tensor | float = 0.0) -> torch.Tensor:
    """E-step: posterior mean of the per-pixel precision multipliers ``w`` (mean about 1 on inliers).

    Parameters
    ----------
    residual : tensor
        ``y - A x`` for every low-res pixel of every frame.
    beta : float
        Global noise precision.
    nu : float
        Degrees of freedom of the Gamma prior on ``w``; small ``nu`` is more robust
        (``nu -> inf`` gives back the uniform Gaussian likelihood).
    variance : tensor or float
        Posterior variance of the prediction ``A x`` (Bayesian estimate), added to the
        squared residual as the expectation requires; 0 for a point estimate.

    Examples
    --------
    >>> import torch
    >>> w = student_t_weights(torch.tensor([0.0, 10.0]), beta=1.0, nu=2.0)
    >>> [round(float(v), 3) for v in w]
    [1.5, 0.029]
    """
    if nu <= 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    return (nu + 1.0) / (nu + beta * (residual**2 + variance))


def noise_precision(residual: torch.Tensor, weights: torch.Tensor | None, *, dof: float = 0.0) -> float:
    """M-step for the global precision: ``beta = (M - dof) / sum(w r^2)`` (``dof``: parameters fitted)."""
    w = 1.0 if weights is None else weights
    m = residual.numel()
    return float(max(m - dof, 1.0) / max(float((w * residual**2).sum()), 1e-300))
