"""napari reader and writers backed by :mod:`mire.io` (axes and pixel size become layer scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_IMAGE_SUFFIXES = (".tif", ".tiff", ".zarr", ".h5", ".hdf5", ".swc")
_SPATIAL = "ZYX"


def _known(path: str) -> bool:
    p = str(path).split(":/")[0].rstrip("/").lower()
    return p.endswith(_IMAGE_SUFFIXES)


def get_reader(path):
    """Return a reader for TIFF / OME-Zarr / HDF5 / SWC paths, else None (napari asks other plugins)."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths or not all(_known(p) for p in paths):
        return None
    return read_layers


def _layer_kwargs(name: str, axes: str | None, pixel_size: dict | None, ndim: int) -> tuple[dict, int | None]:
    kwargs: dict = {"name": name}
    channel_axis = None
    if axes:
        if "C" in axes:
            channel_axis = axes.index("C")
        spatial = [a for a in axes if a != "C"]
        if pixel_size:
            kwargs["scale"] = [float(pixel_size.get(a, 1.0)) if a in _SPATIAL else 1.0 for a in spatial]
        kwargs["axis_labels"] = spatial
    return kwargs, channel_axis


def swc_to_shapes(swc: np.ndarray) -> list[np.ndarray]:
    """SWC rows -> one (2, 3) line per parent-child edge, in (z, y, x) layer coordinates."""
    swc = np.asarray(swc, dtype=float)
    if len(swc) == 0:
        return []
    pos = {int(r[0]): (r[4], r[3], r[2]) for r in swc}
    return [np.array([pos[int(r[6])], pos[int(r[0])]]) for r in swc if int(r[6]) in pos]


def read_layers(path):
    """Read one or several files into napari LayerData tuples."""
    from mire.io import read_image, read_swc

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    layers = []
    for p in paths:
        name = Path(str(p).split(":/")[0].rstrip("/")).name
        for suffix in (".ome.zarr", ".zarr", ".tiff", ".tif", ".h5", ".hdf5", ".swc"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        if str(p).lower().endswith(".swc"):
            lines = swc_to_shapes(read_swc(p))
            layers.append((lines, {"name": name, "shape_type": "line", "edge_color": "cyan", "edge_width": 1},
                           "shapes"))
            continue
        img = read_image(p)
        kwargs, channel_axis = _layer_kwargs(name, img.axes, img.pixel_size, np.ndim(img.data))
        is_labels = np.issubdtype(img.data.dtype, np.integer) and np.dtype(img.data.dtype).itemsize >= 4
        if is_labels:
            kwargs.pop("axis_labels", None)
            layers.append((img.data, kwargs, "labels"))
        else:
            if channel_axis is not None:
                kwargs["channel_axis"] = channel_axis
            layers.append((img.data, kwargs, "image"))
    return layers


def _axes_and_pixel_size(data, meta: dict) -> tuple[str, dict | None]:
    ndim = np.ndim(data)
    axes = "TZYX"[-ndim:] if ndim <= 4 else None
    if axes is None:
        raise ValueError(f"cannot write a {ndim}D layer: mire writes at most 4 dimensions (TZYX)")
    scale = meta.get("scale")
    pixel_size = None
    if scale is not None:
        pixel_size = {a: float(s) for a, s in zip(axes, scale) if a in _SPATIAL}
    return axes, pixel_size


def write_image(path: str, data, meta: dict) -> list[str]:
    """Write an image layer with mire.io (TIFF / OME-Zarr / HDF5), keeping its scale as pixel size."""
    from mire.io import imwrite

    axes, pixel_size = _axes_and_pixel_size(data, meta)
    imwrite(path, np.asarray(data), axes=axes, pixel_size=pixel_size)
    return [path]


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer (integer ids) with mire.io."""
    from mire.io import imwrite

    axes, pixel_size = _axes_and_pixel_size(data, meta)
    arr = np.asarray(data)
    # nearest-neighbour pyramid levels: averaging label ids would invent ids that do not exist
    imwrite(path, arr.astype(np.uint32) if arr.min() >= 0 else arr.astype(np.int32), axes=axes,
            pixel_size=pixel_size, downscale="nearest")
    return [path]
