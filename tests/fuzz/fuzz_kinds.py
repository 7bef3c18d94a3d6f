"""Generators of bad inputs for the CLI fuzz suite: each ``make_*`` writes one file into a folder
and returns the path to pass on the command line. Small (a few KiB) so hundreds run in seconds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(19)


def _good2d():
    return RNG.random((16, 16)).astype(np.float32)


def _write(p, data, axes="YX", **kw):
    from mire.io import imwrite

    imwrite(p, data, axes=axes, **kw)
    return str(p)


def _ome(d, name="v.ome.zarr", shape=(4, 80, 80)):
    return _write(Path(d) / name, RNG.random(shape).astype(np.float32), axes="ZYX"[-len(shape):],
                  pixel_size=[1.0] * (len(shape) - 2) + [0.5, 0.5])


def _edit_ngff(path, fn):
    meta_file = Path(path) / "zarr.json"
    doc = json.loads(meta_file.read_text())
    fn(doc["attributes"]["ome"]["multiscales"])
    meta_file.write_text(json.dumps(doc))
    return path


def _tiff_patch(path, **tags):
    import tifffile

    with tifffile.TiffFile(path, mode="r+b") as tf:
        for k, v in tags.items():
            tf.pages[0].tags[k].overwrite(v)
    return path


# ---------------------------------------------------------------- files any image reader must refuse
def make_missing(d):
    return str(Path(d) / "nothing_here.tif")


def make_empty_tif(d):
    p = Path(d) / "empty.tif"
    p.write_bytes(b"")
    return str(p)


def make_garbage_tif(d):
    p = Path(d) / "garbage.tif"
    p.write_bytes(RNG.integers(0, 256, 512, dtype=np.uint8).tobytes())
    return str(p)


def make_text_as_tif(d):
    p = Path(d) / "notes.tif"
    p.write_text("this is not an image\n" * 10)
    return str(p)


def make_tiff_magic_only(d):
    p = Path(d) / "magic.tif"
    p.write_bytes(b"II*\x00\x08\x00\x00\x00")  # a header pointing at an IFD that is not there
    return str(p)


def make_truncated_tif(d):
    p = _write(Path(d) / "trunc.tif", _good2d(), compression=None)
    data = Path(p).read_bytes()
    Path(p).write_bytes(data[: len(data) // 2])
    return p


def make_tiff_bomb(d):
    import tifffile

    p = Path(d) / "huge.tif"
    tifffile.imwrite(p, np.zeros((64, 64), np.float32), compression="zlib", metadata=None)
    return str(_tiff_patch(p, ImageWidth=100000, ImageLength=100000, RowsPerStrip=100000))


def make_tiff_bomb_uint8(d):
    import tifffile

    p = Path(d) / "huge8.tif"
    tifffile.imwrite(p, np.zeros((64, 64), np.uint8), compression="zlib", metadata=None)
    return str(_tiff_patch(p, ImageWidth=60000, ImageLength=60000, RowsPerStrip=60000))


def make_tiff_bad_strip(d):
    import tifffile

    p = Path(d) / "badstrip.tif"
    tifffile.imwrite(p, RNG.random((32, 32)).astype(np.float32), compression="zlib", metadata=None)
    with tifffile.TiffFile(p) as tf:
        off, n = tf.pages[0].dataoffsets[0], tf.pages[0].databytecounts[0]
    raw = bytearray(Path(p).read_bytes())
    raw[off:off + n] = bytes(RNG.integers(0, 256, n, dtype=np.uint8))
    Path(p).write_bytes(bytes(raw))
    return str(p)


def make_complex64_tif(d):
    import tifffile

    p = Path(d) / "c.tif"
    tifffile.imwrite(p, (RNG.random((16, 16)) + 1j * RNG.random((16, 16))).astype(np.complex64))
    return str(p)


def make_complex128_tif(d):
    import tifffile

    p = Path(d) / "c128.tif"
    tifffile.imwrite(p, (RNG.random((4, 16, 16)) + 1j).astype(np.complex128))
    return str(p)


def make_complex_zarr(d):
    import zarr

    p = Path(d) / "c.zarr"
    a = zarr.create_array(str(p), shape=(16, 16), chunks=(16, 16), dtype="complex64")
    a[...] = (RNG.random((16, 16)) + 1j).astype(np.complex64)
    return str(p)


def make_complex_h5(d):
    import h5py

    p = Path(d) / "c.h5"
    with h5py.File(p, "w") as f:
        f["raw"] = (RNG.random((16, 16)) + 1j).astype(np.complex64)
    return f"{p}:/raw"


def make_garbage_png(d):
    p = Path(d) / "garbage.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    return str(p)


def make_truncated_png(d):
    from PIL import Image

    p = Path(d) / "trunc.png"
    Image.fromarray((RNG.random((32, 32)) * 255).astype(np.uint8)).save(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return str(p)


def make_zarr_empty_dir(d):
    p = Path(d) / "empty.zarr"
    p.mkdir()
    return str(p)


def make_zarr_bad_json(d):
    p = Path(d) / "badjson.zarr"
    p.mkdir()
    (p / "zarr.json").write_text("{not json")
    return str(p)


def make_zarr_json_list(d):
    p = Path(d) / "list.zarr"
    p.mkdir()
    (p / "zarr.json").write_text("[1, 2, 3]")
    return str(p)


def make_zarr_huge(d):
    import zarr

    p = Path(d) / "hugevol.zarr"
    zarr.create_array(str(p), shape=(100000,) * 3, chunks=(64, 64, 64), dtype="float32")
    return str(p)


def make_ngff_huge(d):
    import zarr

    p = Path(d) / "hugevol.ome.zarr"
    g = zarr.open_group(str(p), mode="w")
    g.create_array("0", shape=(100000,) * 3, chunks=(64, 64, 64), dtype="float32")
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "axes": [{"name": a, "type": "space"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}]}]}
    return str(p)


def make_zarr_corrupt_chunk(d):
    p = _ome(d, "bad.ome.zarr")
    chunk = sorted(f for f in Path(p).rglob("*") if f.is_file() and f.name != "zarr.json")[0]
    chunk.write_bytes(b"garbage!" * 10)
    return p


def make_zarr_truncated_chunk(d):
    p = _ome(d, "truncchunk.ome.zarr")
    chunk = sorted(f for f in Path(p).rglob("*") if f.is_file() and f.name != "zarr.json")[0]
    chunk.write_bytes(chunk.read_bytes()[:20])
    return p


def make_ngff_scale_len(d):
    def f(ms):
        ms[0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 1, 1, 1, 1]
    return _edit_ngff(_ome(d, "scale5.ome.zarr"), f)


def make_ngff_translation_len(d):
    def f(ms):
        ms[0]["datasets"][0]["coordinateTransformations"].append({"type": "translation", "translation": [0, 0]})
    return _edit_ngff(_ome(d, "trans2.ome.zarr"), f)


def make_ngff_scale_text(d):
    def f(ms):
        ms[0]["datasets"][0]["coordinateTransformations"][0]["scale"] = ["a", "b", "c"]
    return _edit_ngff(_ome(d, "scaletext.ome.zarr"), f)


def make_ngff_scale_negative(d):
    def f(ms):
        ms[0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, -0.5, 0.5]
    return _edit_ngff(_ome(d, "scaleneg.ome.zarr"), f)


def make_ngff_transform_not_list(d):
    def f(ms):
        ms[0]["datasets"][0]["coordinateTransformations"] = {"type": "scale", "scale": [1, 1, 1]}
    return _edit_ngff(_ome(d, "tnotlist.ome.zarr"), f)


def make_ngff_transform_type(d):
    def f(ms):
        ms[0]["datasets"][0]["coordinateTransformations"][0]["type"] = "affine"
    return _edit_ngff(_ome(d, "ttype.ome.zarr"), f)


def make_ngff_global_scale_len(d):
    def f(ms):
        ms[0]["coordinateTransformations"] = [{"type": "scale", "scale": [1, 1]}]
    return _edit_ngff(_ome(d, "gscale.ome.zarr"), f)


def make_ngff_axes_len(d):
    def f(ms):
        ms[0]["axes"] = ms[0]["axes"][:2]
    return _edit_ngff(_ome(d, "axes2.ome.zarr"), f)


def make_ngff_axes_repeated(d):
    def f(ms):
        ms[0]["axes"][0] = dict(ms[0]["axes"][1])
    return _edit_ngff(_ome(d, "axesrep.ome.zarr"), f)


def make_ngff_axes_not_list(d):
    def f(ms):
        ms[0]["axes"] = "zyx"
    return _edit_ngff(_ome(d, "axesstr.ome.zarr"), f)


def make_ngff_axis_no_name(d):
    def f(ms):
        ms[0]["axes"][1] = {"type": "space"}
    return _edit_ngff(_ome(d, "axisnoname.ome.zarr"), f)


def make_ngff_datasets_empty(d):
    def f(ms):
        ms[0]["datasets"] = []
    return _edit_ngff(_ome(d, "nodatasets.ome.zarr"), f)


def make_ngff_datasets_not_list(d):
    def f(ms):
        ms[0]["datasets"] = 7
    return _edit_ngff(_ome(d, "datasets7.ome.zarr"), f)


def make_ngff_dataset_missing_array(d):
    def f(ms):
        ms[0]["datasets"][0]["path"] = "does-not-exist"
    return _edit_ngff(_ome(d, "missingarr.ome.zarr"), f)


def make_ngff_dataset_path_int(d):
    def f(ms):
        ms[0]["datasets"][0]["path"] = 0
    return _edit_ngff(_ome(d, "pathint.ome.zarr"), f)


def make_ngff_multiscales_not_list(d):
    def f(ms):
        ms.clear()
    p = _edit_ngff(_ome(d, "msempty.ome.zarr"), f)
    return p


def make_ngff_multiscales_entry_str(d):
    def f(ms):
        ms[0] = "multiscale"
    return _edit_ngff(_ome(d, "msstr.ome.zarr"), f)


def make_ngff_level_grows(d):
    import zarr

    p = _ome(d, "grows.ome.zarr", shape=(2, 130, 130))
    g = zarr.open_group(p, mode="a")
    g.create_array("s1", shape=(2, 300, 300), chunks=(2, 64, 64), dtype="float32", overwrite=True)
    return p


def make_ngff_level_ndim(d):
    import zarr

    p = _ome(d, "ndim.ome.zarr", shape=(2, 130, 130))
    g = zarr.open_group(p, mode="a")
    g.create_array("s1", shape=(65, 65), chunks=(64, 64), dtype="float32", overwrite=True)
    return p


def make_ngff_no_multiscales(d):
    import zarr

    p = Path(d) / "plain.ome.zarr"
    g = zarr.open_group(str(p), mode="w")
    g.create_array("0", shape=(8, 8), chunks=(8, 8), dtype="float32")
    return str(p)


def make_zarr_string_dtype(d):
    import zarr

    p = Path(d) / "strings.zarr"
    a = zarr.create_array(str(p), shape=(4,), chunks=(4,), dtype=str)
    a[...] = np.array(["a", "b", "c", "d"])
    return str(p)


def make_h5_garbage(d):
    p = Path(d) / "garbage.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + RNG.integers(0, 256, 400, dtype=np.uint8).tobytes())
    return f"{p}:/raw"


def make_h5_missing_dataset(d):
    import h5py

    p = Path(d) / "m.h5"
    with h5py.File(p, "w") as f:
        f["other"] = np.zeros((4, 4), np.float32)
    return f"{p}:/raw"


def make_h5_huge(d):
    import h5py

    p = Path(d) / "huge.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("raw", shape=(100000,) * 3, chunks=(32, 32, 32), dtype="float32", compression="gzip")
    return f"{p}:/raw"


def make_h5_huge_contiguous(d):
    import h5py

    p = Path(d) / "hugec.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("raw", shape=(200000, 200000), dtype="float32")
    return f"{p}:/raw"


def make_h5_group(d):
    import h5py

    p = Path(d) / "g.h5"
    with h5py.File(p, "w") as f:
        f.create_group("raw")
    return f"{p}:/raw"


def make_empty_folder(d):
    p = Path(d) / "noslices"
    p.mkdir()
    (p / "readme.txt").write_text("no images here")
    return str(p)


def make_slices_mismatch(d):
    from PIL import Image

    p = Path(d) / "slices"
    p.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(p / "s1.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(p / "s2.png")
    return str(p)


def make_unknown_extension(d):
    p = Path(d) / "image.xyz"
    p.write_bytes(b"\x00" * 64)
    return str(p)


def make_dir_as_tif(d):
    p = Path(d) / "folder.tif"
    p.mkdir()
    return str(p)


def make_zarr_tiny_chunks(d):
    import zarr

    p = Path(d) / "tinychunks.zarr"
    zarr.create_array(str(p), shape=(4096, 4096), chunks=(1, 1), dtype="uint8")  # 16.7 M chunks
    return str(p)


def make_png_bomb(d):
    import struct
    import zlib

    from PIL import Image

    p = Path(d) / "bomb.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(p)
    raw = bytearray(p.read_bytes())
    # IHDR: bytes 16..24 are width, height; its CRC follows the 13 data bytes
    raw[16:24] = struct.pack(">II", 60000, 60000)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    p.write_bytes(bytes(raw))
    return str(p)


def make_h5_compound(d):
    import h5py

    p = Path(d) / "compound.h5"
    with h5py.File(p, "w") as f:
        f["raw"] = np.zeros((4, 4), dtype=[("a", "f4"), ("b", "i2")])
    return f"{p}:/raw"


def make_h5_scalar(d):
    import h5py

    p = Path(d) / "scalar.h5"
    with h5py.File(p, "w") as f:
        f["raw"] = 3.0
    return f"{p}:/raw"


def make_zarr_v2_bad_scale(d):
    import zarr

    p = Path(d) / "v2.ome.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    g.create_array("0", shape=(4, 80, 80), chunks=(4, 40, 40), dtype="float32")
    g.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space"} for a in "zyx"],
                               "datasets": [{"path": "0", "coordinateTransformations": [
                                   {"type": "scale", "scale": [1, 1]}]}]}]
    return str(p)


#: bad for every command that reads an image
GATE_KINDS = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("make_")}


# ---------------------------------------------------------------- content bad for most commands
def content_nan(d):
    a = _good2d()
    a[3, 4] = np.nan
    return _write(Path(d) / "nan.tif", a)


def content_inf(d):
    a = _good2d()
    a[0, 0] = np.inf
    return _write(Path(d) / "inf.tif", a)


def content_1d(d):
    return _write(Path(d) / "line.h5:/raw", RNG.random(32).astype(np.float32), axes=None)


def content_6d(d):
    import tifffile

    p = Path(d) / "six.tif"
    tifffile.imwrite(p, np.zeros((2, 2, 2, 2, 4, 4), np.float32))
    return str(p)


def content_bool_zarr(d):
    import zarr

    p = Path(d) / "mask.zarr"
    a = zarr.create_array(str(p), shape=(16, 16), chunks=(16, 16), dtype=bool)
    a[...] = RNG.random((16, 16)) > 0.5
    return str(p)


def content_1px(d):
    return _write(Path(d) / "one.tif", np.ones((1, 1), np.float32))


def content_channels(d):
    return _write(Path(d) / "czyx.tif", RNG.random((2, 3, 16, 16)).astype(np.float32), axes="CZYX")


CONTENT_KINDS = {name[8:]: fn for name, fn in sorted(globals().items()) if name.startswith("content_")}


# ---------------------------------------------------------------- valid companions
def good_image(d, name="good.tif"):
    return _write(Path(d) / name, _good2d())


def good_labels(d, name="labels.tif", shape=(16, 16)):
    lab = np.zeros(shape, np.uint16)
    lab[..., : shape[-1] // 2] = 1
    lab[..., shape[-1] // 2:] = 2
    return _write(Path(d) / name, lab, axes="ZYX"[-len(shape):])


def good_log(d):
    p = Path(d) / "log.json"
    p.write_text(json.dumps({"format": "mire-edit-log", "version": 1, "edits": [{"op": "merge", "ids": [1, 2]}]}))
    return str(p)


def good_swc(d, name="gold.swc"):
    p = Path(d) / name
    p.write_text("1 1 5 5 0 1 -1\n2 1 6 5 0 1 1\n3 1 7 6 0 1 2\n")
    return str(p)


# ---------------------------------------------------------------- edit logs (proofread)
def _log(d, text, name="log.json"):
    p = Path(d) / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return str(p)


def _doc(edits, **kw):
    return json.dumps({"format": "mire-edit-log", "version": 1, **kw, "edits": edits})


LOG_KINDS = {
    "entries_strings": lambda d: _log(d, _doc(["merge", "split"])),
    "entries_ints": lambda d: _log(d, _doc([1, 2, 3])),
    "entries_null": lambda d: _log(d, _doc([None])),
    "entries_lists": lambda d: _log(d, _doc([[1, 2]])),
    "deep_100000": lambda d: _log(d, "[" * 100000 + "]" * 100000),
    "deep_in_entry": lambda d: _log(d, '{"format": "mire-edit-log", "edits": [{"op": "merge", "ids": '
                                        + "[" * 5000 + "]" * 5000 + "}]}"),
    "edits_int": lambda d: _log(d, _doc(5)),
    "edits_string": lambda d: _log(d, _doc("merge 1 2")),
    "edits_object": lambda d: _log(d, _doc({"op": "merge"})),
    "op_unknown": lambda d: _log(d, _doc([{"op": "paint", "ids": [1, 2]}])),
    "op_missing": lambda d: _log(d, _doc([{"ids": [1, 2]}])),
    "op_int": lambda d: _log(d, _doc([{"op": 1}])),
    "merge_no_ids": lambda d: _log(d, _doc([{"op": "merge"}])),
    "merge_ids_str": lambda d: _log(d, _doc([{"op": "merge", "ids": "1,2"}])),
    "merge_ids_float": lambda d: _log(d, _doc([{"op": "merge", "ids": [1.5, 2]}])),
    "merge_ids_negative": lambda d: _log(d, _doc([{"op": "merge", "ids": [-1, 2]}])),
    "merge_ids_bool": lambda d: _log(d, _doc([{"op": "merge", "ids": [True, 2]}])),
    "merge_ids_2e70": lambda d: _log(d, _doc([{"op": "merge", "ids": [2**70, 2]}])),
    "merge_one_id": lambda d: _log(d, _doc([{"op": "merge", "ids": [1]}])),
    "merge_unknown_id": lambda d: _log(d, _doc([{"op": "merge", "ids": [1, 77]}])),
    "split_no_seeds": lambda d: _log(d, _doc([{"op": "split", "id": 1}])),
    "split_seed_dims": lambda d: _log(d, _doc([{"op": "split", "id": 1, "seeds": [[1, 2, 3], [1, 2, 4]]}])),
    "split_seed_outside": lambda d: _log(d, _doc([{"op": "split", "id": 1, "seeds": [[0, 0], [999, 999]]}])),
    "split_seed_strings": lambda d: _log(d, _doc([{"op": "split", "id": 1, "seeds": ["a", "b"]}])),
    "split_new_ids_used": lambda d: _log(d, _doc([{"op": "split", "id": 1, "seeds": [[0, 0], [15, 1]],
                                                    "new_ids": [2]}])),
    "shape_mismatch": lambda d: _log(d, _doc([], shape=[3, 3, 3])),
    "shape_text": lambda d: _log(d, _doc([], shape="16x16")),
    "version_future": lambda d: _log(d, json.dumps({"format": "mire-edit-log", "version": 99, "edits": []})),
    "format_wrong": lambda d: _log(d, json.dumps({"format": "other", "edits": []})),
    "top_string": lambda d: _log(d, '"edits"'),
    "top_null": lambda d: _log(d, "null"),
    "not_json": lambda d: _log(d, "{edits: [merge]}"),
    "empty_file": lambda d: _log(d, ""),
    "nan_id": lambda d: _log(d, '{"format": "mire-edit-log", "edits": [{"op": "merge", "ids": [NaN, 2]}]}'),
    "not_utf8": lambda d: _log(d, b"\xff\xfe\x00\x01garbage"),
    "missing_log": lambda d: str(Path(d) / "no-log.json"),
}


# ---------------------------------------------------------------- SWC files (evaluate-trace)
def _swc(d, text, name="test.swc"):
    p = Path(d) / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return str(p)


SWC_KINDS = {
    "cycle": lambda d: _swc(d, "1 1 0 0 0 1 2\n2 1 1 0 0 1 3\n3 1 2 0 0 1 1\n4 1 3 0 0 1 -1\n"),
    "self_parent": lambda d: _swc(d, "1 1 0 0 0 1 1\n"),
    "cycle_no_root": lambda d: _swc(d, "1 1 0 0 0 1 2\n2 1 1 0 0 1 1\n"),
    "missing_parent": lambda d: _swc(d, "1 1 0 0 0 1 -1\n2 1 1 0 0 1 9\n"),
    "duplicate_id": lambda d: _swc(d, "1 1 0 0 0 1 -1\n1 1 1 0 0 1 -1\n"),
    "six_columns": lambda d: _swc(d, "1 1 0 0 0 -1\n"),
    "not_numbers": lambda d: _swc(d, "a b c d e f g\n"),
    "nan_coordinate": lambda d: _swc(d, "1 1 nan 0 0 1 -1\n"),
    "float_id": lambda d: _swc(d, "1.5 1 0 0 0 1 -1\n"),
    "binary": lambda d: _swc(d, b"\xff\xfe\x00garbage\x00"),
    "missing_swc": lambda d: str(Path(d) / "no.swc"),
}
