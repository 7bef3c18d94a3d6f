"""Input checks shared by every public function: clear errors that name the problem."""

from __future__ import annotations

import numpy as np

AXES_LETTERS = "TCZYX"



class DataError(ValueError):
    """The pixel values themselves are unusable (empty, NaN or infinite): the CLI names the file."""

def check_dtype(dtype, *, name: str = "image", allow_bool: bool = True) -> None:
    """Refuse pixels that cannot be intensities: complex (say how to make them real), non-numeric,
    and bool where ``allow_bool`` is False (say how to convert a mask)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} has complex values (dtype {dtype}); mire works on real intensities: pass "
                        f"np.abs(x) (magnitude), x.real or x.imag, e.g. np.abs(x).astype(np.float32)")
    if dtype == object or not (np.issubdtype(dtype, np.number) or dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {dtype}")
    if dtype == bool and not allow_bool:
        raise TypeError(f"{name} is a bool mask, not intensities: convert it with x.astype(np.float32) "
                        f"(or x.astype(np.uint8) to store it)")


def check_image(image, *, name: str = "image", ndim=None, allow_nan: bool = False,
                min_size: int = 1, allow_bool: bool = True) -> np.ndarray:
    """Return ``image`` as a numpy array after checking it is usable.

    Raises a ``ValueError`` naming ``name`` when the array is empty, has the wrong
    number of dimensions, or holds NaN / infinite values, and a ``TypeError`` when it is
    not real numbers (complex: the message says how to convert; bool when ``allow_bool``
    is False).
    """
    if hasattr(image, "dtype") and not isinstance(image, np.ndarray):
        check_dtype(image.dtype, name=name, allow_bool=allow_bool)  # before np.asarray drops anything
    arr = np.asarray(image)
    check_dtype(arr.dtype, name=name, allow_bool=allow_bool)
    if arr.size == 0 or min(arr.shape, default=0) < min_size:
        raise DataError(f"{name} is empty (shape {arr.shape})")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got {arr.ndim}D array of shape {arr.shape}")
    if not allow_nan and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise DataError(f"{name} contains {n_bad} NaN or infinite values")
    return arr


def check_axes(axes: str | None, ndim: int, *, name: str = "axes") -> str | None:
    """Validate an axes string such as ``"ZYX"`` against an array's ``ndim``."""
    if axes is None:
        return None
    if not isinstance(axes, str):
        raise TypeError(f"{name} must be a string such as 'ZYX', got {type(axes).__name__}")
    axes = axes.upper()
    bad = [a for a in axes if a not in AXES_LETTERS]
    if bad:
        raise ValueError(f"{name}={axes!r} has unknown letters {bad}; use letters from {AXES_LETTERS!r}")
    if len(set(axes)) != len(axes):
        raise ValueError(f"{name}={axes!r} repeats a letter")
    if len(axes) != ndim:
        raise ValueError(f"{name}={axes!r} has {len(axes)} letters but the data has {ndim} dimensions")
    return axes


def check_same_shape(a, b, *, names=("a", "b")) -> None:
    if np.shape(a) != np.shape(b):
        raise ValueError(f"{names[0]} shape {np.shape(a)} does not match {names[1]} shape {np.shape(b)}")
