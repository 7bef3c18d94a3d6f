"""State shared by the estimators: scaled frames, the forward model, robust weights, noise precision."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mire.superres._model import DTYPE, FrameModel
from mire.superres.register import refine_registration
from mire.superres.robust import noise_precision, student_t_weights


@dataclass
class Problem:
    frames: torch.Tensor  # (T, *lr), scaled to about [0, 1]
    model: FrameModel
    params0: np.ndarray  # initial registration: centre of the registration prior
    reference: int
    robust: bool = False
    nu: float = 2.0
    registration_sd: tuple | None = None  # (shift px, rotation rad) of the registration prior
    refine: bool = True
    weights: torch.Tensor | None = None  # per-pixel precision multipliers (robust), None = uniform
    beta: float = 1.0  # noise precision of the scaled frames
    history: list = field(default_factory=list)

    @property
    def ndim(self) -> int:
        return self.model.ndim

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.frames - self.model.forward(x)

    def weighted(self, r: torch.Tensor) -> torch.Tensor:
        return r if self.weights is None else r * self.weights

    def back_projection(self) -> torch.Tensor:
        """Normalized back-projection ``A^T y / A^T 1`` (shift-and-add): a cheap, registered first image."""
        num = self.model.adjoint(self.frames)
        den = self.model.adjoint(torch.ones_like(self.frames))
        mean = float(self.frames.mean())
        return torch.where(den > 1e-6 * den.max(), num / den.clamp_min(1e-300), torch.full_like(num, mean))

    def update_noise(self, x: torch.Tensor, *, dof: float = 0.0, variance=0.0) -> None:
        """EM step of the likelihood: robust weights (if robust) and the noise precision."""
        r = self.residual(x)
        if self.robust:
            # alternate the two updates a few times: they depend on each other
            for _ in range(3):
                self.weights = student_t_weights(r, self.beta, self.nu, variance)
                self.beta = noise_precision(r, self.weights, dof=dof)
        else:
            self.beta = noise_precision(r, None, dof=dof)

    def update_registration(self, x: torch.Tensor, *, n_steps: int = 2) -> None:
        if self.refine and self.model.n_frames > 1:
            refine_registration(self.model, x, self.frames, self.params0, reference=self.reference,
                                beta=self.beta, weights=self.weights, prior_sd=self.registration_sd,
                                n_steps=n_steps)


def as_tensor(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=DTYPE)
