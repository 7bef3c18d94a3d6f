"""Which reader / writer handles a path: decided from the name (and, for folders, content)."""

from __future__ import annotations

import os
from pathlib import Path

from mire.io.errors import ImageFormatError
from mire.io.hdf5 import is_h5_path, split_h5_path
from mire.io.slices import is_glob, is_slice_folder

SUPPORTED = (".tif/.tiff/.ome.tif, .ome.zarr/.zarr folder, file.h5:/dataset (.h5/.hdf5), .png, "
             "a folder or glob of PNG/TIFF slices")


#: microscope vendors' file formats (read by Bio-Formats, not by mire), by extension
VENDOR_FORMATS = {".czi": "Zeiss", ".lsm": "Zeiss", ".nd2": "Nikon", ".lif": "Leica", ".lof": "Leica",
                  ".oib": "Olympus", ".oir": "Olympus", ".vsi": "Olympus", ".ims": "Imaris", ".dv": "DeltaVision",
                  ".ics": "ICS", ".ids": "ICS", ".sld": "SlideBook", ".mvd2": "Volocity"}


def _suffix(path) -> str:
    name = os.fspath(path).rstrip("/\\").lower()
    for s in (".ome.tiff", ".ome.tif", ".ome.zarr"):
        if name.endswith(s):
            return s
    return Path(name).suffix


def read_format(path) -> str:
    """Format name for reading ``path``: 'tiff', 'omezarr', 'hdf5', 'png' or 'slices'.

    Raises FileNotFoundError when nothing is there, ImageFormatError for an unknown format.
    """
    spath = os.fspath(path)
    if is_h5_path(spath):
        filename, _ = split_h5_path(spath)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"{filename}: no such file")
        return "hdf5"
    if is_glob(spath) and not os.path.exists(spath):
        return "slices"
    if not os.path.exists(spath):
        raise FileNotFoundError(f"{spath}: no such file or folder")
    suffix = _suffix(spath)
    if suffix in (".zarr", ".ome.zarr") or (os.path.isdir(spath) and not is_slice_folder(spath)):
        return "omezarr"
    if os.path.isdir(spath):
        return "slices"
    if suffix in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
        return "tiff"
    if suffix == ".png":
        return "png"
    hint = ""
    if suffix in VENDOR_FORMATS:  # what a microscope writes: say how to get to a format mire reads
        hint = (f"; {suffix} is {VENDOR_FORMATS[suffix]}'s own format: export it as OME-TIFF first (Fiji: "
                "File > Save As > OME-TIFF..., or Bio-Formats' bfconvert)")
    raise ImageFormatError(f"{spath}: unknown image format {suffix or '(no extension)'!r}; mire reads {SUPPORTED}"
                           + hint)


def write_format(path) -> str:
    """Format name for writing ``path`` (from its extension only)."""
    spath = os.fspath(path)
    if is_h5_path(spath):
        return "hdf5"
    suffix = _suffix(spath)
    if suffix in (".tif", ".tiff", ".ome.tif", ".ome.tiff"):
        return "tiff"
    if suffix in (".zarr", ".ome.zarr"):
        return "omezarr"
    if suffix == ".png":
        return "png"
    raise ImageFormatError(
        f"{spath}: cannot tell the format to write from {suffix or '(no extension)'!r}; "
        "use .tif, .ome.tif, .ome.zarr, file.h5:/dataset or .png"
    )
