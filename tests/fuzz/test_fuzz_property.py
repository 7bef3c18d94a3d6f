"""Property-based fuzzing (hypothesis): random bytes as image / SWC files and random JSON as edit logs.

Whatever the content, the command either succeeds or fails with exit code 2 and one line on
stderr, never a traceback, and a failure writes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mire.cli import app  # noqa: E402
from mire.io import imwrite  # noqa: E402

runner = CliRunner()
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["op", "ids", "id", "seeds", "new_ids", "into", "edits", "format", "shape", "x"]),
        children, max_size=4),
    max_leaves=12)


def _clean_failure_or_success(result, before: set, folder: Path):
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        return
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert set(os.listdir(folder)) == before


@pytest.fixture(scope="module")
def labels():
    d = Path(tempfile.mkdtemp(prefix="mire-fuzz-"))
    lab = np.zeros((8, 8), np.uint16)
    lab[:, :4], lab[:, 4:] = 1, 2
    imwrite(d / "seg.tif", lab, axes="YX")
    imwrite(d / "img.tif", np.random.default_rng(0).random((8, 8)).astype(np.float32), axes="YX")
    (d / "gold.swc").write_text("1 1 2 2 0 1 -1\n2 1 3 2 0 1 1\n")
    return d


@SETTINGS
@given(edits=json_values, wrap=st.booleans())
def test_random_edit_logs(labels, edits, wrap):
    d = Path(tempfile.mkdtemp(dir=labels))
    doc = {"format": "mire-edit-log", "version": 1, "edits": edits} if wrap else edits
    (d / "log.json").write_text(json.dumps(doc))
    before = set(os.listdir(d))
    r = runner.invoke(app, ["proofread", str(labels / "seg.tif"), str(d / "log.json"), str(d / "out.tif")])
    _clean_failure_or_success(r, before, d)


@SETTINGS
@given(data=st.binary(min_size=0, max_size=600), suffix=st.sampled_from([".tif", ".png", ".h5"]))
def test_random_bytes_as_an_image(labels, data, suffix):
    d = Path(tempfile.mkdtemp(dir=labels))
    p = d / f"x{suffix}"
    p.write_bytes((b"II*\x00" if suffix == ".tif" else b"") + data)
    arg = f"{p}:/raw" if suffix == ".h5" else str(p)
    before = set(os.listdir(d))
    for argv in (["info", arg], ["restore", arg, str(d / "o.tif"), "--method", "wiener"]):
        r = runner.invoke(app, argv)
        assert r.exit_code == 2, (argv, r.output)
        _clean_failure_or_success(r, before, d)


@SETTINGS
@given(rows=st.lists(st.lists(st.integers(-3, 6), min_size=7, max_size=7), min_size=1, max_size=6))
def test_random_swc(labels, rows):
    d = Path(tempfile.mkdtemp(dir=labels))
    (d / "t.swc").write_text("\n".join(" ".join(map(str, r)) for r in rows) + "\n")
    before = set(os.listdir(d))
    r = runner.invoke(app, ["evaluate-trace", str(labels / "img.tif"), str(d / "t.swc"), str(labels / "gold.swc")])
    _clean_failure_or_success(r, before, d)
