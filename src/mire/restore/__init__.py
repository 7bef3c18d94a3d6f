"""Single-image restoration: model-based deconvolution (TV, Richardson-Lucy, Wiener) and learned restorers.

Every solver uses the forward model of :mod:`mire.optics` (the PSF blur ``Blur``) on an extended
domain, so borders carry no wrap-around; numpy arrays in and out, torch inside (GPU when present).
"""

from mire.restore._weight import choose_tv_bregman, choose_tv_weight
from mire.restore.chunked import restore_blockwise
from mire.restore.richardson_lucy import richardson_lucy
from mire.restore.tv import tv_deconvolve
from mire.restore.wiener import wiener

__all__ = ["tv_deconvolve", "choose_tv_weight", "choose_tv_bregman", "richardson_lucy", "wiener", "restore_blockwise",
           "Restorer"]


def __getattr__(name):
    # the trained-network restorer lives in its own module (written separately) and pulls in the
    # network stack; import it only when asked for, so deconvolution stays quick to import
    if name == "Restorer":
        try:
            from mire.restore.learned import Restorer
        except ImportError as exc:
            raise AttributeError("mire.restore.Restorer needs mire.restore.learned, which is not available") from exc
        return Restorer
    raise AttributeError(f"module 'mire.restore' has no attribute {name!r}")
