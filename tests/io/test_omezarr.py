"""OME-Zarr: multiscale pyramid, axes and pixel size in the NGFF metadata, lazy reads."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from skimage.transform import downscale_local_mean

from mire.io import CorruptFileError, ImageFormatError, imread, imwrite, iminfo, read_image


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("axes, shape", [("YX", (150, 140)), ("ZYX", (3, 130, 140)), ("TZYX", (2, 3, 40, 50)),
                                         ("CZYX", (2, 3, 40, 50))])
def test_round_trip(tmp_path, rng, dtype, axes, shape):
    data = (rng.random(shape) * 1000).astype(dtype)
    sizes = {a: v for a, v in {"Z": 2.0, "Y": 0.25, "X": 0.5}.items() if a in axes}
    path = tmp_path / "a.ome.zarr"
    imwrite(path, data, axes=axes, pixel_size=sizes)
    im = read_image(path)
    assert im.axes == axes and im.data.dtype == data.dtype
    np.testing.assert_array_equal(im.data, data)
    assert im.pixel_size == sizes


def test_ngff_metadata_and_pyramid(tmp_path, rng):
    data = rng.random((4, 256, 200)).astype(np.float32)
    path = tmp_path / "v.ome.zarr"
    imwrite(path, data, axes="ZYX", pixel_size={"Z": 1.0, "Y": 0.3, "X": 0.3})
    meta = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    ms = meta["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert all(a["unit"] == "micrometer" for a in ms["axes"])
    # 256x200 -> 128x100 -> 64x50 would be < 64, so the pyramid stops at 2 levels
    assert [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]] == [[1.0, 0.3, 0.3], [1.0, 0.6, 0.6]]
    assert iminfo(path)["levels"] == 2
    level1 = read_image(path, level=1)
    assert level1.shape == (4, 128, 100)
    assert level1.pixel_size == pytest.approx({"Z": 1.0, "Y": 0.6, "X": 0.6})
    # Level 1 is the 2x2 block mean in Y, X (Z untouched), as scikit-image computes it.
    np.testing.assert_allclose(level1.data, downscale_local_mean(data, (1, 2, 2)), rtol=1e-6)


def test_odd_sizes_and_levels_argument(tmp_path, rng):
    data = rng.integers(0, 60000, (37, 51), dtype=np.uint16)
    path = tmp_path / "odd.zarr"
    imwrite(path, data, axes="YX", levels=3)
    assert [read_image(path, level=k).shape for k in range(3)] == [(37, 51), (19, 26), (10, 13)]
    lvl1 = imread(path, level=1)
    # Last row/column: the odd edge pixel is averaged with itself, not with zeros.
    assert lvl1[-1, -1] == data[-1, -1]
    assert lvl1[0, 0] == np.rint(data[:2, :2].mean())
    with pytest.raises(ValueError, match="level=3 does not exist; the pyramid has 3 levels"):
        imread(path, level=3)


def test_nearest_pyramid_keeps_label_values(tmp_path):
    labels = np.repeat(np.repeat(np.array([[1, 7], [3, 9]], np.uint32), 80, 0), 80, 1)
    labels[0, 1] = 5  # a label that block averaging would mix into its neighbours
    imwrite(tmp_path / "l.ome.zarr", labels, axes="YX", levels=2, downscale="nearest")
    lvl1 = imread(tmp_path / "l.ome.zarr", level=1)
    assert set(np.unique(lvl1)) <= set(np.unique(labels))
    np.testing.assert_array_equal(lvl1, labels[::2, ::2])


def test_lazy_read_is_dask(tmp_path, rng):
    import dask.array as da

    data = rng.random((3, 100, 90)).astype(np.float32)
    imwrite(tmp_path / "a.ome.zarr", data, axes="ZYX", chunks=(1, 50, 45))
    lazy = imread(tmp_path / "a.ome.zarr", lazy=True)
    assert isinstance(lazy, da.Array) and lazy.chunksize == (1, 50, 45)
    assert float(lazy.mean().compute()) == pytest.approx(float(data.astype(np.float64).mean()), rel=1e-6)


def test_non_ngff_order_is_stored_transposed(tmp_path, rng):
    data = rng.random((5, 64, 64, 2)).astype(np.float32)
    imwrite(tmp_path / "a.ome.zarr", data, axes="ZYXC")
    assert read_image(tmp_path / "a.ome.zarr").axes == "CZYX"
    np.testing.assert_array_equal(imread(tmp_path / "a.ome.zarr", axes="ZYXC"), data)


def test_needs_axes_above_2d(tmp_path):
    with pytest.raises(ImageFormatError, match=r"x\.ome\.zarr: OME-Zarr needs axes for 3D data"):
        imwrite(tmp_path / "x.ome.zarr", np.zeros((2, 3, 4)))
    assert not list(tmp_path.iterdir())


def test_replacing_existing_store(tmp_path):
    path = tmp_path / "a.ome.zarr"
    imwrite(path, np.zeros((2, 80, 80), np.uint8), axes="ZYX")
    imwrite(path, np.ones((3, 70, 70), np.uint16), axes="CYX")
    im = read_image(path)
    assert im.shape == (3, 70, 70) and im.axes == "CYX" and int(im.data.min()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.ome.zarr"]  # no temp or backup folders left


def test_plain_zarr_array_and_group_without_multiscales(tmp_path):
    import zarr

    arr = zarr.create_array(str(tmp_path / "plain.zarr"), shape=(4, 5), dtype="int16")
    arr[:] = np.arange(20).reshape(4, 5)
    im = read_image(tmp_path / "plain.zarr")
    assert im.axes is None and im.data.sum() == 190
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("raw", shape=(2, 2), dtype="uint8")
    with pytest.raises(CorruptFileError, match=r"g\.zarr: zarr group has no OME 'multiscales' metadata \(arrays: \['raw'\]\)"):
        imread(tmp_path / "g.zarr")


def test_dask_input_is_written_blockwise_with_the_same_pyramid(tmp_path, rng):
    import dask.array as da

    data = rng.integers(0, 4000, (3, 131, 141), dtype=np.uint16)  # odd sizes: edge padding path
    lazy = da.from_array(data, chunks=(1, 40, 50))
    imwrite(tmp_path / "np.ome.zarr", data, axes="ZYX", levels=3)
    imwrite(tmp_path / "da.ome.zarr", lazy, axes="ZYX", levels=3)
    for k in range(3):
        np.testing.assert_array_equal(imread(tmp_path / "da.ome.zarr", level=k), imread(tmp_path / "np.ome.zarr", level=k))


def test_reads_ngff_04_on_zarr_v2_with_nanometres(tmp_path):
    """Stores written by other tools (NGFF 0.4, zarr v2, units other than µm) read correctly."""
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscale

    data = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
    group = zarr.open_group(str(tmp_path / "v04.zarr"), mode="w", zarr_format=2)
    axes = [{"name": "c", "type": "channel"}, {"name": "y", "type": "space", "unit": "nanometer"},
            {"name": "x", "type": "space", "unit": "nanometer"}]
    with warnings.catch_warnings():  # ome_zarr deprecates explicit transforms; other tools still write them
        warnings.simplefilter("ignore", DeprecationWarning)
        write_multiscale([data, data[:, ::2, ::2]], group, fmt=FormatV04(), axes=axes,
                         coordinate_transformations=[[{"type": "scale", "scale": [1, 40.0, 40.0]}],
                                                     [{"type": "scale", "scale": [1, 80.0, 80.0]}]])
    assert (tmp_path / "v04.zarr" / ".zattrs").exists()
    im = read_image(tmp_path / "v04.zarr", level=1)
    assert im.axes == "CYX" and im.pixel_size == pytest.approx({"Y": 0.08, "X": 0.08})
    np.testing.assert_array_equal(im.data, data[:, ::2, ::2])
    assert iminfo(tmp_path / "v04.zarr")["levels"] == 2
