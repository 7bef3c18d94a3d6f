"""Dispatch, errors shared by every format, axes handling, atomic writes, iminfo."""

from __future__ import annotations

import numpy as np
import pytest

import mire.io
from mire.io import AxesError, ImageFormatError, imread, imwrite, iminfo, read_image
from mire.io.atomic import atomic_path


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, mire.io; print(sorted(m for m in ('h5py', 'zarr', 'ome_zarr', 'dask', 'tifffile', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_file(tmp_path):
    for name in ("nope.tif", "nope.ome.zarr", "nope.h5:/x", "nope.png"):
        with pytest.raises(FileNotFoundError, match=r"nope\.[\w.]+: no such file"):
            imread(tmp_path / name if ":" not in name else f"{tmp_path}/{name}")


def test_unknown_format(tmp_path):
    (tmp_path / "a.xyz").write_text("?")
    with pytest.raises(ImageFormatError, match=r"a\.xyz: unknown image format '\.xyz'; mire reads .tif"):
        imread(tmp_path / "a.xyz")
    with pytest.raises(ImageFormatError, match=r"b\.jpg: cannot tell the format to write from '\.jpg'"):
        imwrite(tmp_path / "b.jpg", np.zeros((2, 2)))


@pytest.mark.parametrize("name", ["a.tif", "a.ome.zarr", "a.h5:/d"])
def test_axes_permutation_and_mismatch(tmp_path, rng, name):
    data = rng.random((2, 3, 64, 65)).astype(np.float32)
    path = f"{tmp_path}/{name}"
    imwrite(path, data, axes="TZYX")
    np.testing.assert_array_equal(imread(path, axes="ZTXY"), data.transpose(1, 0, 3, 2))
    with pytest.raises(AxesError, match=r"asked for axes 'CZYX' but the file has axes 'TZYX' \(shape \(2, 3, 64, 65\)\)"):
        imread(path, axes="CZYX")
    with pytest.raises(AxesError, match=r"axes='ZYX' has 3 letters but the data has 4 dimensions .*'TZYX', shape"):
        imread(path, axes="ZYX")


def test_write_axes_and_pixel_size_checked(tmp_path):
    with pytest.raises(AxesError, match=r"a\.tif: axes='ZYX' has 3 letters but the data has 2"):
        imwrite(tmp_path / "a.tif", np.zeros((2, 2)), axes="ZYX")
    with pytest.raises(AxesError, match="pixel_size=0.5 needs axes"):
        imwrite(tmp_path / "a.tif", np.zeros((2, 2)), pixel_size=0.5)
    with pytest.raises(AxesError, match=r"pixel_size has 2 values but axes 'ZYX' have 3 spatial axes"):
        imwrite(tmp_path / "a.tif", np.zeros((2, 2, 2)), axes="ZYX", pixel_size=(1, 2))
    with pytest.raises(ValueError, match="pixel size of axis X must be a positive number"):
        imwrite(tmp_path / "a.tif", np.zeros((2, 2)), axes="YX", pixel_size={"X": -1})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["a.tif", "a.ome.zarr", "a.h5:/d", "a.png"])
def test_bad_data_is_refused_before_anything_is_written(tmp_path, name):
    with pytest.raises(TypeError, match="numeric array, got dtype object"):
        imwrite(f"{tmp_path}/{name}", np.array([[object(), 1]], dtype=object))
    with pytest.raises(ValueError, match=r"is empty \(shape \(0, 4\)\)"):
        imwrite(f"{tmp_path}/{name}", np.zeros((0, 4), np.uint8))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, target", [("a.tif", "tifffile.imwrite"),
                                          ("a.ome.zarr", "ome_zarr.writer.write_multiscale"),
                                          ("a.h5:/d", "h5py.Group.create_dataset"),
                                          ("a.png", "PIL.Image.Image.save")])
def test_failure_mid_write_leaves_nothing(tmp_path, monkeypatch, name, target):
    """A writer that dies after creating its output must leave neither output nor temp files."""
    module_name, _, attr = target.rpartition(".")
    import importlib

    try:
        owner = importlib.import_module(module_name)
    except ModuleNotFoundError:  # a class attribute: h5py.Group.create_dataset
        mod, _, cls = module_name.rpartition(".")
        owner = getattr(importlib.import_module(mod), cls)
    original = getattr(owner, attr)

    def broken(*args, **kwargs):
        original(*args, **kwargs)  # the output really exists (partially) when the error hits
        raise OSError("disk full")

    monkeypatch.setattr(owner, attr, broken)
    with pytest.raises(OSError, match="disk full"):
        imwrite(f"{tmp_path}/{name}", np.zeros((70, 70), np.uint8), axes="YX")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    imwrite(tmp_path / "a.tif", np.ones((4, 4), np.uint8), axes="YX")
    imwrite(f"{tmp_path}/b.h5:/old", np.ones((4, 4), np.uint8), axes="YX")
    import h5py
    import tifffile

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", boom)
    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(OSError):
        imwrite(tmp_path / "a.tif", np.zeros((9, 9), np.uint8), axes="YX")
    with pytest.raises(OSError):
        imwrite(f"{tmp_path}/b.h5:/new", np.zeros((9, 9), np.uint8), axes="YX")
    monkeypatch.undo()
    assert imread(tmp_path / "a.tif").tolist() == np.ones((4, 4)).tolist()
    assert iminfo(f"{tmp_path}/b.h5")["shape"] == (4, 4)  # still one dataset, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.h5"]


def test_atomic_folder_swap_restores_on_failure(tmp_path, monkeypatch):
    dest = tmp_path / "out.zarr"
    dest.mkdir()
    (dest / "old").write_text("old")
    import mire.io.atomic as atomic

    real_replace = atomic.os.replace
    calls = []

    def flaky_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # moving the new folder into place fails
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky_replace)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # the fallback without an atomic swap
    with pytest.raises(OSError, match="rename failed"):
        with atomic_path(dest, directory=True) as tmp:
            tmp.mkdir()
            (tmp / "new").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    assert (dest / "old").read_text() == "old"


def test_atomic_folder_overwrite_is_one_swap(tmp_path, monkeypatch):
    import sys

    import mire.io.atomic as atomic

    dest = tmp_path / "out.zarr"
    dest.mkdir()
    (dest / "old").write_text("old")
    renames = []
    real_replace = atomic.os.replace
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (renames.append((a, b)), real_replace(a, b))[1])
    with atomic_path(dest, directory=True) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    if sys.platform.startswith("linux"):
        assert renames == []  # renameat2(RENAME_EXCHANGE): never a moment without out.zarr


def test_missing_output_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*nodir does not exist"):
        imwrite(tmp_path / "nodir" / "a.tif", np.zeros((2, 2)), axes="YX")


@pytest.mark.parametrize("name, fmt, levels", [("a.tif", "tiff", 1), ("a.ome.zarr", "omezarr", 2),
                                               ("a.h5:/x", "hdf5", 1)])
def test_iminfo(tmp_path, name, fmt, levels):
    path = f"{tmp_path}/{name}"
    imwrite(path, np.zeros((3, 128, 130), np.uint16), axes="ZYX", pixel_size={"Z": 2.0, "Y": 0.5, "X": 0.5})
    assert iminfo(path) == {"path": path, "format": fmt, "shape": (3, 128, 130), "dtype": "uint16",
                            "axes": "ZYX", "pixel_size": {"Z": 2.0, "Y": 0.5, "X": 0.5}, "levels": levels}


def test_level_only_for_pyramids(tmp_path):
    imwrite(tmp_path / "a.tif", np.zeros((2, 2)), axes="YX")
    with pytest.raises(ValueError, match="level=1 asked, but a tiff file has a single level"):
        imread(tmp_path / "a.tif", level=1)


def test_public_api():
    assert {"imread", "imwrite", "iminfo", "read_image", "Image", "read_swc", "write_swc"} <= set(mire.io.__all__)
    im = read_image.__globals__["Image"](np.zeros((2, 3, 4)), "ZYX", None)
    assert (im.shape, im.ndim, im.dtype) == ((2, 3, 4), 3, np.float64)
