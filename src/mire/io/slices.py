"""Stacks of 2D slices (a folder or a glob of PNG / TIFF files) and single PNG images."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import numpy as np

from mire.io.atomic import atomic_path
from mire.io.errors import CorruptFileError, ImageFormatError, SliceStackError
from mire.io.image import Image, file_axes

SLICE_SUFFIXES = (".png", ".tif", ".tiff")
_GLOB_CHARS = re.compile(r"[*?\[]")
# PIL mode -> (numpy dtype, trailing shape) of np.asarray(image)
_PNG_MODES = {"L": ("uint8", ()), "P": ("uint8", ()), "I;16": ("uint16", ()), "1": ("bool", ()),
              "LA": ("uint8", (2,)), "RGB": ("uint8", (3,)), "RGBA": ("uint8", (4,))}


def is_glob(path) -> bool:
    return bool(_GLOB_CHARS.search(os.fspath(path)))


def natural_key(path) -> list:
    """Sort key that orders ``2.png`` before ``10.png`` (numbers compared as numbers).

    >>> sorted(["10.png", "2.png", "1.png"], key=natural_key)
    ['1.png', '2.png', '10.png']
    """
    parts = re.split(r"(\d+)", os.path.basename(os.fspath(path)).lower())
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts] + [os.fspath(path)]


def list_slices(path) -> list[str]:
    """Slice files of a folder (PNG/TIFF) or a glob pattern, in natural order."""
    path = os.fspath(path)
    if is_glob(path):
        files = [f for f in glob.glob(path) if os.path.isfile(f)]
    else:
        files = [os.path.join(path, f) for f in os.listdir(path)
                 if f.lower().endswith(SLICE_SUFFIXES) and not f.startswith(".")]
    if not files:
        where = f"the pattern {path!r} matches" if is_glob(path) else f"folder {path} holds"
        raise SliceStackError(f"{path}: no slices to read: {where} no PNG or TIFF files")
    return sorted(files, key=natural_key)


def _header(f) -> tuple[tuple, np.dtype]:
    """Shape and dtype of one slice without decoding its pixels."""
    if f.lower().endswith(".png"):
        from PIL import Image as PILImage

        import warnings

        with warnings.catch_warnings():  # PIL's bomb warning: the gate (mire.io.gate) judges the size
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(f)  # opening reads only the header
        with im:
            if im.mode in _PNG_MODES:
                dtype, extra = _PNG_MODES[im.mode]
                return (im.height, im.width) + extra, np.dtype(dtype)
        a = read_slice(f)  # rare modes: decode to learn what numpy makes of them
        return a.shape, a.dtype
    import tifffile

    with tifffile.TiffFile(f) as tf:
        return tuple(tf.series[0].shape), tf.series[0].dtype


def read_slice(f) -> np.ndarray:
    """Read one PNG or TIFF slice as an array, with a clear error when it cannot be decoded."""
    try:
        if f.lower().endswith(".png"):
            from PIL import Image as PILImage

            with PILImage.open(f) as im:
                return np.asarray(im)
        import tifffile

        return tifffile.imread(f)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{f}: cannot decode image ({type(exc).__name__}: {exc})") from None


def read_slices(path, *, lazy: bool = False) -> Image:
    """Stack the slices of a folder or glob along a new first axis.

    Every slice header is checked first, so a slice of another shape or dtype is reported
    (by name) before any pixels are read. The stacking axis is not labelled: pass
    ``axes="ZYX"`` (or ``"TYX"``) to :func:`mire.io.read_image` to say what it is.
    """
    files = list_slices(path)
    try:
        headers = [_header(f) for f in files]
    except Exception as exc:
        raise CorruptFileError(f"{path}: cannot read a slice header ({type(exc).__name__}: {exc})") from None
    shape0, dtype0 = headers[0]
    for f, (shape, dtype) in zip(files, headers):
        if shape != shape0 or dtype != dtype0:
            raise SliceStackError(
                f"{path}: slices differ: {files[0]} is {shape0} {dtype0} but {f} is {shape} {dtype}"
            )
    from mire.io.gate import DEFAULT_MAX_RATIO, MAX_RATIO, check_declared

    ratio = MAX_RATIO["deflate"] if all(f.lower().endswith(".png") for f in files) else DEFAULT_MAX_RATIO
    check_declared(path, (len(files),) + tuple(shape0), dtype0, stored_bytes=sum(os.path.getsize(f) for f in files),
                   max_ratio=ratio, in_memory=not lazy)
    if lazy:
        import dask
        import dask.array as da

        parts = [da.from_delayed(dask.delayed(read_slice)(f), shape=shape0, dtype=dtype0) for f in files]
        data = da.stack(parts)
    else:
        data = np.stack([read_slice(f) for f in files])
    return Image(data, None, None)


def read_png(path) -> Image:
    from mire.io.gate import MAX_RATIO, check_declared

    path = os.fspath(path)
    try:
        shape, dtype = _header(path)
    except CorruptFileError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{path}: not a readable PNG file ({type(exc).__name__}: {exc})") from None
    check_declared(path, shape, dtype, stored_bytes=os.path.getsize(path), max_ratio=MAX_RATIO["deflate"],
                   in_memory=True)
    data = read_slice(path)
    return Image(data, file_axes("YX" if data.ndim == 2 else "YXC", data.ndim), None)


def write_png(path, data: np.ndarray, *, axes=None, pixel_size=None) -> None:
    """Write a 2D (grayscale) or YXC (RGB / RGBA) uint8 / uint16 image as PNG."""
    from PIL import Image as PILImage

    if pixel_size:
        raise ImageFormatError(f"{path}: PNG cannot store a pixel size exactly; write .tif, .ome.zarr or .h5")
    if axes is not None and data.ndim == 3 and axes != "YXC" and sorted(axes) == sorted("YXC"):
        data = data.transpose([axes.index(a) for a in "YXC"])
        axes = "YXC"
    ok_shape = data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4) and data.dtype == np.uint8)
    if axes not in (None, "YX", "YXC") or not ok_shape or data.dtype not in (np.uint8, np.uint16, np.bool_):
        raise ImageFormatError(
            f"{path}: PNG holds 2D uint8/uint16 or RGB(A) uint8 images; got {data.dtype} shape "
            f"{data.shape} axes {axes!r}; write .tif, .ome.zarr or .h5 instead"
        )
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    with atomic_path(path) as tmp:
        PILImage.fromarray(np.ascontiguousarray(data)).save(tmp, format="PNG")


def is_slice_folder(path) -> bool:
    p = Path(path)
    return p.is_dir() and not any((p / m).exists() for m in ("zarr.json", ".zgroup", ".zarray", ".zattrs"))
