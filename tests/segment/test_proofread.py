"""Proofreading: merge / split / undo / redo round trips and exact edit-log replay."""

import json

import numpy as np
import pytest

from mire.data import em_cells
from mire.segment import Proofreader, load_log, merge, replay, save_log, split


@pytest.fixture
def cells():
    _, lab = em_cells((8, 64, 64), seed=2)
    return lab.astype(np.uint32), (lab == 0).astype(np.float32)


def test_merge_split_undo_redo_round_trip(cells):
    seg, membrane = cells
    original = seg.copy()
    pr = Proofreader(seg, boundary=membrane)
    a, b = 3, 5
    assert pr.merge([b, a]) == 3
    assert not np.any(pr.seg == 5) and np.sum(pr.seg == 3) == np.sum(np.isin(original, [3, 5]))
    after_merge = pr.seg.copy()
    # split the merged segment again with one seed in each original cell
    pa = tuple(np.argwhere(original == 3)[0])
    pb = tuple(np.argwhere(original == 5)[0])
    ids = pr.split(3, [pa, pb])
    assert ids == [3, int(original.max()) + 1]
    # the membrane-guided watershed puts every voxel back in its own cell (cells never touch)
    np.testing.assert_array_equal(pr.seg == ids[1], original == 5)
    np.testing.assert_array_equal(pr.seg == 3, original == 3)
    after_split = pr.seg.copy()
    assert pr.undo()["op"] == "split"
    np.testing.assert_array_equal(pr.seg, after_merge)
    assert pr.undo()["op"] == "merge"
    np.testing.assert_array_equal(pr.seg, original)
    assert pr.undo() is None
    assert pr.redo()["op"] == "merge" and pr.redo()["op"] == "split"
    np.testing.assert_array_equal(pr.seg, after_split)
    assert pr.redo() is None
    np.testing.assert_array_equal(seg, original)  # the input was copied, never edited


def test_undo_stores_only_changed_voxels(cells):
    seg, _ = cells
    pr = Proofreader(seg)
    pr.merge([1, 2])
    _, flat, old, new, *_ = pr._undo[-1]
    assert len(flat) == np.sum(seg == 2) and np.all(old == 2) and np.all(new == 1)


def test_new_edit_clears_redo_and_ids_stay_fresh(cells):
    seg, membrane = cells
    pr = Proofreader(seg, boundary=membrane)
    pts = [tuple(p) for p in np.argwhere(seg == 4)[[0, -1]]]
    first = pr.split(4, pts)[1]
    pr.undo()
    pr.merge([1, 2])
    assert pr.redo() is None
    second = pr.split(4, pts)[1]
    assert second == first + 1  # an undone id is not reused: logs stay unambiguous


def test_log_replay_reproduces_exactly(cells, tmp_path):
    seg, membrane = cells
    rng = np.random.default_rng(0)
    pr = Proofreader(seg, boundary=membrane)
    for step in range(12):
        ids = np.unique(pr.seg)
        ids = ids[ids > 0]
        if step % 3 == 2:
            pr.undo()
        elif step % 2:
            pr.merge(rng.choice(ids, size=2, replace=False).tolist())
        else:
            target = int(ids[np.argmax([np.sum(pr.seg == i) for i in ids])])
            where = np.argwhere(pr.seg == target)
            pr.split(target, [tuple(p) for p in where[rng.choice(len(where), 3, replace=False)]])
    path = pr.save_log(tmp_path / "edits.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "mire-edit-log" and doc["shape"] == list(seg.shape)
    assert len(doc["edits"]) == len(pr.log) > 3
    np.testing.assert_array_equal(replay(seg, path, boundary=membrane), pr.seg)
    np.testing.assert_array_equal(replay(seg, load_log(path)["edits"], boundary=membrane), pr.seg)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temporary behind


def test_functional_api_and_geodesic_split_without_boundary():
    seg = np.array([[1, 1, 2, 2, 3]])
    np.testing.assert_array_equal(merge(seg, [3, 2]), [[1, 1, 2, 2, 2]])
    seg = np.ones((1, 7), int)
    np.testing.assert_array_equal(split(seg, 1, [(0, 0), (0, 6)]), [[1, 1, 1, 1, 2, 2, 2]])


def test_proofread_errors(cells, tmp_path):
    seg, membrane = cells
    pr = Proofreader(seg, boundary=membrane)
    with pytest.raises(ValueError, match="do not exist"):
        pr.merge([1, 9999])
    with pytest.raises(ValueError, match="two different"):
        pr.merge([1, 1])
    p_other = tuple(np.argwhere(seg == 2)[0])
    p_in = tuple(np.argwhere(seg == 1)[0])
    with pytest.raises(ValueError, match="not in segment 1"):
        pr.split(1, [p_in, p_other])
    with pytest.raises(ValueError, match="outside the volume"):
        pr.split(1, [p_in, (0, 0, 999)])
    with pytest.raises(ValueError, match="3D voxel coordinates"):
        pr.split(1, [(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="does not match"):
        Proofreader(seg, boundary=membrane[:-1])
    pr.merge([1, 2])
    with pytest.raises(ValueError, match="do not exist"):
        pr.merge([2, 3])   # 2 was merged away
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_log(bad)
    with pytest.raises(FileNotFoundError):
        load_log(tmp_path / "missing.json")
    save_log(tmp_path / "log.json", pr.log, shape=seg.shape)
    with pytest.raises(ValueError, match="recorded on shape"):
        replay(seg[:-1], load_log(tmp_path / "log.json"))
    with pytest.raises(ValueError, match=r"edits\[0\]\.op: must be one of 'merge', 'split'"):
        replay(seg, [{"op": "paint"}])
