"""TIFF: ImageJ / OME metadata, round-trips, real files, truncated files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from mire.io import CorruptFileError, imread, imwrite, iminfo, read_image


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("axes, shape", [("YX", (13, 17)), ("ZYX", (5, 13, 17)), ("TZYX", (2, 3, 13, 17)),
                                         ("CZYX", (2, 3, 13, 17))])
def test_round_trip_values_axes_pixel_size(tmp_path, rng, dtype, axes, shape):
    data = (rng.random(shape) * 1000).astype(dtype)
    sizes = {"Z": 2.5, "Y": 0.125, "X": 0.2}
    sizes = {a: sizes[a] for a in axes if a in sizes}
    path = tmp_path / "a.tif"
    imwrite(path, data, axes=axes, pixel_size=sizes)
    im = read_image(path)
    assert im.axes == axes
    assert im.data.dtype == data.dtype
    np.testing.assert_array_equal(im.data, data)
    assert im.pixel_size.keys() == sizes.keys()
    for a, v in sizes.items():
        assert im.pixel_size[a] == pytest.approx(v, rel=1e-6)


def test_imagej_order_written_as_imagej_other_orders_as_ome(tmp_path):
    data = np.zeros((2, 3, 4, 5), np.uint16)
    imwrite(tmp_path / "tz.tif", data, axes="TZYX", pixel_size=(1.0, 0.5, 0.5))
    imwrite(tmp_path / "cz.tif", data, axes="CZYX")
    imwrite(tmp_path / "f64.tif", data.astype(np.float64), axes="TZYX")  # ImageJ has no float64
    imwrite(tmp_path / "forced.ome.tif", data, axes="TZYX")
    with tifffile.TiffFile(tmp_path / "tz.tif") as tf:
        assert tf.is_imagej and tf.imagej_metadata["spacing"] == 1.0
        assert tf.pages.first.tags["XResolution"].value == (2, 1)  # 2 pixels per µm
    for name in ("cz.tif", "f64.tif", "forced.ome.tif"):
        with tifffile.TiffFile(tmp_path / name) as tf:
            assert tf.is_ome and not tf.is_imagej, name


def test_yx_not_last_is_stored_in_tczyx_order(tmp_path, rng):
    data = rng.random((4, 6, 7, 2)).astype(np.float32)
    imwrite(tmp_path / "a.tif", data, axes="ZYXC", pixel_size={"X": 0.3, "Y": 0.3, "Z": 1.5})
    im = read_image(tmp_path / "a.tif")
    assert im.axes == "CZYX"
    np.testing.assert_array_equal(im.data, data.transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(imread(tmp_path / "a.tif", axes="ZYXC"), data)
    assert im.pixel_size == pytest.approx({"Z": 1.5, "Y": 0.3, "X": 0.3})


def test_without_axes_nothing_is_claimed(tmp_path):
    data = np.arange(60, dtype=np.int32).reshape(3, 4, 5)
    imwrite(tmp_path / "a.tif", data)
    im = read_image(tmp_path / "a.tif")
    assert im.axes is None and im.pixel_size is None
    np.testing.assert_array_equal(im.data, data)
    # The caller may then name the axes.
    assert read_image(tmp_path / "a.tif", axes="TYX").axes == "TYX"


def test_bool_written_as_uint8(tmp_path):
    mask = np.eye(5, dtype=bool)
    imwrite(tmp_path / "m.tif", mask, axes="YX")
    out = imread(tmp_path / "m.tif")
    assert out.dtype == np.uint8 and out.sum() == 5


def test_lazy_read_is_dask_and_equal(tmp_path, rng):
    data = rng.integers(0, 255, (6, 20, 30), dtype=np.uint8)
    imwrite(tmp_path / "a.tif", data, axes="ZYX")
    lazy = imread(tmp_path / "a.tif", lazy=True)
    import dask.array as da

    assert isinstance(lazy, da.Array) and lazy.shape == data.shape
    np.testing.assert_array_equal(lazy[2:4].compute(), data[2:4])
    # picklable (dask ships it to cluster workers as its path) and named by the file, not by object
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy))[3].compute(), data[3])
    assert lazy.name == imread(tmp_path / "a.tif", lazy=True).name


def test_ome_units_converted_to_micrometres(tmp_path):
    tifffile.imwrite(tmp_path / "nm.ome.tif", np.zeros((2, 4, 4), np.uint8), ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": 50.0, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 50.0, "PhysicalSizeYUnit": "nm",
                               "PhysicalSizeZ": 0.5, "PhysicalSizeZUnit": "mm"})
    assert read_image(tmp_path / "nm.ome.tif").pixel_size == pytest.approx({"Z": 500.0, "Y": 0.05, "X": 0.05})


def test_imagej_in_nanometres(tmp_path):
    tifffile.imwrite(tmp_path / "nm.tif", np.zeros((2, 4, 4), np.uint8), imagej=True, photometric="minisblack", resolution=(0.25, 0.25),
                     metadata={"axes": "ZYX", "unit": "nm", "spacing": 50.0})
    assert read_image(tmp_path / "nm.tif").pixel_size == pytest.approx({"Z": 0.05, "Y": 0.004, "X": 0.004})


def test_op1_imagej_metadata(shared_data):
    path = shared_data("diadem_op_neurons", "OP_1.tif")
    im = read_image(path)
    assert im.data.shape == (60, 512, 512) and im.data.dtype == np.uint8
    assert im.axes == "ZYX"
    assert im.pixel_size["X"] == pytest.approx(0.3296, abs=1e-4)
    assert im.pixel_size["Y"] == pytest.approx(0.3296, abs=1e-4)
    assert im.pixel_size["Z"] == 1.0
    assert (int(im.data.min()), int(im.data.max())) == (0, 254)  # README: min=0 max=254
    np.testing.assert_array_equal(im.data, tifffile.imread(path))


def test_isbi_multipage_tiffs(shared_data):
    vol = shared_data("isbi2012_em_membranes", "train-volume.tif")
    lab = shared_data("isbi2012_em_membranes", "train-labels.tif")
    for path in (vol, lab):
        info = iminfo(path)
        assert info["shape"] == (30, 512, 512) and info["dtype"] == "uint8"
        assert info["axes"] is None  # multi-page without metadata: not guessed
    labels = imread(lab, axes="ZYX")
    assert set(np.unique(labels)) <= {0, 255}
    # README: about 22 % of pixels are membrane (0)
    assert np.mean(labels == 0) == pytest.approx(0.22, abs=0.02)
    np.testing.assert_array_equal(imread(vol, lazy=True)[7].compute(), tifffile.imread(vol, key=7))


@pytest.mark.parametrize("keep", [0.98, 0.5, 0.02, 100])
def test_truncated_tiff_is_a_clear_error(tmp_path, rng, keep):
    path = tmp_path / "full.tif"
    imwrite(path, rng.random((5, 64, 64)).astype(np.float32), axes="ZYX", compression=None)
    raw = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[: int(len(raw) * keep) if keep < 1 else keep])
    with pytest.raises(CorruptFileError, match=r"cut\.tif.*(truncated|damaged|not a readable TIFF)"):
        imread(cut)


def test_truncated_compressed_multipage_tiff(tmp_path, rng):
    path = tmp_path / "full.tif"
    imwrite(path, rng.random((4, 3, 32, 32)).astype(np.float64), axes="CZYX")  # OME, zlib, one IFD per page
    raw = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(raw[: len(raw) - 200])
    with pytest.raises(CorruptFileError, match="cut.tif"):
        imread(cut)


def test_not_a_tiff(tmp_path):
    bad = tmp_path / "text.tif"
    bad.write_text("hello, not an image")
    with pytest.raises(CorruptFileError, match="text.tif: not a readable TIFF"):
        imread(bad)


def test_damaged_compressed_data(tmp_path, rng):
    data = (rng.random((5, 64, 64)) * 1000).astype(np.uint16)
    imwrite(tmp_path / "z.tif", data, axes="ZYX")  # zlib
    raw = bytearray((tmp_path / "z.tif").read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 50] = bytes(50)
    (tmp_path / "bad.tif").write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match=r"bad\.tif: TIFF file is truncated or damaged \("):
        imread(tmp_path / "bad.tif")


@pytest.mark.parametrize("shape, axes", [((6, 1, 1), "TYX"), ((6, 4, 1), "ZYX"), ((5, 1), "YX")])
def test_an_x_of_length_one_is_written_readably(tmp_path, shape, axes):
    # before: the ImageJ writer took the length-1 X for a samples axis and stored one (6, 4) page of a
    # (6, 4, 1) volume; reading it back failed with "TIFF file is truncated or damaged"
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    path = tmp_path / "thin.tif"
    imwrite(path, data, axes=axes, pixel_size={"Y": 0.5, "X": 0.5})
    image = read_image(path)
    assert image.axes == axes and image.pixel_size == {"Y": 0.5, "X": 0.5}
    np.testing.assert_array_equal(image.data, data)
