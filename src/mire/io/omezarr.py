"""OME-Zarr (OME-NGFF) multiscale images: write a pyramid, read any level (lazily as dask).

Writing uses ``ome_zarr.writer.write_multiscale`` (NGFF 0.5 on zarr 3) with a pyramid that
we build ourselves, so the downsampling method and the ``scale`` transforms are exact and
documented. Reading parses the ``multiscales`` metadata directly with zarr, so it also
accepts NGFF 0.4 (zarr 2) stores and plain zarr arrays.
"""

from __future__ import annotations

import numpy as np

from mire.io.atomic import atomic_path
from mire.io.errors import CorruptFileError, ImageFormatError
from mire.io.image import SPATIAL, Image, file_axes, unit_to_um
from mire.io.tiff import CANONICAL

_AXIS_TYPE = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
MIN_LEVEL_SIZE = 64  # stop the pyramid before Y or X would fall below this


def _codec(compression):
    from zarr import codecs

    if compression is None:
        return None
    name = str(compression).lower()
    if name == "zstd":
        return codecs.ZstdCodec(level=3)
    if name in ("zlib", "gzip"):
        return codecs.GzipCodec(level=5)
    if name == "blosc":
        return codecs.BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")
    raise ValueError(f"unknown OME-Zarr compression {compression!r}; use 'zstd', 'blosc', 'zlib' or None")


def _halve(a, axes_idx, method: str):
    """Downsample a numpy or dask array by 2 along ``axes_idx``.

    "mean" averages 2x2 blocks (odd sizes: the last pixel is averaged with itself);
    "nearest" keeps every other pixel, for label images where averaging invents labels.
    """
    if method == "nearest":
        sl = tuple(slice(None, None, 2) if i in axes_idx else slice(None) for i in range(a.ndim))
        return a[sl]
    xp = _namespace(a)
    out = a.astype(np.float64)
    for i in axes_idx:
        if out.shape[i] % 2:
            # Repeat the edge so an odd last block is not darkened by zero padding.
            out = xp.pad(out, [(0, 1) if j == i else (0, 0) for j in range(out.ndim)], mode="edge")
        even = tuple(slice(0, None, 2) if j == i else slice(None) for j in range(out.ndim))
        odd = tuple(slice(1, None, 2) if j == i else slice(None) for j in range(out.ndim))
        # Strided halves work the same on numpy and dask (no reshape across dask chunks).
        out = (out[even] + out[odd]) / 2
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        out = np.rint(out)
    return out.astype(a.dtype)


def _namespace(a):
    if type(a).__module__.startswith("dask"):
        import dask.array as da

        return da
    return np


def count_pyramid_levels(shape, axes: str, *, levels=None) -> int:
    """How many levels :func:`build_pyramid` makes for an array of ``shape``."""
    idx = [axes.index(a) for a in "YX" if a in axes]
    sizes = [int(shape[i]) for i in idx]
    n = 1
    while True:
        if levels is not None and n >= levels:
            break
        small = min(sizes) if sizes else 0
        if levels is None and (small // 2 < MIN_LEVEL_SIZE):
            break
        if small < 2:
            break
        sizes = [(s + 1) // 2 for s in sizes]  # odd sizes keep their last pixel (see _halve)
        n += 1
    return n


def build_pyramid(data: np.ndarray, axes: str, *, levels=None, method: str = "mean") -> list:
    """Return ``[data, data/2, data/4, ...]`` halving Y and X (never Z, T or C).

    With ``levels=None`` the pyramid stops before Y or X would drop below 64 pixels.
    """
    if method not in ("mean", "nearest"):
        raise ValueError(f"downscale method must be 'mean' or 'nearest', got {method!r}")
    idx = [axes.index(a) for a in "YX" if a in axes]
    pyramid = [data]
    for _ in range(count_pyramid_levels(data.shape, axes, levels=levels) - 1):
        pyramid.append(_halve(pyramid[-1], idx, method))
    return pyramid


def _default_chunks(shape, axes):
    limits = {"T": 1, "C": 1, "Z": 32, "Y": 256, "X": 256}
    return tuple(min(n, limits[a]) for n, a in zip(shape, axes))


def ngff_metadata(axes: str, pixel_size, n_levels: int) -> tuple[list, list]:
    """NGFF ``axes`` entries and per-level ``coordinateTransformations`` for a Y/X-halving pyramid."""
    pixel_size = pixel_size or {}
    transforms = []
    for k in range(n_levels):
        scale = [pixel_size.get(a, 1.0) * (2 ** k if a in "YX" else 1) for a in axes]
        transforms.append([{"type": "scale", "scale": scale}])
    ngff_axes = []
    for a in axes:
        entry = {"name": a.lower(), "type": _AXIS_TYPE[a]}
        if a in pixel_size:  # no unit means "pixels": the reader then reports no size
            entry["unit"] = "micrometer"
        ngff_axes.append(entry)
    return ngff_axes, transforms


def write_pyramid_levels(group, axes: str, *, pixel_size=None, downscale: str = "mean", compression="zstd",
                         scheduler=None) -> int:
    """Add the lower pyramid levels and the NGFF metadata to a zarr group that holds level ``"0"``.

    For outputs written block by block: level 0 is already on disk, each further level is
    computed (with dask, chunk by chunk) from the one above it as stored, so nothing is held
    whole in memory. Returns the number of levels.
    """
    import warnings

    import dask
    import dask.array as da

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata

    codec = _codec(compression)
    base = group["0"]
    if downscale not in ("mean", "nearest"):
        raise ValueError(f"downscale method must be 'mean' or 'nearest', got {downscale!r}")
    n_levels = count_pyramid_levels(base.shape, axes)
    for k in range(1, n_levels):
        above = da.from_zarr(group[str(k - 1)])
        level = _halve(above, [axes.index(a) for a in "YX" if a in axes], downscale)
        chunks = _default_chunks(level.shape, axes)
        arr = group.create_array(str(k), shape=level.shape, chunks=chunks, dtype=level.dtype,
                                 compressors=[codec] if codec is not None else None, overwrite=True)
        task = da.store(level.rechunk(chunks), arr, lock=False, compute=False)
        dask.compute(task, scheduler=scheduler or "threads")
    ngff_axes, transforms = ngff_metadata(axes, pixel_size, n_levels)
    datasets = [{"path": str(k), "coordinateTransformations": transforms[k]} for k in range(n_levels)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        write_multiscales_metadata(group, datasets, axes=ngff_axes)
    return n_levels


def write_omezarr(path, data, *, axes=None, pixel_size=None, compression="zstd",
                  levels=None, chunks=None, downscale: str = "mean") -> None:
    """Write an OME-Zarr multiscale image atomically (a temporary folder renamed into place).

    Axes are stored in NGFF order (``TCZYX`` subsequence): data given in another order are
    transposed first. Level ``k`` halves Y and X ``k`` times; its ``scale`` transform is
    the pixel size (micrometres) times ``2**k`` on those axes. ``data`` may be a dask
    array: the pyramid is then built and written block by block, never whole in memory.
    """
    import warnings

    import zarr

    with warnings.catch_warnings():  # ome_zarr warns about its own default Scaler at import
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscale

    if axes is None:
        if data.ndim != 2:
            raise ImageFormatError(
                f"{path}: OME-Zarr needs axes for {data.ndim}D data (e.g. axes='ZYX'); they cannot be guessed"
            )
        axes = "YX"
    if sum(a in SPATIAL for a in axes) < 2:
        raise ImageFormatError(f"{path}: OME-Zarr needs at least two spatial axes (Y and X), got axes {axes!r}")
    order = [axes.index(a) for a in CANONICAL if a in axes]
    if order != list(range(len(axes))):
        data = data.transpose(order)
        axes = "".join(axes[i] for i in order)
    pyramid = build_pyramid(data, axes, levels=levels, method=downscale)
    ngff_axes, transforms = ngff_metadata(axes, pixel_size, len(pyramid))
    storage = []
    codec = _codec(compression)
    for level in pyramid:
        opts = {"chunks": chunks if chunks is not None else _default_chunks(level.shape, axes)}
        opts["compressors"] = [codec] if codec is not None else None
        storage.append(opts)
    with atomic_path(path, directory=True) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        # Explicit transforms, not ome_zarr's `scale=`: it derives level sizes from shape
        # ratios (101 -> 51 px gives 1.98), while our pyramid halves exactly.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            write_multiscale(pyramid, group, axes=ngff_axes, coordinate_transformations=transforms,
                             storage_options=storage)


def _multiscales(group):
    attrs = dict(group.attrs)
    ms = (attrs.get("ome") or {}).get("multiscales") or attrs.get("multiscales")
    return ms[0] if ms else None


def _open(path):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise CorruptFileError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from None
    return node


def read_omezarr(path, *, lazy: bool = False, level: int = 0) -> Image:
    """Read one level of an OME-Zarr multiscale image (or a plain zarr array)."""
    import zarr

    node = _open(path)
    if isinstance(node, zarr.Array):
        if level != 0:
            raise ValueError(f"{path}: a plain zarr array has one level, asked for level={level}")
        arr, axes, pixel_size = node, None, None
    else:
        ms = _multiscales(node)
        if ms is None:
            arrays = sorted(k for k, _ in node.arrays())
            raise CorruptFileError(
                f"{path}: zarr group has no OME 'multiscales' metadata (arrays: {arrays or 'none'})"
            )
        datasets = ms["datasets"]
        if not -len(datasets) <= level < len(datasets):
            raise ValueError(f"{path}: level={level} does not exist; the pyramid has {len(datasets)} levels")
        ds = datasets[level]
        try:
            arr = node[ds["path"]]
        except KeyError:
            raise CorruptFileError(f"{path}: level {level} array {ds['path']!r} is missing") from None
        names = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
        axes = file_axes("".join(n.upper() for n in names if len(n) == 1), arr.ndim) \
            if all(len(n) == 1 for n in names) else None
        pixel_size = _level_pixel_size(ms, ds, axes)
    if lazy:
        import dask.array as da

        data = da.from_zarr(arr)
    else:
        try:
            data = arr[...]
        except Exception as exc:
            raise CorruptFileError(f"{path}: cannot read the pixel data ({type(exc).__name__}: {exc})") from None
    return Image(data, axes, pixel_size)


def _level_pixel_size(ms, ds, axes) -> dict | None:
    if axes is None:
        return None
    scale = np.ones(len(axes))
    # NGFF: the dataset's transforms, then the multiscale-wide ones, all multiply.
    for t in list(ds.get("coordinateTransformations", [])) + list(ms.get("coordinateTransformations", [])):
        if t.get("type") == "scale" and "scale" in t:
            scale = scale * np.asarray(t["scale"], dtype=float)
    sizes = {}
    for a, entry, s in zip(axes, ms.get("axes", []), scale):
        unit = entry.get("unit") if isinstance(entry, dict) else None
        factor = unit_to_um(unit) if unit else None
        if a in SPATIAL and factor is not None:
            sizes[a] = float(s) * factor
    return sizes or None


def count_levels(path) -> int:
    """Number of pyramid levels (1 for a plain zarr array)."""
    import zarr

    node = _open(path)
    if isinstance(node, zarr.Array):
        return 1
    ms = _multiscales(node)
    return len(ms["datasets"]) if ms else 0
