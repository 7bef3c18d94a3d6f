"""Read and write microscope images with their axes and pixel size, and SWC traces.

One pair of functions covers every format, chosen from the path:

========================  =====================================================
path                      format
========================  =====================================================
``x.tif``, ``x.tiff``     ImageJ hyperstack or OME-TIFF (``x.ome.tif`` forces OME)
``x.ome.zarr``, ``x.zarr``  OME-Zarr multiscale pyramid (lazy reads are dask arrays)
``x.h5:/group/ds``        HDF5 dataset (``.h5``, ``.hdf5``)
``x.png``                 single 2D / RGB image
folder, ``"dir/*.png"``   stack of PNG / TIFF slices, natural order (2 before 10)
========================  =====================================================

Axes are letters from ``"TCZYX"``; pixel sizes are in micrometres. Every write is atomic
(nothing half-written on failure), and every error names the file and the problem.

Examples
--------
>>> import os, tempfile, numpy as np
>>> from mire.io import imwrite, read_image
>>> path = os.path.join(tempfile.mkdtemp(), "stack.tif")
>>> imwrite(path, np.zeros((4, 8, 8), np.uint16), axes="ZYX", pixel_size={"Z": 1.0, "Y": 0.25, "X": 0.25})
>>> im = read_image(path)
>>> im.shape, im.axes, im.pixel_size
((4, 8, 8), 'ZYX', {'Z': 1.0, 'Y': 0.25, 'X': 0.25})
"""

from __future__ import annotations

import os

import numpy as np

from mire._validate import check_axes, check_image
from mire.io.errors import (AxesError, CorruptFileError, DatasetNotFoundError, ImageFormatError,
                            SliceStackError, SWCError)
from mire.io.formats import read_format, write_format
from mire.io.image import Image, conform_axes, pixel_size_dict
from mire.io.swc import read_swc, write_swc

__all__ = [
    "Image", "read_image", "imread", "imwrite", "iminfo", "read_swc", "write_swc",
    "AxesError", "CorruptFileError", "DatasetNotFoundError", "ImageFormatError", "SliceStackError", "SWCError",
]

_DEFAULT = "default"
_DEFAULT_COMPRESSION = {"tiff": "zlib", "omezarr": "zstd", "hdf5": "gzip", "png": None}


def read_image(path, *, axes=None, lazy: bool = False, level: int = 0) -> Image:
    """Read an image file with its axes and pixel size.

    Parameters
    ----------
    path : str or Path
        File, folder, glob pattern or ``file.h5:/dataset`` (see :mod:`mire.io`).
    axes : str, optional
        Axes wanted, e.g. ``"ZYX"``. If the file knows its axes this must be a permutation
        of them and the data are transposed to that order; if it does not, this names them.
    lazy : bool
        Return a dask array that reads blocks on demand (TIFF, OME-Zarr, HDF5, slices).
    level : int
        Pyramid level of an OME-Zarr image (0 = full resolution).

    Returns
    -------
    Image
        ``data``, ``axes`` (None when unknown) and ``pixel_size`` (µm per axis, or None).

    Raises
    ------
    FileNotFoundError, ImageFormatError, CorruptFileError, DatasetNotFoundError, AxesError,
    SliceStackError
        Each message names the file and the problem.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "cz.tif")
    >>> imwrite(p, np.zeros((2, 5, 6, 7), np.float32), axes="CZYX")
    >>> read_image(p, axes="ZYXC").shape
    (5, 6, 7, 2)
    """
    fmt = read_format(path)
    if level != 0 and fmt != "omezarr":
        raise ValueError(f"{path}: level={level} asked, but a {fmt} file has a single level")
    if fmt == "tiff":
        from mire.io.tiff import read_tiff

        image = read_tiff(path, lazy=lazy)
    elif fmt == "omezarr":
        from mire.io.omezarr import read_omezarr

        image = read_omezarr(path, lazy=lazy, level=level)
    elif fmt == "hdf5":
        from mire.io.hdf5 import read_hdf5

        image = read_hdf5(path, lazy=lazy)
    elif fmt == "png":
        from mire.io.slices import read_png

        image = read_png(path)
    else:
        from mire.io.slices import read_slices

        image = read_slices(path, lazy=lazy)
    return conform_axes(image, axes, source=path)


def imread(path, *, axes=None, lazy: bool = False, level: int = 0):
    """Read an image file as an array (numpy, or dask when ``lazy``); see :func:`read_image`.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "a.h5:/raw")
    >>> imwrite(p, np.arange(6, dtype=np.uint8).reshape(2, 3), axes="YX")
    >>> imread(p, axes="XY").tolist()
    [[0, 3], [1, 4], [2, 5]]
    """
    return read_image(path, axes=axes, lazy=lazy, level=level).data


def imwrite(path, data, *, axes=None, pixel_size=None, compression=_DEFAULT, levels=None, chunks=None,
            downscale: str = "mean", labels: bool = False) -> None:
    """Write an array with its axes and pixel size, atomically, in the format named by ``path``.

    Parameters
    ----------
    path : str or Path
        ``.tif`` (ImageJ when axes follow ImageJ's TZCYX order and the dtype is uint8,
        uint16, int16 or float32, else OME-TIFF), ``.ome.tif``, ``.ome.zarr`` / ``.zarr``,
        ``file.h5:/dataset`` or ``.png``.
    data : array-like
        Numeric pixels (NaN allowed). A dask array is written block by block to OME-Zarr
        and HDF5 (so it may be larger than memory) and computed first for TIFF / PNG.
    axes : str, optional
        One letter per dimension from ``"TCZYX"``. Required for OME-Zarr above 2D.
        OME-TIFF and OME-Zarr store planes in ``TCZYX`` order; data in another order
        (e.g. ``"ZYXC"``) are stored transposed and read back in ``TCZYX`` order.
    pixel_size : dict, sequence or float, optional
        Micrometres per pixel of the spatial axes: ``{"Z": 1.0, "Y": 0.3, "X": 0.3}``, one
        value per spatial axis in ``axes`` order, or one number for all. Needs ``axes``.
    compression : str or None
        Codec; the default is zlib (TIFF), zstd (OME-Zarr), gzip (HDF5). None: uncompressed.
    levels : int, optional
        OME-Zarr pyramid levels (default: halve Y and X until they would drop below 64).
    chunks : tuple, optional
        Chunk shape for OME-Zarr / HDF5.
    downscale : {"mean", "nearest"}
        OME-Zarr pyramid method; use "nearest" for label images.
    labels : bool
        ``data`` is a label image: OME-Zarr levels are picked ("nearest"), never averaged,
        and int64 / uint64 ids too large for TIFF's 32 bits are relabelled 1..N (with a
        warning; OME-Zarr and HDF5 keep any integer dtype). Without it such values are
        refused for TIFF.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> imwrite(os.path.join(d, "v.ome.zarr"), np.ones((3, 256, 256), np.uint8), axes="ZYX", pixel_size=0.5)
    >>> iminfo(os.path.join(d, "v.ome.zarr"))["levels"]
    3
    """
    fmt = write_format(path)
    if fmt in ("omezarr", "hdf5") and type(data).__module__.startswith("dask"):
        arr = _check_lazy(data, name=f"data for {path}")  # stays lazy: written block by block
    else:
        arr = check_image(data, name=f"data for {path}", allow_nan=True)
    arr = _native(arr)
    try:
        axes = check_axes(axes, arr.ndim)
    except ValueError as exc:
        raise AxesError(f"{path}: {exc} (data shape {arr.shape})") from None
    sizes = pixel_size_dict(pixel_size, axes, source=path)
    comp = _DEFAULT_COMPRESSION[fmt] if compression == _DEFAULT else compression
    if fmt == "tiff":
        from mire.io.tiff import write_tiff

        write_tiff(path, arr.astype(np.uint8) if arr.dtype == bool else arr, axes=axes, pixel_size=sizes,
                   compression=comp, labels=labels)
    elif fmt == "omezarr":
        from mire.io.omezarr import write_omezarr

        write_omezarr(path, arr, axes=axes, pixel_size=sizes, compression=comp, levels=levels, chunks=chunks,
                      downscale="nearest" if labels else downscale)
    elif fmt == "hdf5":
        from mire.io.hdf5 import write_hdf5

        write_hdf5(path, arr, axes=axes, pixel_size=sizes, compression=comp, chunks=chunks)
    else:
        from mire.io.slices import write_png

        write_png(path, arr, axes=axes, pixel_size=sizes)


def _native(arr):
    """The same values in numpy's canonical native dtype: zarr refuses big-endian data and the
    'Q' / 'q' spelling of 64-bit integers that tifffile returns ('L' / 'l' on Linux)."""
    if arr.dtype == bool:
        return arr
    canon = np.dtype(f"{arr.dtype.kind}{arr.dtype.itemsize}")
    if arr.dtype.char == canon.char and arr.dtype.byteorder in ("=", "|", "<" if np.little_endian else ">"):
        return arr
    return arr.astype(canon)


def _check_lazy(data, *, name):
    """The checks of ``check_image`` that need no pixels (dtype, emptiness) for a dask array."""
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {data.dtype}")
    if data.size == 0:
        raise ValueError(f"{name} is empty (shape {data.shape})")
    return data


def iminfo(path) -> dict:
    """Describe an image file without reading its pixels.

    Returns
    -------
    dict
        ``path``, ``format`` ('tiff', 'omezarr', 'hdf5', 'png', 'slices'), ``shape``
        (tuple), ``dtype`` (str), ``axes`` (str or None), ``pixel_size`` (dict or None),
        ``levels`` (pyramid levels; 1 for single-resolution formats).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "a.tif")
    >>> imwrite(p, np.zeros((3, 4), np.uint8), axes="YX", pixel_size=0.5)
    >>> info = iminfo(p)
    >>> info["format"], info["shape"], info["dtype"], info["pixel_size"]
    ('tiff', (3, 4), 'uint8', {'Y': 0.5, 'X': 0.5})
    """
    fmt = read_format(path)
    image = read_image(path, lazy=True)
    levels = 1
    if fmt == "omezarr":
        from mire.io.omezarr import count_levels

        levels = count_levels(path)
    return {
        "path": os.fspath(path),
        "format": fmt,
        "shape": tuple(int(n) for n in image.shape),
        "dtype": str(image.dtype),
        "axes": image.axes,
        "pixel_size": image.pixel_size,
        "levels": levels,
    }
