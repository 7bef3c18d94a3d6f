"""TIFF reading and writing: ImageJ hyperstacks, OME-TIFF and plain multi-page TIFF.

Axes and pixel size are read from whichever metadata the file carries (ImageJ
``spacing``/``unit`` plus the resolution tags, OME ``PhysicalSize*``, or tifffile's own
JSON description) and written in the most widely readable form that can hold them:
ImageJ when the axes follow ImageJ's fixed ``TZCYX`` order and the dtype is one ImageJ
knows, OME-TIFF otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import xml.etree.ElementTree as ET

import numpy as np

from mire.io.atomic import atomic_path
from mire.io.errors import CorruptFileError
from mire.io.gate import DEFAULT_MAX_RATIO, MAX_RATIO, InsufficientMemoryError, check_declared
from mire.io.image import SPATIAL, Image, file_axes, unit_to_um

IMAGEJ_ORDER = "TZCYX"
IMAGEJ_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "float32")}
CANONICAL = "TCZYX"  # OME-TIFF / OME-Zarr storage order


def is_ome_name(path) -> bool:
    name = os.fspath(path).lower()
    return name.endswith((".ome.tif", ".ome.tiff"))


def read_tiff(path, *, lazy: bool = False) -> Image:
    """Read the first image series of a TIFF file with its axes and pixel size.

    Raises :class:`CorruptFileError` (naming the file) for truncated or undecodable files:
    tifffile alone returns silently fewer pages when the IFD chain is cut short.
    """
    import tifffile

    with _tifffile_errors() as logged:
        try:
            tf = tifffile.TiffFile(path)
        except Exception as exc:  # tifffile raises TiffFileError, struct.error, ValueError...
            raise CorruptFileError(f"{path}: not a readable TIFF file ({exc})") from None
        try:
            series, no_series = tf.series[0], None
        except Exception as exc:
            series, no_series = None, f"{type(exc).__name__}: {exc}"
    try:
        if logged:
            # tifffile logs (rather than raises) broken tags and IFDs and carries on with
            # what it could parse, which would silently return wrong metadata or fewer pages.
            raise CorruptFileError(f"{path}: TIFF file is truncated or damaged ({logged[0]})")
        if series is None:
            raise CorruptFileError(f"{path}: TIFF file holds no readable image ({no_series})")
        _check_complete(tf, series, path)
        _check_declared(series, path, in_memory=not lazy)
        axes = file_axes(series.axes, len(series.shape))
        pixel_size = _pixel_size(tf, axes)
        if lazy:
            import dask.array as da

            view = TiffArray(path, shape=series.shape, dtype=series.dtype)
            # chunks of whole pages/tiles as tifffile stores them, so a block reads only its pages
            from mire.io.gate import dask_chunks

            chunks = dask_chunks(series.shape, view.zarr().chunks, series.dtype)
            data = da.from_array(view, chunks=chunks, asarray=True, fancy=False)
        else:
            data = series.asarray()
    except (CorruptFileError, TypeError, InsufficientMemoryError):
        tf.close()
        raise
    except Exception as exc:
        tf.close()
        raise CorruptFileError(f"{path}: TIFF file is truncated or damaged ({type(exc).__name__}: {exc})") from None
    tf.close()  # a lazy read opens its own handle (TiffArray)
    return Image(data, axes, pixel_size)


class TiffArray:
    """Read-only array view of a TIFF file's first series, read page by page on demand.

    Unlike tifffile's zarr store (an open file handle), it pickles as its path, so dask can
    ship it to the worker processes of a cluster; each process opens the file on its first
    read and keeps it open.
    """

    def __init__(self, path, *, shape, dtype):
        self.path = os.fspath(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._array = None
        self._tiff = None

    def zarr(self):
        if self._array is None:
            import tifffile
            import zarr

            self._tiff = tifffile.TiffFile(self.path)
            self._array = zarr.open(self._tiff.series[0].aszarr(), mode="r")
        return self._array

    def close(self) -> None:
        """Close the file handle (a later read opens it again)."""
        tiff, self._tiff, self._array = self._tiff, None, None
        if tiff is not None:
            tiff.close()

    def __del__(self):
        # closed here, not left to the garbage collector: an unclosed handle's ResourceWarning
        # would reach the user as a stray "warning: unclosed file" line after a good command
        with contextlib.suppress(Exception):
            self.close()

    def __getitem__(self, key):
        return self.zarr()[key]

    def __getstate__(self):
        return {**self.__dict__, "_array": None, "_tiff": None}  # the open handle stays behind

    def __dask_tokenize__(self):
        # the same file, unchanged, gives the same dask name (and resume token) in every run
        st = os.stat(self.path)
        return ("mire.TiffArray", os.path.abspath(self.path), st.st_size, st.st_mtime_ns, self.shape, str(self.dtype))


@contextlib.contextmanager
def _tifffile_errors():
    """Collect the messages tifffile logs at ERROR level while the block runs."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = _Collect(level=logging.ERROR)
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def _check_complete(tf, series, path) -> None:
    size = os.path.getsize(path)
    if tf.is_imagej:
        expected = (tf.imagej_metadata or {}).get("images")
        planes = int(np.prod(series.shape[:-3 if series.axes.endswith("S") else -2], dtype=np.int64))
        if expected and int(expected) != planes:
            raise CorruptFileError(
                f"{path}: TIFF file is truncated or damaged: ImageJ metadata says {expected} images "
                f"but only {planes} can be found"
            )
    if series.dataoffset is not None:  # contiguous data (ImageJ, uncompressed)
        if series.dataoffset + series.nbytes > size:
            raise CorruptFileError(f"{path}: TIFF file is truncated: pixel data end past the file's {size} bytes")
        return
    for i, page in enumerate(series.pages):
        if page is None:
            raise CorruptFileError(f"{path}: TIFF file is truncated or damaged: page {i} is missing")
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > size:
            raise CorruptFileError(
                f"{path}: TIFF file is truncated: page {i} needs {max(ends)} bytes, the file has {size}"
            )


def _check_declared(series, path, *, in_memory: bool) -> None:
    """The gate (:mod:`mire.io.gate`) on the series' declared shape and its stored bytes."""
    if series.dataoffset is not None:  # contiguous, uncompressed: _check_complete bounded it
        check_declared(path, series.shape, series.dtype, in_memory=in_memory)
        return
    stored, codecs = 0, set()
    for page in series.pages:
        stored += int(sum(page.databytecounts))
        codecs.add(getattr(page.compression, "name", str(page.compression)).lower())
    # the most expansive codec of the series bounds them all
    ratio = max(MAX_RATIO.get(c, DEFAULT_MAX_RATIO) for c in codecs) if codecs else 1.0
    check_declared(path, series.shape, series.dtype, stored_bytes=stored, codec="/".join(sorted(codecs)),
                   max_ratio=ratio, in_memory=in_memory)


def _pixel_size(tf, axes) -> dict | None:
    if axes is None:
        return None
    if tf.is_ome:
        sizes = _ome_pixel_size(tf.ome_metadata)
    elif tf.is_imagej:
        sizes = _imagej_pixel_size(tf)
    elif tf.is_shaped:
        meta = tf.shaped_metadata[0] if tf.shaped_metadata else {}
        sizes = {k: float(v) for k, v in (meta.get("pixel_size") or {}).items()}
    else:
        # Plain TIFF resolution tags usually hold a 72-dpi placeholder, not a pixel size.
        sizes = {}
    sizes = {a: sizes[a] for a in axes if a in SPATIAL and a in sizes}
    return sizes or None


def _imagej_pixel_size(tf) -> dict:
    meta = tf.imagej_metadata or {}
    factor = unit_to_um(meta["unit"]) if meta.get("unit") else None
    if factor is None:  # no unit or 'pixel': ImageJ is calibrated in pixels only
        return {}
    sizes = {}
    tags = tf.pages.first.tags
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            num, den = tags[tag].value
            if num and (num, den) != (1, 1):
                sizes[axis] = den / num * factor
    if meta.get("spacing"):
        sizes["Z"] = float(meta["spacing"]) * factor
    return sizes


def _ome_pixel_size(xml: str | None) -> dict:
    if not xml:
        return {}
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return {}
    sizes = {}
    for axis in "XYZ":
        value = pixels.get(f"PhysicalSize{axis}")
        factor = unit_to_um(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if value is not None and factor is not None:
            sizes[axis] = float(value) * factor
    return sizes


def _is_subsequence(axes: str, order: str) -> bool:
    it = iter(order)
    return all(a in it for a in axes)


def tiff_dtype(path, data: np.ndarray, *, labels: bool = False) -> np.ndarray:
    """Cast ``data`` to a dtype OME-TIFF / ImageJ can hold, losslessly, or refuse.

    float16 becomes float32; int64 / uint64 become int32 / uint32 when every value fits. A
    label image (``labels=True``) whose ids do not fit is relabelled sequentially (0 stays
    background, ids keep their order) if the count of ids fits in uint32, with a warning;
    anything else is refused with the formats that keep 64-bit values.
    """
    import warnings

    if data.dtype == np.float16:
        return data.astype(np.float32)
    if data.dtype not in (np.dtype(np.int64), np.dtype(np.uint64)):
        return data
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    for small in (np.uint32, np.int32) if lo >= 0 else (np.int32,):
        info = np.iinfo(small)
        if info.min <= lo and hi <= info.max:
            return data.astype(small)
    if labels:
        ids = np.unique(data)
        n = int(np.count_nonzero(ids))
        if lo >= 0 and n <= np.iinfo(np.uint32).max:
            from skimage.segmentation import relabel_sequential

            warnings.warn(f"{path}: label ids up to {hi} do not fit TIFF's 32 bits: the {n} ids are written "
                          "relabelled 1..N in order (write .ome.zarr or .h5 to keep them)", stacklevel=3)
            return relabel_sequential(data)[0].astype(np.uint32)
    raise ValueError(f"{path}: TIFF readers hold at most 32-bit integers, but the {data.dtype} values span "
                     f"{lo}..{hi}; write .ome.zarr or file.h5:/dataset, which keep {data.dtype}")


def write_tiff(path, data: np.ndarray, *, axes=None, pixel_size=None, compression="zlib",
               labels: bool = False) -> None:
    """Write ``data`` as ImageJ TIFF, OME-TIFF, or (no axes) plain TIFF, atomically.

    ImageJ is used when ``axes`` is in ImageJ's ``TZCYX`` order and the dtype is uint8,
    uint16, int16 or float32 (and the name is not ``*.ome.tif``). Otherwise OME-TIFF; if
    ``Y`` and ``X`` are not the last two axes, the data are stored transposed to ``TCZYX``
    order (OME-TIFF cannot hold planes that are not YX), and read back in that order.
    """
    import tifffile

    data = tiff_dtype(path, data, labels=labels)
    kwargs = dict(photometric="minisblack", compression=compression)
    if axes is None:
        # tifffile's JSON description keeps the shape; nothing claims to know the axes.
        kind, meta = "plain", {}
    elif not is_ome_name(path) and data.dtype in IMAGEJ_DTYPES and _is_subsequence(axes, IMAGEJ_ORDER) \
            and axes.endswith("YX") and data.shape[-1] != 1:
        # (an X of length 1 goes to OME: tifffile's ImageJ writer takes it for a samples axis and
        # stores one page of (Z, Y), a file that cannot be read back)
        kind = "imagej"
        meta = {"axes": axes}
        if pixel_size:
            meta["unit"] = "um"
            if "Z" in pixel_size:
                meta["spacing"] = pixel_size["Z"]
            if "X" in pixel_size or "Y" in pixel_size:
                # Resolution tags are pixels per unit; a missing axis stays uncalibrated (1).
                kwargs["resolution"] = (1 / pixel_size.get("X", 1.0), 1 / pixel_size.get("Y", 1.0))
    else:
        kind = "ome"
        if not axes.endswith("YX"):
            order = [axes.index(a) for a in CANONICAL if a in axes]
            data = data.transpose(order)
            axes = "".join(axes[i] for i in order)
        meta = {"axes": axes}
        for a, v in (pixel_size or {}).items():
            meta[f"PhysicalSize{a}"] = v
            meta[f"PhysicalSize{a}Unit"] = "µm"
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=kind == "imagej", ome=kind == "ome", metadata=meta, **kwargs)
