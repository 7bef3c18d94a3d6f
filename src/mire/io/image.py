"""The :class:`Image` record (pixels plus the metadata that gives them meaning) and axis helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mire._validate import AXES_LETTERS, check_axes
from mire.io.errors import AxesError

SPATIAL = "ZYX"

# Length units found in ImageJ / OME / OME-Zarr metadata, as micrometres per unit.
_UNITS_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "\\u00b5m": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
    "å": 1e-4, "angstrom": 1e-4, "pm": 1e-6, "picometer": 1e-6,
}


def unit_to_um(unit) -> float | None:
    """Micrometres per ``unit`` (``"nm"`` -> 0.001), or None for 'pixel' / unknown units."""
    if unit is None:
        return 1.0
    return _UNITS_UM.get(str(unit).strip().lower())


@dataclass
class Image:
    """Pixels and the metadata needed to interpret them.

    Attributes
    ----------
    data : ndarray or dask.array.Array
        The pixels (a dask array when read with ``lazy=True``).
    axes : str or None
        One letter per dimension from ``"TCZYX"``, or None when the file does not say.
    pixel_size : dict or None
        Physical size of a pixel in micrometres for the spatial axes the file knows,
        e.g. ``{"Z": 1.0, "Y": 0.33, "X": 0.33}``; None when unknown.

    Examples
    --------
    >>> import numpy as np
    >>> im = Image(np.zeros((2, 3)), "YX", {"Y": 0.5, "X": 0.5})
    >>> im
    Image(shape=(2, 3), dtype=float64, axes='YX', pixel_size={'Y': 0.5, 'X': 0.5}, data=numpy)
    """

    data: object = field(repr=False)
    axes: str | None = None
    pixel_size: dict | None = field(default=None)

    def __repr__(self) -> str:  # never print the pixels of a (possibly huge) array
        kind = type(self.data).__module__.split(".")[0]
        return (f"Image(shape={self.shape}, dtype={self.dtype}, axes={self.axes!r}, "
                f"pixel_size={self.pixel_size!r}, data={kind})")

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return len(self.data.shape)


def file_axes(letters: str | None, ndim: int) -> str | None:
    """Map a reader's axes string (tifffile uses ``TZCYXS`` plus ``Q``/``I`` for "unknown")
    to mire letters, or None when any axis is unknown: axes are never guessed."""
    if not letters or len(letters) != ndim:
        return None
    letters = letters.upper()
    if "S" in letters and "C" not in letters:
        letters = letters.replace("S", "C")  # RGB samples are channels
    if all(a in AXES_LETTERS for a in letters) and len(set(letters)) == len(letters):
        return letters
    return None


def conform_axes(image: Image, axes: str | None, *, source) -> Image:
    """Return ``image`` with its data transposed to the requested ``axes`` order.

    When the file knows its axes, ``axes`` must be a permutation of them. When it does not,
    ``axes`` only needs one letter per dimension and becomes the image's axes.
    """
    if axes is None:
        return image
    shape = image.shape
    try:
        axes = check_axes(axes, len(shape))
    except ValueError as exc:
        have = f"axes {image.axes!r}" if image.axes else "no axes metadata"
        raise AxesError(f"{source}: {exc} (the file has {have}, shape {shape})") from None
    if image.axes is None:
        return Image(image.data, axes, _keep_spatial(image.pixel_size, axes))
    if sorted(axes) != sorted(image.axes):
        raise AxesError(
            f"{source}: asked for axes {axes!r} but the file has axes {image.axes!r} "
            f"(shape {shape}); ask for a permutation of {image.axes!r}"
        )
    order = [image.axes.index(a) for a in axes]
    data = image.data if order == sorted(order) else image.data.transpose(order)
    return Image(data, axes, image.pixel_size)


def _keep_spatial(pixel_size, axes):
    if not pixel_size:
        return None
    kept = {a: v for a, v in pixel_size.items() if a in axes}
    return kept or None


def pixel_size_dict(pixel_size, axes: str | None, *, source="data") -> dict | None:
    """Normalize ``pixel_size`` to ``{axis: micrometres}`` for the spatial axes in ``axes``.

    Accepts a dict (``{"Z": 1.0, "X": 0.3, "Y": 0.3}``), a sequence with one value per
    spatial axis of ``axes`` in order, or one number for every spatial axis.
    """
    if pixel_size is None:
        return None
    if axes is None:
        raise AxesError(f"{source}: pixel_size={pixel_size!r} needs axes (e.g. axes='ZYX') to say which axes it measures")
    spatial = [a for a in axes if a in SPATIAL]
    if isinstance(pixel_size, dict):
        out = {str(k).upper(): v for k, v in pixel_size.items()}
        extra = [k for k in out if k not in spatial]
        if extra:
            raise AxesError(f"{source}: pixel_size names axes {extra} that are not spatial axes of {axes!r}")
    elif np.ndim(pixel_size) == 0:
        out = {a: pixel_size for a in spatial}
    else:
        values = list(pixel_size)
        if len(values) != len(spatial):
            raise AxesError(
                f"{source}: pixel_size has {len(values)} values but axes {axes!r} have "
                f"{len(spatial)} spatial axes {spatial}"
            )
        out = dict(zip(spatial, values))
    for a, v in out.items():
        v = float(v)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{source}: pixel size of axis {a} must be a positive number, got {v}")
        out[a] = v
    return {a: out[a] for a in spatial if a in out} or None
