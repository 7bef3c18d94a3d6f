"""The forward model of the microscope: PSFs, linear operators with exact adjoints, noise, simulation.

y_t = D H W(theta_t) x + n_t  (warp, blur, downsample, noise).
"""

from mire.optics.psf import gaussian_psf, load_psf, normalize_psf, parse_psf
from mire.optics.operators import (
    Blur,
    Compose,
    Downsample,
    Identity,
    LinearOperator,
    Warp,
    frame_operator,
    rotation_matrix,
)

__all__ = [
    "gaussian_psf", "load_psf", "normalize_psf", "parse_psf",
    "LinearOperator", "Blur", "Compose", "Downsample", "Identity", "Warp", "frame_operator", "rotation_matrix",
]

# simulate / simulate_frames / noise live in their own modules (added when present)
try:  # pragma: no cover - import-time wiring
    from mire.optics.noise import add_noise  # noqa: F401
    from mire.optics.simulate import CONDITIONS, simulate, simulate_frames  # noqa: F401

    __all__ += ["add_noise", "CONDITIONS", "simulate", "simulate_frames"]
except ImportError:  # while those modules are being written
    pass
