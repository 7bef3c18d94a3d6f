"""The distance score of a trace (distance_score): hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mire.trace import distance_score


def _chain(points_xyz, first_id=1, root_parent=-1):
    """SWC chain through (x, y, z) points."""
    rows = []
    for k, (x, y, z) in enumerate(points_xyz):
        rows.append((first_id + k, 2, x, y, z, 1.0, root_parent if k == 0 else first_id + k - 1))
    return np.array(rows, float)


def test_offset_longer_trace():
    # gold x = 0..10 on y = 0; test x = 0..20 on y = 3. A test point at x is sqrt(max(x - 10, 0)^2 + 9)
    # from the gold segment: within 5 px for x <= 14, i.e. 15 of its 21 points; every gold point is 3 px off.
    gold = _chain([(0, 0, 0), (10, 0, 0)])
    test = _chain([(0, 3, 0), (20, 3, 0)])
    r = distance_score(test, gold, tolerance=5.0)
    assert r["precision"] == pytest.approx(15 / 21) and r["recall"] == 1.0
    assert r["f1"] == pytest.approx(2 * (15 / 21) / (1 + 15 / 21))
    assert (r["test_points"], r["gold_points"]) == (21, 11)


def test_distance_is_to_segments_not_nodes():
    # gold has only its two end nodes, 40 px apart; a test segment 4 px beside its middle is 20.4 px
    # from the nearest gold node but 4 px from the gold segment: matched
    gold = _chain([(0, 0, 0), (40, 0, 0)])
    test = _chain([(18, 4, 0), (22, 4, 0)])
    r = distance_score(test, gold, tolerance=5.0)
    assert r["precision"] == 1.0
    # the gold points within 5 px of the test segment (x 18..22 at 4 px, x 15..25 within 5): 11 of 41
    assert r["recall"] == pytest.approx(11 / 41)


def test_z_is_scaled_by_the_voxel_size():
    gold = _chain([(0, 0, 0), (10, 0, 0)])
    test = _chain([(0, 0, 2), (10, 0, 2)])       # 2 slices off
    assert distance_score(test, gold)["f1"] == 1.0                            # 2 px apart
    r = distance_score(test, gold, spacing=(3.0, 1.0, 1.0))                   # 6 px apart
    assert r["precision"] == 0.0 and r["recall"] == 0.0 and r["f1"] == 0.0
    # 1.5 slices at z step 3 is 4.5 px: within 5
    assert distance_score(_chain([(0, 0, 1.5), (10, 0, 1.5)]), gold, spacing=(3.0, 1.0, 1.0))["f1"] == 1.0


def test_branch_recall_counts_cable():
    # gold: root at the origin, one branch along +x (10 px), one along +y (10 px); the test finds the
    # x branch only. Gold points: 3 nodes + 9 + 9 interior = 21; matched: the 11 on the x branch and
    # y = 1..5 on the other (distance y to the test segment): 16.
    gold = np.array([[1, 2, 0, 0, 0, 1, -1], [2, 2, 10, 0, 0, 1, 1], [3, 2, 0, 10, 0, 1, 1]], float)
    test = _chain([(0, 0, 0), (10, 0, 0)])
    r = distance_score(test, gold, tolerance=5.0)
    assert r["precision"] == 1.0 and r["recall"] == pytest.approx(16 / 21)


def test_clicking_density_does_not_matter():
    sparse_gold = _chain([(0, 0, 0), (30, 0, 0)])
    dense_gold = _chain([(float(x), 0, 0) for x in range(31)])
    test = _chain([(10, 2, 0), (50, 2, 0)])
    a, b = distance_score(test, sparse_gold), distance_score(test, dense_gold)
    assert a["precision"] == pytest.approx(b["precision"]) and a["recall"] == pytest.approx(b["recall"])
    # test x = 10..34 match (x - 30 <= sqrt(21) = 4.58): 25 of 41; gold x = 6..30 (10 - x <= 4.58): 25 of 31
    assert a["precision"] == pytest.approx(25 / 41) and a["recall"] == pytest.approx(25 / 31)


def test_isolated_nodes_and_empty_traces():
    gold = _chain([(0, 0, 0), (10, 0, 0)])
    lone = np.array([[1, 2, 5, 4, 0, 1, -1], [2, 2, 50, 50, 0, 1, -1]], float)  # two single-node trees
    r = distance_score(lone, gold)
    assert r["precision"] == 0.5          # (5, 4) is 4 px from the gold segment, (50, 50) far away
    assert r["recall"] == pytest.approx(7 / 11)   # gold x = 2..8: sqrt((x - 5)^2 + 16) <= 5
    e = distance_score(np.zeros((0, 7)), gold)
    assert (e["precision"], e["recall"], e["f1"]) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="gold_swc is empty"):
        distance_score(gold, np.zeros((0, 7)))
    with pytest.raises(ValueError, match="tolerance"):
        distance_score(gold, gold, tolerance=0)
