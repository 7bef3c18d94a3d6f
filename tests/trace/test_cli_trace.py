"""``mire trace`` and ``mire evaluate-trace``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mire.cli import app
from mire.io import imwrite, read_swc, write_swc
from mire.trace import trace


@pytest.fixture
def y_stack(tmp_path, synth):
    img, _, _ = synth.render_tubes(synth.Y_SHAPE_3D, synth.Y_BRANCHES_3D)
    path = tmp_path / "y.tif"
    imwrite(path, (img * 200).astype(np.uint8), axes="ZYX")
    return path, (img * 200).astype(np.uint8)


def test_trace_cli_writes_swc_equal_to_the_api(tmp_path, y_stack):
    path, img = y_stack
    out = tmp_path / "y.swc"
    res = CliRunner().invoke(app, ["trace", str(path), str(out), "--spacing", "1,1,1"])
    assert res.exit_code == 0, res.output
    got = read_swc(out)
    expected = trace(img, spacing=(1, 1, 1))
    # the SWC file round-trips the array exactly (ids, parents, float coordinates)
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_trace_cli_seed_and_evaluate(tmp_path, y_stack, synth):
    path, img = y_stack
    out = tmp_path / "seeded.swc"
    res = CliRunner().invoke(app, ["trace", str(path), str(out), "--seed", "4,32,8"])
    assert res.exit_code == 0, res.output
    swc = read_swc(out)
    root = swc[swc[:, 6] == -1]
    assert len(root) == 1 and abs(root[0, 2] - 4) <= 2
    res = CliRunner().invoke(app, ["evaluate-trace", str(path), str(out), str(out), "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert r["precision"] == 1.0 and r["recall"] == 1.0 and r["node_recall"] == 1.0
    assert r["distance_precision"] == 1.0 and r["distance_recall"] == 1.0 and r["distance_f1"] == 1.0


def test_cli_errors_are_one_line_exit_2(tmp_path, y_stack):
    path, _ = y_stack
    runner = CliRunner()
    res = runner.invoke(app, ["trace", str(tmp_path / "missing.tif"), str(tmp_path / "o.swc")])
    assert res.exit_code == 2 and "error" in res.output
    res = runner.invoke(app, ["trace", str(path), str(tmp_path / "o.txt")])
    assert res.exit_code == 2 and ".swc" in res.output
    res = runner.invoke(app, ["trace", str(path), str(tmp_path / "o.swc"), "--spacing", "1,a,1"])
    assert res.exit_code == 2 and "--spacing" in res.output
    bad = tmp_path / "bad.swc"
    bad.write_text("1 2 0 0 0 1 -1\n2 2 1 0 0 1 9\n")
    res = runner.invoke(app, ["evaluate-trace", str(path), str(bad), str(bad)])
    assert res.exit_code == 2 and "parent" in res.output
    good = tmp_path / "good.swc"
    good.write_text("1 2 4 32 8 1 -1\n2 2 20 32 8 1 1\n")
    res = runner.invoke(app, ["evaluate-trace", str(path), str(good), str(good), "--snap-distance", "50"])
    assert res.exit_code == 2 and "snap_distance" in res.output
    assert not (tmp_path / "o.swc").exists()


def test_trace_cli_single_tree_writes_one_root(tmp_path, synth):
    # two neurites too far apart to bridge: two roots by default, one (the longer) with --single-tree
    img, _, _ = synth.render_tubes((9, 48, 64), [[(4, 10, 4), (4, 10, 60)], [(4, 38, 4), (4, 38, 30)]])
    path = tmp_path / "two.tif"
    imwrite(path, (img * 200).astype(np.uint8), axes="ZYX")
    runner = CliRunner()
    res = runner.invoke(app, ["trace", str(path), str(tmp_path / "all.swc")])
    assert res.exit_code == 0, res.output
    assert int((read_swc(tmp_path / "all.swc")[:, 6] == -1).sum()) == 2
    res = runner.invoke(app, ["trace", str(path), str(tmp_path / "one.swc"), "--single-tree"])
    assert res.exit_code == 0, res.output
    one = read_swc(tmp_path / "one.swc")
    assert int((one[:, 6] == -1).sum()) == 1 and np.abs(one[:, 3] - 10).max() <= 1.5
    assert np.array_equal(one, trace((img * 200).astype(np.uint8), single_tree=True))
