"""Multi-frame super-resolution: registration, ML, MAP and Bayesian estimators, time-lapse.

Several low-resolution frames of one scene, each shifted and rotated, blurred by the PSF
and integrated over pixels (``y_t = D H W(theta_t) x + n_t``, the forward model of
:mod:`mire.optics`), are inverted into one high-resolution image ``x``.

>>> from mire.superres import superresolve, register_frames  # doctest: +SKIP
"""

from mire.superres.api import METHODS, superresolve
from mire.superres.register import register_frames, registration_error, relative_registration

__all__ = ["METHODS", "superresolve", "register_frames", "registration_error", "relative_registration"]

try:  # time-lapse support (needs only the pieces above)
    from mire.superres.timelapse import kalman_smooth, superresolve_timelapse  # noqa: F401

    __all__ += ["kalman_smooth", "superresolve_timelapse"]
except ImportError:  # pragma: no cover
    pass
