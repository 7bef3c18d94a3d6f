"""mire: microscopy image restoration and segmentation.

Every method inverts one forward model of the microscope, y_t = W(theta_t) x + n_t
(warp, PSF blur, downsampling, noise), written once in :mod:`mire.optics`.

Submodules are imported lazily so that ``import mire`` stays fast and a user who
only reads files never pays for torch.
"""

from __future__ import annotations

import importlib

try:  # one source of truth: the installed package's metadata (pyproject.toml's version)
    from importlib.metadata import PackageNotFoundError, version as _dist_version

    __version__ = _dist_version("mire")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.1.0"

_SUBMODULES = {
    "io",
    "optics",
    "metrics",
    "data",
    "restore",
    "superres",
    "segment",
    "trace",
    "nets",
    "learn",
    "blockwise",
    "models",
}

__all__ = sorted(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"mire.{name}")
    raise AttributeError(f"module 'mire' has no attribute {name!r}")


def __dir__():
    return __all__
