"""SWC reading / writing: exact round-trip, validation errors with line numbers."""

from __future__ import annotations

import numpy as np
import pytest

from mire.io import SWCError, read_swc, write_swc


def test_op1_round_trip_is_exact(tmp_path, shared_data):
    path = shared_data("diadem_op_neurons", "OP_1.swc")
    swc = read_swc(path)
    assert swc.shape == (1496, 7) and swc.dtype == np.float64  # README: 1496 nodes
    # README: gold-standard root of OP_1 at (30.979, 429.04, 0), all nodes type 2 (axon), one root
    root = swc[swc[:, 6] == -1]
    assert root.shape[0] == 1 and root[0, 2:5].tolist() == [30.979, 429.04, 0.0]
    assert set(swc[:, 1]) == {2.0}
    write_swc(tmp_path / "out.swc", swc, header="copy of OP_1")
    again = read_swc(tmp_path / "out.swc")
    assert np.array_equal(again, swc)  # bit-exact, not approx
    lines = (tmp_path / "out.swc").read_text().splitlines()
    assert lines[0] == "# copy of OP_1"
    assert lines[1] == "1 2 30.979 429.04 0.0 0.303 -1"  # ints as ints


def test_random_floats_round_trip_exactly(tmp_path, rng):
    n = 200
    swc = np.column_stack([np.arange(1, n + 1), rng.integers(0, 8, n), rng.normal(size=(n, 3)) * 1e3,
                           rng.random(n) / 3, np.r_[-1, np.arange(1, n)]])
    write_swc(tmp_path / "r.swc", swc)
    assert np.array_equal(read_swc(tmp_path / "r.swc"), swc)


def test_comments_blank_lines_and_tabs(tmp_path):
    (tmp_path / "c.swc").write_text("# header\n\n1\t1 0 0 0 1 -1   # root\n  # indented comment\n2 3 1 2 3 0.5 1\n")
    swc = read_swc(tmp_path / "c.swc")
    assert swc.tolist() == [[1, 1, 0, 0, 0, 1, -1], [2, 3, 1, 2, 3, 0.5, 1]]


@pytest.mark.parametrize("text, message", [
    ("1 1 0 0 0 1 -1\n2 1 0 0 0 1\n", r"line 2: expected 7 columns .* got 6"),
    ("# c\n1 1 0 0 0 1 -1\n2 1 0 x 0 1 1\n", r"line 3: not a number"),
    ("1 1 0 0 0 1 -1\n2 1 0 0 0 1 5\n", r"line 2: parent 5 of node 2 is not a node id"),
    ("1 1 0 0 0 1 -1\n1 1 0 0 0 1 -1\n", r"line 2: node id 1 appears more than once"),
    ("1 1.5 0 0 0 1 -1\n", r"line 1: type must be an integer"),
])
def test_malformed_files_name_the_line(tmp_path, text, message):
    (tmp_path / "bad.swc").write_text(text)
    with pytest.raises(SWCError, match=r"bad\.swc, " + message):
        read_swc(tmp_path / "bad.swc")


def test_write_validates(tmp_path):
    with pytest.raises(SWCError, match=r"shape \(N, 7\)"):
        write_swc(tmp_path / "a.swc", np.zeros((3, 6)))
    with pytest.raises(SWCError, match="parent 9 of node 1"):
        write_swc(tmp_path / "a.swc", [[1, 1, 0, 0, 0, 1, 9]])
    assert not list(tmp_path.iterdir())


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.swc: no such SWC file"):
        read_swc(tmp_path / "nope.swc")
