"""HDF5: ``file.h5:/dataset`` addressing, metadata attributes, missing datasets, lazy reads."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mire.io import CorruptFileError, DatasetNotFoundError, imread, imwrite, iminfo, read_image
from mire.io.hdf5 import split_h5_path


def test_split_path():
    assert split_h5_path("a.h5:/g/ds") == ("a.h5", "g/ds")
    assert split_h5_path("dir.v2/a.HDF5") == ("dir.v2/a.HDF5", None)
    assert split_h5_path(r"C:\data\a.h5:/raw") == (r"C:\data\a.h5", "raw")
    assert split_h5_path("a.tif") is None


@pytest.mark.parametrize("axes, shape", [("YX", (9, 11)), ("ZYX", (3, 9, 11)), ("TZYX", (2, 3, 9, 11)),
                                         ("CZYX", (2, 3, 9, 11))])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_round_trip(tmp_path, rng, axes, shape, dtype):
    data = (rng.random(shape) * 1000).astype(dtype)
    sizes = {a: v for a, v in {"Z": 2.0, "Y": 0.1, "X": 0.1}.items() if a in axes}
    path = f"{tmp_path}/a.h5:/group/raw"
    imwrite(path, data, axes=axes, pixel_size=sizes)
    im = read_image(path)
    assert im.axes == axes and im.pixel_size == sizes and im.data.dtype == data.dtype
    np.testing.assert_array_equal(im.data, data)


def test_datasets_are_added_and_replaced_not_the_file(tmp_path):
    f = tmp_path / "a.h5"
    imwrite(f"{f}:/raw", np.zeros((4, 4), np.uint8), axes="YX")
    imwrite(f"{f}:/labels", np.ones((4, 4), np.uint32), axes="YX")
    imwrite(f"{f}:/raw", np.full((2, 2), 7, np.uint8), axes="YX")
    with h5py.File(f, "r") as h:
        assert sorted(h.keys()) == ["labels", "raw"]
        assert h["raw"].shape == (2, 2) and h["labels"].dtype == np.uint32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]


def test_missing_dataset_lists_the_existing_ones(tmp_path):
    f = tmp_path / "a.h5"
    imwrite(f"{f}:/raw", np.zeros((4, 4)), axes="YX")
    imwrite(f"{f}:/seg/labels", np.zeros((4, 4), np.int32), axes="YX")
    with pytest.raises(DatasetNotFoundError, match=r"a\.h5: dataset '/nope' does not exist; datasets in the file: \['/raw', '/seg/labels'\]"):
        imread(f"{f}:/nope")
    with pytest.raises(DatasetNotFoundError, match="'/seg' is a group, not a dataset"):
        imread(f"{f}:/seg")
    with pytest.raises(DatasetNotFoundError, match=r"name the dataset .* holds 2 datasets"):
        imread(f)
    # str() of the error is the message itself, not a quoted KeyError repr
    with pytest.raises(KeyError) as info:
        imread(f"{f}:/nope")
    assert str(info.value).startswith(str(f))


def test_single_dataset_needs_no_name(tmp_path):
    imwrite(tmp_path / "one.h5", np.arange(6).reshape(2, 3), axes="YX")  # default dataset /data
    np.testing.assert_array_equal(imread(tmp_path / "one.h5"), np.arange(6).reshape(2, 3))


def test_lazy_read(tmp_path, rng):
    import dask.array as da

    data = rng.random((4, 32, 32))
    imwrite(f"{tmp_path}/a.h5:/x", data, axes="ZYX", chunks=(1, 32, 32))
    lazy = imread(f"{tmp_path}/a.h5:/x", lazy=True)
    assert isinstance(lazy, da.Array) and lazy.chunksize == (1, 32, 32)
    np.testing.assert_array_equal(lazy[1:3].compute(), data[1:3])


def test_reads_fiji_element_size_um(tmp_path):
    with h5py.File(tmp_path / "fiji.h5", "w") as h:
        ds = h.create_dataset("stack", data=np.zeros((2, 3, 4), np.uint16))
        ds.attrs["axes"] = "ZYX"
        ds.attrs["element_size_um"] = np.array([1.5, 0.2, 0.2])
    assert iminfo(f"{tmp_path}/fiji.h5:/stack")["pixel_size"] == pytest.approx({"Z": 1.5, "Y": 0.2, "X": 0.2})


def test_writes_fiji_element_size_um(tmp_path):
    imwrite(f"{tmp_path}/a.h5:/v", np.zeros((2, 3, 4), np.uint8), axes="ZYX", pixel_size=(3.0, 0.5, 0.25))
    with h5py.File(tmp_path / "a.h5", "r") as h:
        np.testing.assert_array_equal(h["v"].attrs["element_size_um"], [3.0, 0.5, 0.25])


def test_corrupt_file(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 50)
    with pytest.raises(CorruptFileError, match=r"bad\.h5: not a readable HDF5 file"):
        imread(f"{tmp_path}/bad.h5:/x")


def test_dask_input_is_stored_blockwise(tmp_path, rng):
    import dask.array as da

    data = rng.random((5, 20, 30)).astype(np.float32)
    imwrite(f"{tmp_path}/a.h5:/d", da.from_array(data, chunks=(2, 10, 10)), axes="ZYX", pixel_size=0.5)
    im = read_image(f"{tmp_path}/a.h5:/d")
    np.testing.assert_array_equal(im.data, data)
    assert im.pixel_size == {"Z": 0.5, "Y": 0.5, "X": 0.5}
