"""The exact cases of issue #19's table, each with the message it must now give, plus the gate's
own rules (what it refuses, and the legitimate files it must keep accepting)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mire.cli import app

sys.path.insert(0, str(Path(__file__).parent))
import fuzz_kinds as K  # noqa: E402

runner = CliRunner()


def _fails(argv, *needles):
    r = runner.invoke(app, [str(a) for a in argv])
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def test_tiff_bomb_restore(tmp_path):
    p = K.make_tiff_bomb(tmp_path)
    _fails(["restore", p, tmp_path / "out.tif", "--method", "wiener", "--psf", "gaussian:1.0"],
           "huge.tif", "37.3 GiB", "stores only 38 B", "1032:1", "decompression bomb")
    assert not (tmp_path / "out.tif").exists()


def test_huge_zarr_restore_and_info_refused_at_once(tmp_path):
    p = K.make_zarr_huge(tmp_path)
    for argv in (["restore", p, tmp_path / "out.tif", "--method", "wiener"], ["info", p]):
        _fails(argv, "hugevol.zarr", "3.6 PiB", "(100000, 100000, 100000)")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["hugevol.zarr"]


def test_corrupt_chunk_names_file_and_chunk(tmp_path):
    p = K.make_zarr_corrupt_chunk(tmp_path)
    _fails(["restore", p, tmp_path / "out.tif", "--method", "wiener"], "bad.ome.zarr", "chunk 0/0/0", "'s0'")
    _fails(["info", p], "bad.ome.zarr", "chunk 0/0/0")


def test_corrupt_hdf5_chunk_names_file_dataset_and_chunk(tmp_path):
    import h5py

    p = tmp_path / "bad.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("raw", data=np.random.default_rng(0).random((8, 64, 64)).astype(np.float32),
                         chunks=(4, 32, 32), compression="gzip")
    with h5py.File(p, "r") as f:
        info = f["raw"].id.get_chunk_info(3)  # storage order: chunk (0, 1, 1) of the 2 x 2 x 2 grid
    raw = bytearray(p.read_bytes())
    raw[info.byte_offset + 10:info.byte_offset + 200] = bytes(190)
    p.write_bytes(bytes(raw))
    src = f"{p}:/raw"
    for argv in (["restore", src, tmp_path / "out.tif", "--method", "wiener"], ["info", src],
                 ["restore", src, tmp_path / "out.ome.zarr", "--method", "wiener", "--block-size", "4,32,32"]):
        _fails(argv, "bad.h5", "chunk 0/1/1", "'/raw'")
    from mire.io import CorruptFileError, imread

    with pytest.raises(CorruptFileError, match="chunk 0/1/1"):
        imread(src)


def test_scale_with_five_entries_names_the_field(tmp_path):
    p = K.make_ngff_scale_len(tmp_path)
    _fails(["restore", p, tmp_path / "out.tif", "--method", "wiener"], "scale5.ome.zarr",
           "multiscales[0].datasets[0].coordinateTransformations[0].scale", "5 entries", "3D")


@pytest.mark.parametrize("edits,needle", [
    (["merge"], "edits[0]: expected an object, got str"),
    ([1], "edits[0]: expected an object, got int"),
    ([{"op": "merge", "ids": [1, 2]}, None], "edits[1]: expected an object, got null"),
])
def test_edit_log_bad_entries(tmp_path, edits, needle):
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"format": "mire-edit-log", "version": 1, "edits": edits}))
    _fails(["proofread", K.good_labels(tmp_path), log, tmp_path / "out.tif"], "log.json", needle)
    assert not (tmp_path / "out.tif").exists()


def test_edit_log_nested_deep_and_not_a_list(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    seg = K.good_labels(tmp_path)
    _fails(["proofread", seg, deep, tmp_path / "out.tif"], "deep.json", "nested 100000 levels", "32")
    notlist = tmp_path / "int.json"
    notlist.write_text(json.dumps({"format": "mire-edit-log", "edits": 3}))
    _fails(["proofread", seg, notlist, tmp_path / "out.tif"], "int.json", "edits: expected an array, got int")


def test_uint64_ids_near_2_62(tmp_path):
    import tifffile

    from mire.io import imread

    seg = np.zeros((4, 16, 16), np.uint64)
    seg[:, :, :8], seg[:, :, 8:], seg[0, 0, 0] = 2**62 + 5, 2**62 + 9, 2**62 + 100
    tifffile.imwrite(tmp_path / "huge_ids.tif", seg)
    log = tmp_path / "log.json"
    log.write_text(json.dumps({"format": "mire-edit-log", "edits": [{"op": "merge", "ids": [2**62 + 5, 2**62 + 9]}]}))
    # OME-Zarr keeps the ids exactly
    r = runner.invoke(app, ["proofread", str(tmp_path / "huge_ids.tif"), str(log), str(tmp_path / "o.ome.zarr")])
    assert r.exit_code == 0, r.output
    out = imread(tmp_path / "o.ome.zarr")
    assert out.dtype == np.uint64 and sorted(np.unique(out).tolist()) == [2**62 + 5, 2**62 + 100]
    assert int(out[0, 0, 0]) == 2**62 + 100 and int(out[1, 5, 12]) == 2**62 + 5
    # TIFF: the ids do not fit 32 bits, so they are relabelled 1..N in order
    r = runner.invoke(app, ["proofread", str(tmp_path / "huge_ids.tif"), str(log), str(tmp_path / "o.tif")])
    assert r.exit_code == 0, r.output
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "relabelled 1..N" in warned[0] and ".ome.zarr" in warned[0]
    tif = imread(tmp_path / "o.tif")
    assert tif.dtype == np.uint32 and int(tif[1, 5, 12]) == 1 and int(tif[0, 0, 0]) == 2


def test_tiff_int64_dtype_rules(tmp_path):
    from mire.io import imread, imwrite

    small = np.arange(12, dtype=np.int64).reshape(3, 4) - 3
    imwrite(tmp_path / "s.tif", small, axes="YX")
    back = imread(tmp_path / "s.tif")
    assert back.dtype == np.int32 and np.array_equal(back, small)  # lossless cast
    big = np.array([[0, 2**40]], np.int64)
    with pytest.raises(ValueError, match=r"32-bit integers.*0\.\.1099511627776.*\.ome\.zarr"):
        imwrite(tmp_path / "b.tif", big, axes="YX")
    imwrite(tmp_path / "b.tif", big, axes="YX", labels=True)
    assert imread(tmp_path / "b.tif").tolist() == [[0, 1]]
    imwrite(tmp_path / "b.ome.zarr", big, axes="YX")
    assert imread(tmp_path / "b.ome.zarr").tolist() == [[0, 2**40]]
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("command", [
    ["restore", "{x}", "{d}/out.tif"], ["segment", "{x}", "{d}/out.tif", "--boundaries"],
    ["simulate", "{x}", "{d}/out.tif"], ["info", "{x}"], ["superres", "{x}", "{d}/out.tif"],
    ["trace", "{x}", "{d}/out.swc"]])
def test_complex_image_refused_everywhere(tmp_path, command):
    p = K.make_complex64_tif(tmp_path)
    _fails([a.format(x=p, d=tmp_path) for a in command], "c.tif", "complex", "np.abs(x)", "x.real")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.tif"]


def test_complex_and_bool_arrays_in_the_api():
    from mire.restore import wiener

    z = np.ones((8, 8), np.complex64)
    with pytest.raises(TypeError, match=r"complex.*np\.abs\(x\)"):
        wiener(z, "gaussian:1.0")
    with pytest.raises(TypeError, match=r"bool mask.*astype\(np\.float32\)"):
        wiener(np.ones((8, 8), bool), "gaussian:1.0")


def test_swc_cycle_refused(tmp_path):
    from mire.io import SWCError, read_swc
    from mire.trace import match_nodes

    cyc = K.SWC_KINDS["cycle"](tmp_path)
    gold = K.good_swc(tmp_path)
    _fails(["evaluate-trace", K.good_image(tmp_path), cyc, gold], "test.swc", "line 1", "1 -> 2 -> 3", "cycle")
    with pytest.raises(SWCError, match=r"nodes 1 -> 2 -> 3 form a cycle"):
        read_swc(cyc)
    loop = np.array([[1, 1, 0, 0, 0, 1, 2], [2, 1, 1, 0, 0, 1, 1]], float)
    with pytest.raises(ValueError, match="cycle"):
        match_nodes(loop, loop)


def test_swc_forest_reported_or_refused(tmp_path):
    from mire.io import SWCError, read_swc

    forest = tmp_path / "forest.swc"
    forest.write_text("1 1 5 5 0 1 -1\n2 1 6 5 0 1 1\n3 1 5 5 0 1 -1\n")
    with pytest.raises(SWCError, match=r"one tree expected.*2 roots \(line 1, line 3\); 2 roots share a position"):
        read_swc(forest, single_tree=True)
    assert read_swc(forest).shape == (3, 7)  # a forest is a valid SWC
    img, gold = K.good_image(tmp_path), K.good_swc(tmp_path)
    r = runner.invoke(app, ["evaluate-trace", img, gold, str(forest), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["gold_trees"] == 2 and res["test_trees"] == 1
    assert "holds 2 trees" in r.stderr
    _fails(["evaluate-trace", img, gold, forest, "--single-tree"], "one tree expected")


# ------------------------------------------------------------------ the gate's rules
def test_gate_accepts_legitimate_compressible_and_sparse_files(tmp_path):
    import tifffile
    import zarr

    from mire.io import iminfo, imread

    # 64 MiB of zeros deflates ~1000:1: within deflate's bound, so not a bomb
    tifffile.imwrite(tmp_path / "zeros.tif", np.zeros((8192, 8192), np.uint8), compression="zlib")
    assert iminfo(tmp_path / "zeros.tif")["shape"] == (8192, 8192)
    # a sparse zarr (most chunks never written) of 256 MiB with one chunk stored is fine
    a = zarr.create_array(str(tmp_path / "sparse.zarr"), shape=(64, 1024, 1024), chunks=(16, 128, 128),
                          dtype="float32")
    a[:16, :128, :128] = np.random.default_rng(0).random((16, 128, 128), dtype=np.float32)
    assert imread(tmp_path / "sparse.zarr", lazy=True).shape == (64, 1024, 1024)


def test_gate_memory_limit_names_block_size(tmp_path, monkeypatch):
    from mire.io import imread

    p = K.good_image(tmp_path)
    monkeypatch.setenv("MIRE_MEMORY_LIMIT", "500")
    with pytest.raises(ValueError, match=r"good\.tif: reading it whole needs 1\.0 KiB of memory but only 500 B"):
        imread(p)
    assert imread(p, lazy=True).shape == (16, 16)  # a lazy read holds no pixels
    monkeypatch.setenv("MIRE_MEMORY_LIMIT", "5000")  # enough to read, not to restore in memory
    line = _fails(["restore", p, tmp_path / "o.tif", "--method", "wiener"], "restoring it in memory",
                  "--block-size")
    assert "16.0 KiB" in line  # 256 voxels x 8 bytes x 8 working copies
    assert not (tmp_path / "o.tif").exists()


def test_schema_validator_unit():
    from mire._schema import SchemaError, json_depth, validate

    schema = {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "array", "items": {"type": "integer", "minimum": 1}}}}
    validate({"a": [1, 2.0]}, schema)
    for doc, msg in [({}, "missing the 'a' entry"), ({"a": [1, 0]}, "a[1]: must be >= 1, got 0"),
                     ({"a": [True]}, "a[0]: expected an integer, got bool"), ([], "expected an object, got an array")]:
        with pytest.raises(SchemaError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            validate(doc, schema)
    assert json_depth('{"a": [[1], "[[[["]}') == 3
