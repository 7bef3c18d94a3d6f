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


def _multiscales(group, path="zarr group"):
    """The first ``multiscales`` entry of a group's attributes, checked to be an object (None if absent)."""
    attrs = dict(group.attrs)
    ome = attrs.get("ome")
    if ome is not None and not isinstance(ome, dict):
        raise CorruptFileError(f"{path}: OME metadata field 'ome' must be an object, got {type(ome).__name__}")
    key = "ome.multiscales" if isinstance(ome, dict) and "multiscales" in ome else "multiscales"
    ms = (ome or {}).get("multiscales") if key == "ome.multiscales" else attrs.get("multiscales")
    if ms is None:
        return None
    if not isinstance(ms, list) or not ms:
        raise CorruptFileError(f"{path}: OME metadata field '{key}' must be a non-empty list, got {ms!r:.60}")
    if not isinstance(ms[0], dict):
        raise CorruptFileError(f"{path}: OME metadata field '{key}[0]' must be an object, got {type(ms[0]).__name__}")
    return ms[0]


def _check_transforms(path, field, transforms, ndim) -> None:
    """NGFF coordinate transformations: a list of scale / translation objects with one finite value per axis."""
    if transforms is None:
        return
    if not isinstance(transforms, list):
        raise CorruptFileError(f"{path}: OME metadata field '{field}' must be a list, got {type(transforms).__name__}")
    for j, t in enumerate(transforms):
        where = f"{field}[{j}]"
        if not isinstance(t, dict):
            raise CorruptFileError(f"{path}: OME metadata field '{where}' must be an object, got {type(t).__name__}")
        kind = t.get("type")
        if kind not in ("scale", "translation", "identity"):
            raise CorruptFileError(f"{path}: OME metadata field '{where}.type' must be 'scale', 'translation' "
                                   f"or 'identity', got {kind!r:.40}")
        if kind == "identity":
            continue
        values = t.get(kind)
        if values is None and "path" in t:
            continue  # NGFF allows the values in a separate array; not read here
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in values):
            raise CorruptFileError(f"{path}: OME metadata field '{where}.{kind}' must be a list of numbers, "
                                   f"got {values!r:.60}")
        if len(values) != ndim:
            raise CorruptFileError(f"{path}: OME metadata field '{where}.{kind}' has {len(values)} entries "
                                   f"but the array is {ndim}D (one per axis)")
        vals = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(vals)) or (kind == "scale" and np.any(vals <= 0)):
            raise CorruptFileError(f"{path}: OME metadata field '{where}.scale' must be finite and positive, "
                                   f"got {values}" if kind == "scale" else
                                   f"{path}: OME metadata field '{where}.translation' must be finite, got {values}")


def check_multiscales(node, ms, path) -> list:
    """Check NGFF ``multiscales`` against the arrays it names; return the level arrays.

    Axes, scale and translation lengths must equal each level's ndim, every level must
    exist, have the same ndim and no larger a shape than the level above it. Each error
    names the file and the metadata field.
    """
    import zarr

    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise CorruptFileError(f"{path}: OME metadata field 'multiscales[0].datasets' must be a non-empty list, "
                               f"got {datasets!r:.60}")
    arrays = []
    for k, ds in enumerate(datasets):
        field = f"multiscales[0].datasets[{k}]"
        if not isinstance(ds, dict) or not isinstance(ds.get("path"), str):
            raise CorruptFileError(f"{path}: OME metadata field '{field}' must be an object with a 'path' string, "
                                   f"got {ds!r:.60}")
        try:
            arr = node[ds["path"]]
        except Exception:
            raise CorruptFileError(f"{path}: level {k} array {ds['path']!r} ('{field}.path') is missing") from None
        if not isinstance(arr, zarr.Array):
            raise CorruptFileError(f"{path}: '{field}.path' = {ds['path']!r} is a group, not an array")
        if arrays:
            above = arrays[-1]
            if arr.ndim != above.ndim:
                raise CorruptFileError(f"{path}: pyramid level {k} is {arr.ndim}D but level {k - 1} is "
                                       f"{above.ndim}D ('{field}')")
            if any(a > b for a, b in zip(arr.shape, above.shape)):
                raise CorruptFileError(f"{path}: pyramid level {k} has shape {arr.shape}, larger than level "
                                       f"{k - 1}'s {above.shape} ('{field}'); each level must be no larger")
        _check_transforms(path, f"{field}.coordinateTransformations", ds.get("coordinateTransformations"), arr.ndim)
        arrays.append(arr)
    ndim = arrays[0].ndim
    axes = ms.get("axes")
    if axes is not None:
        if not isinstance(axes, list):
            raise CorruptFileError(f"{path}: OME metadata field 'multiscales[0].axes' must be a list, "
                                   f"got {type(axes).__name__}")
        if len(axes) != ndim:
            raise CorruptFileError(f"{path}: OME metadata field 'multiscales[0].axes' has {len(axes)} entries "
                                   f"but the array is {ndim}D (shape {arrays[0].shape})")
        names = []
        for j, a in enumerate(axes):
            name = a.get("name") if isinstance(a, dict) else a
            if not isinstance(name, str) or not name:
                raise CorruptFileError(f"{path}: OME metadata field 'multiscales[0].axes[{j}]' needs a 'name' "
                                       f"string, got {a!r:.60}")
            if isinstance(a, dict) and a.get("unit") is not None and not isinstance(a["unit"], str):
                raise CorruptFileError(f"{path}: OME metadata field 'multiscales[0].axes[{j}].unit' must be a "
                                       f"string, got {a['unit']!r:.40}")
            names.append(name)
        if len(set(names)) != len(names):
            raise CorruptFileError(f"{path}: OME metadata field 'multiscales[0].axes' repeats a name: {names}")
    _check_transforms(path, "multiscales[0].coordinateTransformations", ms.get("coordinateTransformations"), ndim)
    return arrays


def _open(path):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise CorruptFileError(f"{path}: not a readable zarr store ({type(exc).__name__}: {exc})") from None
    return node


def stored_bytes(arr) -> int | None:
    """Bytes of chunk data a local zarr array stores (missing chunks count 0); None when not local."""
    import os

    root = getattr(getattr(arr, "store", None), "root", None)
    if root is None:
        return None
    folder = os.path.join(str(root), *str(arr.path).split("/")) if arr.path else str(root)
    total = 0
    meta = ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata")
    for dirpath, dirnames, filenames in os.walk(folder):
        # another array's folder below this one holds its own chunks, not this array's
        dirnames[:] = [d for d in dirnames if not any(os.path.exists(os.path.join(dirpath, d, m)) for m in meta[:2])]
        for f in filenames:
            if f not in meta:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
    return total


def _codec_name(arr) -> str | None:
    try:
        comps = list(arr.compressors or ())
    except Exception:
        return None
    if not comps:
        return None
    names = [type(c).__name__.lower().replace("codec", "") for c in comps]
    return "/".join(names)


def gate_array(arr, source, *, in_memory: bool) -> None:
    """:func:`mire.io.gate.check_declared` for a zarr array (its stored chunk bytes and codec)."""
    from mire.io.gate import DEFAULT_MAX_RATIO, MAX_RATIO, check_declared

    from mire.io.gate import check_chunks

    codec = _codec_name(arr)
    ratio = 1.0 if codec is None else max(MAX_RATIO.get(c, DEFAULT_MAX_RATIO) for c in codec.split("/"))
    check_chunks(source, arr.shape, arr.chunks, arr.dtype)
    check_declared(source, arr.shape, arr.dtype, stored_bytes=stored_bytes(arr), codec=codec, max_ratio=ratio,
                   in_memory=in_memory)


class ZarrBlocks:
    """Read-only view of a zarr array whose decoding errors name the file and the chunk."""

    def __init__(self, arr, source):
        self.arr, self.source = arr, str(source)
        self.shape, self.dtype, self.ndim = tuple(arr.shape), arr.dtype, arr.ndim
        # an HDF5 dataset (the same view serves it) may be contiguous: one chunk
        self.chunks = tuple(arr.chunks) if arr.chunks else self.shape

    def __getitem__(self, key):
        try:
            return self.arr[key]
        except Exception as exc:
            raise CorruptFileError(f"{self.source}: {chunk_error(self.arr, key, exc)}") from None

    def __dask_tokenize__(self):
        # the same store, unchanged, gives the same dask name (and resume token) in every run
        import os

        try:
            stamp = os.stat(self.source).st_mtime_ns
        except OSError:
            stamp = None
        return ("mire.ZarrBlocks", os.path.abspath(self.source), _array_name(self.arr), self.shape, str(self.dtype),
                self.chunks, stamp)


def _array_name(arr) -> str:
    """The array's path inside its store (zarr ``path``, HDF5 ``name``)."""
    return str(getattr(arr, "path", None) or getattr(arr, "name", None) or "")


def chunk_error(arr, key, exc) -> str:
    """One line naming the (first) chunk of ``arr[key]`` that cannot be decoded."""
    import itertools

    if not isinstance(key, tuple):
        key = (key,)
    key = key + (slice(None),) * (arr.ndim - len(key))
    ranges = []
    for k, n, c in zip(key, arr.shape, arr.chunks or arr.shape):
        if isinstance(k, slice):
            start, stop, _ = k.indices(n)
        elif k is Ellipsis:
            start, stop = 0, n
        else:
            start, stop = int(k), int(k) + 1
        ranges.append(range(start // c, max(start // c + 1, -(-stop // c))))
    bad = None
    for idx in itertools.islice(itertools.product(*ranges), 4096):
        sl = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(idx, arr.chunks or arr.shape, arr.shape))
        try:
            arr[sl]
        except Exception:
            bad = idx
            break
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
    name = f"array {_array_name(arr)!r} " if _array_name(arr) else ""
    where = f"chunk {'/'.join(map(str, bad))} of {name}" if bad is not None else f"a chunk of {name}"
    return f"cannot decode {where.rstrip()} ({msg})"


def read_omezarr(path, *, lazy: bool = False, level: int = 0) -> Image:
    """Read one level of an OME-Zarr multiscale image (or a plain zarr array).

    The metadata are checked against the arrays first (:func:`check_multiscales`), and the
    declared size against the stored bytes and the memory (:mod:`mire.io.gate`); a chunk
    that cannot be decoded raises a :class:`CorruptFileError` naming the file and the chunk.
    """
    import zarr

    node = _open(path)
    if isinstance(node, zarr.Array):
        if level != 0:
            raise ValueError(f"{path}: a plain zarr array has one level, asked for level={level}")
        arr, axes, pixel_size = node, None, None
    else:
        ms = _multiscales(node, path)
        if ms is None:
            arrays = sorted(k for k, _ in node.arrays())
            raise CorruptFileError(
                f"{path}: zarr group has no OME 'multiscales' metadata (arrays: {arrays or 'none'})"
            )
        levels = check_multiscales(node, ms, path)
        datasets = ms["datasets"]
        if not -len(datasets) <= level < len(datasets):
            raise ValueError(f"{path}: level={level} does not exist; the pyramid has {len(datasets)} levels")
        ds = datasets[level]
        arr = levels[level]
        names = [a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])]
        axes = file_axes("".join(n.upper() for n in names if len(n) == 1), arr.ndim) \
            if all(len(n) == 1 for n in names) else None
        pixel_size = _level_pixel_size(ms, ds, axes)
    gate_array(arr, path if level == 0 else f"{path} (level {level})", in_memory=not lazy)
    if lazy:
        import dask.array as da

        from mire.io.gate import dask_chunks

        data = da.from_array(ZarrBlocks(arr, path), chunks=dask_chunks(arr.shape, arr.chunks, arr.dtype),
                             asarray=True, fancy=False)
    else:
        try:
            data = arr[...]
        except Exception as exc:
            raise CorruptFileError(f"{path}: {chunk_error(arr, Ellipsis, exc)}") from None
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
    ms = _multiscales(node, path)
    return len(check_multiscales(node, ms, path)) if ms else 0
