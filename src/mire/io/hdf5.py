"""HDF5 datasets addressed as ``file.h5:/group/dataset``.

Axes are kept in the dataset attribute ``axes`` (e.g. ``"ZYX"``) and the pixel size in
``pixel_size_um`` (JSON ``{"Z": 1.0, ...}``); Fiji / ilastik's ``element_size_um`` is
read too and written when the axes are all spatial, so those tools see the calibration.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from mire.io.atomic import atomic_path
from mire.io.errors import CorruptFileError, DatasetNotFoundError
from mire.io.gate import InsufficientMemoryError
from mire.io.image import SPATIAL, Image, file_axes

H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
# "file.h5" or "file.h5:/group/ds"; the suffix anchors the split so "C:\\x.h5" still works.
_H5_PATH = re.compile(r"^(?P<file>.*?\.(?:h5|hdf5|hdf|he5))(?::(?P<dataset>.*))?$", re.IGNORECASE)
DEFAULT_DATASET = "data"


def split_h5_path(path):
    """Split ``"a.h5:/g/ds"`` into ``("a.h5", "g/ds")``; the dataset is None when absent.

    >>> split_h5_path("stack.h5:/raw/0")
    ('stack.h5', 'raw/0')
    """
    m = _H5_PATH.match(os.fspath(path))
    if m is None:
        return None
    dataset = (m.group("dataset") or "").strip("/") or None
    return m.group("file"), dataset


def is_h5_path(path) -> bool:
    return split_h5_path(path) is not None


def list_datasets(h5file) -> list[str]:
    import h5py

    names = []
    h5file.visititems(lambda name, obj: names.append("/" + name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _open(filename):
    import h5py

    try:
        return h5py.File(filename, "r")
    except OSError as exc:
        raise CorruptFileError(f"{filename}: not a readable HDF5 file ({exc})") from None


def _dataset(f, filename, dataset):
    import h5py

    if dataset is None:
        names = list_datasets(f)
        if len(names) == 1:
            return f[names[0]]
        raise DatasetNotFoundError(
            f"{filename}: name the dataset as '{filename}:/<dataset>'; the file holds "
            f"{len(names)} datasets: {names or 'none'}"
        )
    obj = f.get(dataset)
    if not isinstance(obj, h5py.Dataset):
        names = list_datasets(f)
        what = "is a group, not a dataset" if obj is not None else "does not exist"
        raise DatasetNotFoundError(f"{filename}: dataset '/{dataset}' {what}; datasets in the file: {names or 'none'}")
    return obj


def _metadata(ds) -> tuple[str | None, dict | None]:
    attrs = ds.attrs
    axes = attrs.get("axes")
    if isinstance(axes, bytes):
        axes = axes.decode()
    if axes is None and "axistags" in attrs:  # ilastik / vigra
        try:
            axes = "".join(t["key"] for t in json.loads(attrs["axistags"])["axes"])
        except (ValueError, KeyError, TypeError):
            axes = None
    axes = file_axes(axes, ds.ndim) if isinstance(axes, str) else None
    if axes is None:
        return None, None
    sizes = {}
    if "pixel_size_um" in attrs:
        sizes = {k: float(v) for k, v in json.loads(attrs["pixel_size_um"]).items()}
    elif "element_size_um" in attrs:
        values = [float(v) for v in np.ravel(attrs["element_size_um"])]
        spatial = [a for a in axes if a in SPATIAL]
        if len(values) == len(axes):
            sizes = dict(zip(axes, values))
        elif len(values) == len(spatial):
            sizes = dict(zip(spatial, values))
    sizes = {a: sizes[a] for a in axes if a in SPATIAL and a in sizes}
    return axes, sizes or None


def _gate(ds, source, *, in_memory: bool) -> None:
    """The input gate (:mod:`mire.io.gate`) on the dataset's declared shape and stored bytes."""
    from mire.io.gate import check_declared

    try:
        stored = int(ds.id.get_storage_size())
    except Exception:
        stored = None
    # unallocated storage reads as the fill value: 0 stored bytes bound a contiguous dataset too
    codec = ds.compression
    check_declared(source, ds.shape, ds.dtype, stored_bytes=stored, codec=codec, in_memory=in_memory)
    if ds.chunks is not None:
        from mire.io.gate import check_chunks

        check_chunks(source, ds.shape, ds.chunks, ds.dtype)


def read_hdf5(path, *, lazy: bool = False) -> Image:
    """Read ``file.h5:/dataset`` (lazily as a dask array that keeps the file open)."""
    filename, dataset = split_h5_path(path)
    f = _open(filename)
    try:
        ds = _dataset(f, filename, dataset)
        axes, pixel_size = _metadata(ds)
        _gate(ds, path, in_memory=not lazy)
        if lazy:
            import dask.array as da

            from mire.io.gate import dask_chunks

            from mire.io.omezarr import ZarrBlocks

            # the view names the file and the chunk when one cannot be decoded (h5py's message names neither)
            data = da.from_array(ZarrBlocks(ds, filename), chunks=dask_chunks(ds.shape, ds.chunks, ds.dtype)
                                 if ds.chunks else "auto", asarray=True, fancy=False)
        else:
            try:
                data = ds[()]
            except OSError as exc:  # a chunk h5py cannot decode: name it
                from mire.io.omezarr import chunk_error

                raise CorruptFileError(f"{filename}: {chunk_error(ds, (), exc)}") from None
    except Exception as exc:
        f.close()
        if isinstance(exc, (DatasetNotFoundError, CorruptFileError, TypeError, InsufficientMemoryError)):
            raise
        raise CorruptFileError(f"{filename}: cannot read dataset ({type(exc).__name__}: {exc})") from None
    if not lazy:
        f.close()
    return Image(data, axes, pixel_size)


def write_hdf5(path, data, *, axes=None, pixel_size=None, compression="gzip", chunks=None) -> None:
    """Write ``data`` to ``file.h5:/dataset`` (default ``/data``), replacing that dataset.

    ``data`` may be a dask array (written block by block). Other datasets of an existing file are kept. The write goes to a copy of the file that
    replaces the original only once complete, so a failure never damages the original.
    """
    import h5py

    filename, dataset = split_h5_path(path)
    dataset = dataset or DEFAULT_DATASET
    if compression is not None and data.size > 1 and chunks is None:
        chunks = True  # HDF5 compresses only chunked datasets
    with atomic_path(filename, copy_existing=True) as tmp:
        try:
            f = h5py.File(tmp, "a")
        except OSError as exc:
            raise CorruptFileError(f"{filename}: existing file is not a readable HDF5 file ({exc})") from None
        with f:
            if dataset in f:
                del f[dataset]
            if type(data).__module__.startswith("dask"):  # stream blocks, never the whole array
                import dask.array as da

                ds = f.create_dataset(dataset, shape=data.shape, dtype=data.dtype, compression=compression,
                                      chunks=chunks)
                da.store(data, ds, lock=True)
            else:
                ds = f.create_dataset(dataset, data=data, compression=compression, chunks=chunks)
            if axes is not None:
                ds.attrs["axes"] = axes
            if pixel_size:
                ds.attrs["pixel_size_um"] = json.dumps(pixel_size)
                spatial = [a for a in axes if a in SPATIAL]
                if spatial == list(axes) and all(a in pixel_size for a in spatial):
                    ds.attrs["element_size_um"] = np.array([pixel_size[a] for a in spatial])
