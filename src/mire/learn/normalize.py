"""Percentile normalization, computed on a bounded subsample so it works on arrays larger than memory."""

from __future__ import annotations

import math

import numpy as np

#: Default percentiles (CSBDeep's choice): robust to hot pixels and an empty background.
PERCENTILES = (1.0, 99.8)


def subsample(array, *, max_elements: int = 2**22) -> np.ndarray:
    """A strided view of ``array`` with at most about ``max_elements`` values, read into memory.

    Works for numpy, memmap, zarr and dask arrays: only the strided elements are read.
    """
    shape = tuple(array.shape)
    n = math.prod(shape)
    step = max(1, math.ceil((n / max_elements) ** (1 / max(len(shape), 1))))
    # never stride the two in-plane axes more than needed: keep the slowest axes strided first
    sl = tuple(slice(None, None, step) for _ in shape)
    return np.asarray(array[sl], dtype=np.float64)


def percentile_range(array, *, percentiles=PERCENTILES, max_elements: int = 2**22) -> tuple[float, float]:
    """(low, high) percentiles of ``array`` from a strided subsample; ``high > low`` always.

    Examples
    --------
    >>> import numpy as np
    >>> lo, hi = percentile_range(np.arange(1001.0), percentiles=(1, 99))
    >>> round(lo), round(hi)
    (10, 990)
    """
    sample = subsample(array, max_elements=max_elements)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise ValueError("cannot normalize: the image has no finite values")
    lo, hi = np.percentile(sample, percentiles)
    if not hi > lo:  # flat image: fall back to min/max, then to a unit range
        lo, hi = float(sample.min()), float(sample.max())
        if not hi > lo:
            hi = lo + 1.0
    return float(lo), float(hi)


def input_range(image, *, normalization=None, percentiles=PERCENTILES) -> tuple[float, float]:
    """The (low, high) intensities of ``image`` that a network maps to 0 and 1.

    ``normalization``, a given ``(low, high)`` pair (checked), wins; otherwise the
    ``percentiles`` of ``image`` (:func:`percentile_range`). Blockwise prediction passes the
    whole volume's range, so that every block is mapped as a whole-volume run maps it.

    Examples
    --------
    >>> input_range(np.zeros(4), normalization=(10, 250))
    (10.0, 250.0)
    """
    if normalization is None:
        return percentile_range(image, percentiles=percentiles)
    try:
        lo, hi = (float(v) for v in np.asarray(normalization, dtype=np.float64).ravel())
    except (TypeError, ValueError):
        raise ValueError(f"normalization must be one (low, high) pair, got {normalization!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"normalization must be finite with high > low, got {normalization!r}")
    return lo, hi


def normalize(x, lo: float, hi: float, *, dtype=np.float32) -> np.ndarray:
    """Map ``lo -> 0`` and ``hi -> 1`` (no clipping: restoration must keep the full range)."""
    return ((np.asarray(x, dtype=np.float64) - lo) / (hi - lo)).astype(dtype, copy=False)


def denormalize(x, lo: float, hi: float, *, dtype=np.float32) -> np.ndarray:
    """Inverse of :func:`normalize`."""
    return (np.asarray(x, dtype=np.float64) * (hi - lo) + lo).astype(dtype, copy=False)
