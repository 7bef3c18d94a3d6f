"""Folders and globs of PNG / TIFF slices, and single PNG images."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from mire.io import ImageFormatError, SliceStackError, imread, imwrite, iminfo, read_image
from mire.io.slices import natural_key


def _write_slices(folder, n, *, ext=".png", shape=(6, 7), start=1):
    folder.mkdir(exist_ok=True)
    planes = []
    for k in range(start, start + n):
        plane = np.full(shape, k, np.uint8)
        planes.append(plane)
        if ext == ".png":
            PILImage.fromarray(plane).save(folder / f"{k}{ext}")
        else:
            tifffile.imwrite(folder / f"{k}{ext}", plane)
    return np.stack(planes)


def test_natural_order():
    names = ["z10.png", "z2.png", "z1.png", "z01.png", "a.png"]
    assert sorted(names, key=natural_key) == ["a.png", "z01.png", "z1.png", "z2.png", "z10.png"]


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_folder_is_stacked_in_numeric_order(tmp_path, ext):
    expected = _write_slices(tmp_path / "stack", 12, ext=ext)  # 1..12: '10' sorts after '9'
    (tmp_path / "stack" / "notes.txt").write_text("ignored")
    im = read_image(tmp_path / "stack")
    assert im.axes is None  # slices could be Z or T: not guessed
    np.testing.assert_array_equal(im.data, expected)
    assert read_image(tmp_path / "stack", axes="ZYX").axes == "ZYX"
    assert iminfo(tmp_path / "stack")["shape"] == (12, 6, 7)


def test_glob_and_lazy(tmp_path):
    import dask.array as da

    expected = _write_slices(tmp_path, 11)
    lazy = imread(str(tmp_path / "*.png"), lazy=True)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), expected)
    np.testing.assert_array_equal(imread(str(tmp_path / "1?.png")), expected[9:])  # 10, 11


def test_empty_glob_and_folder(tmp_path):
    with pytest.raises(SliceStackError, match=r"no slices to read: the pattern .*\*\.png' matches no PNG or TIFF"):
        imread(str(tmp_path / "*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SliceStackError, match=r"empty: no slices to read: folder .* holds no PNG or TIFF"):
        imread(tmp_path / "empty")


def test_slices_of_different_shapes(tmp_path):
    _write_slices(tmp_path / "s", 3)
    PILImage.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "s" / "4.png")
    with pytest.raises(SliceStackError, match=r"slices differ: .*1\.png is \(6, 7\) uint8 but .*4\.png is \(6, 8\) uint8"):
        imread(tmp_path / "s")


def test_png_round_trip(tmp_path, rng):
    gray16 = rng.integers(0, 65535, (20, 30), dtype=np.uint16)
    rgb = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)
    imwrite(tmp_path / "g.png", gray16)
    imwrite(tmp_path / "c.png", rgb.transpose(2, 0, 1), axes="CYX")  # stored as YXC
    np.testing.assert_array_equal(imread(tmp_path / "g.png"), gray16)
    im = read_image(tmp_path / "c.png")
    assert im.axes == "YXC"
    np.testing.assert_array_equal(im.data, rgb)


def test_png_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(ImageFormatError, match=r"f\.png: PNG holds 2D uint8/uint16 .* got float32"):
        imwrite(tmp_path / "f.png", np.zeros((4, 4), np.float32))
    with pytest.raises(ImageFormatError, match="PNG cannot store a pixel size"):
        imwrite(tmp_path / "p.png", np.zeros((4, 4), np.uint8), axes="YX", pixel_size=0.5)
    assert not list(tmp_path.iterdir())


def test_isbi_slices_restacked_equal_the_tiff(tmp_path, shared_data):
    volume = imread(shared_data("isbi2012_em_membranes", "train-volume.tif"))[:12, :64, :64]
    for k, plane in enumerate(volume):  # k.png as in the source repository (0..11)
        imwrite(tmp_path / f"{k}.png", plane)
    np.testing.assert_array_equal(imread(tmp_path), volume)
