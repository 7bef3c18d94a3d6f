"""Region graph and agglomeration against brute-force Python implementations."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from mire.segment import agglomerate, merge_small, region_graph, segmentation_at
from mire.segment.agglomerate import face_scores


def _random_fragments(rng, shape=(24, 24), n=30):
    """Voronoi fragments of random seeds (every fragment one connected piece)."""
    seeds = np.zeros(shape, int)
    pts = rng.choice(np.prod(shape), size=n, replace=False)
    seeds.flat[pts] = np.arange(1, n + 1)
    _, idx = ndi.distance_transform_edt(seeds == 0, return_indices=True)
    return seeds[tuple(idx)]


def _brute_faces(frag, boundary):
    """Every face (a < b, score) by explicit loops over voxels."""
    faces = {}
    for pos in np.ndindex(frag.shape):
        for ax in range(frag.ndim):
            nb = list(pos)
            nb[ax] += 1
            if nb[ax] >= frag.shape[ax]:
                continue
            nb = tuple(nb)
            a, b = int(frag[pos]), int(frag[nb])
            if a != b and a and b:
                faces.setdefault((min(a, b), max(a, b)), []).append((boundary[pos] + boundary[nb]) / 2)
    return faces


def test_region_graph_matches_brute_force(rng):
    frag = _random_fragments(rng)
    frag[frag == 7] = 0  # background has no edges
    b = rng.random(frag.shape)
    g = region_graph(frag, boundary=b, quantiles=(0.5, 0.75))
    faces = _brute_faces(frag, b)
    assert [tuple(e) for e in g.edges.tolist()] == sorted(faces)
    for k, key in enumerate(sorted(faces)):
        vals = np.array(faces[key])
        assert g.count[k] == len(vals)
        assert g.mean[k] == pytest.approx(vals.mean(), abs=1e-12)
        assert g.quantiles[0.5][k] == pytest.approx(np.quantile(vals, 0.5), abs=1e-12)
        assert g.quantiles[0.75][k] == pytest.approx(np.quantile(vals, 0.75), abs=1e-12)
    np.testing.assert_array_equal(g.sizes, np.bincount(frag.ravel()))
    assert set(g.neighbors(3).tolist()) == {b_ if a == 3 else a for a, b_ in faces if 3 in (a, b_)}


def test_affinity_faces_are_one_minus_affinity():
    frag = np.array([[1, 2], [1, 2]])
    affs = np.zeros((2, 2, 2))
    affs[1][:, 1] = [0.9, 0.7]  # (y, 1) vs (y, 0)
    a, b, w = face_scores(frag, affinities=affs)
    assert a.tolist() == [1, 1] and b.tolist() == [2, 2]
    np.testing.assert_allclose(np.sort(w), [0.1, 0.3])


def _brute_agglomerate(frag, boundary, threshold, q=None, nbins=None):
    """Naive agglomeration: recompute every edge score from all faces after every merge."""
    faces = _brute_faces(frag, boundary)
    region = {int(i): int(i) for i in np.unique(frag) if i}
    history = []
    while True:
        pooled = {}
        for (a, b), vals in faces.items():
            ra, rb = region[a], region[b]
            if ra != rb:
                pooled.setdefault((min(ra, rb), max(ra, rb)), []).extend(vals)
        if not pooled:
            break
        scores = {}
        for key, vals in pooled.items():
            v = np.array(vals)
            if q is None:
                scores[key] = v.mean()
            else:
                bins = np.sort(np.minimum((v * nbins).astype(int), nbins - 1))
                scores[key] = (bins[int(np.floor(q * (len(v) - 1)))] + 0.5) / nbins
        key = min(scores, key=scores.get)
        if scores[key] >= threshold:
            break
        a, b = key  # the merged region is named by its smallest fragment id
        for f, r in region.items():
            if r == b:
                region[f] = a
        history.append((a, b, scores[key]))
    lut = np.zeros(frag.max() + 1, int)
    for f, r in region.items():
        lut[f] = r
    return lut[frag], history


@pytest.mark.parametrize("scoring, q, nbins", [("mean", None, 256), ("quantile:0.75", 0.75, 2 ** 16),
                                               ("median", 0.5, 2 ** 16)])
def test_agglomeration_matches_brute_force(rng, scoring, q, nbins):
    frag = _random_fragments(rng, n=25)
    b = rng.random(frag.shape) ** 2
    res = agglomerate(frag, boundary=b, thresholds=[0.3, 0.6], scoring=scoring, nbins=nbins)
    for t, seg in zip(res.thresholds, res.segmentations):
        want, hist = _brute_agglomerate(frag, b, t, q=q, nbins=nbins)
        np.testing.assert_array_equal(seg, want)
        got = [r for r in res.history.tolist() if r[2] < t]
        assert [(int(a), int(b_)) for a, b_, _ in got] == [(a, b_) for a, b_, _ in hist]
        np.testing.assert_allclose([s for *_, s in got], [s for *_, s in hist], atol=1e-12)
    assert len(res.history) > 5  # the case exercises real merging


def test_thresholds_one_run_equals_separate_runs_and_history_replays(rng):
    frag = _random_fragments(rng, shape=(8, 20, 20), n=60)
    b = rng.random(frag.shape)
    thresholds = [0.55, 0.2, 0.45]  # any order; results come back in this order
    res = agglomerate(frag, boundary=b, thresholds=thresholds)
    for t, seg in zip(thresholds, res.segmentations):
        np.testing.assert_array_equal(seg, agglomerate(frag, boundary=b, thresholds=t).segmentations[0])
        np.testing.assert_array_equal(seg, segmentation_at(frag, res.history, t))
    assert res.history.dtype.names == ("a", "b", "score")
    assert np.all(res.history["a"] < res.history["b"])
    assert agglomerate(frag, boundary=b, thresholds=0.0).segmentations[0].tolist() == frag.tolist()


def test_merge_small_into_strongest_neighbour():
    seg = np.array([[1, 1, 1, 2, 3, 3, 3]])
    b = np.array([[0, 0, 0.9, 0.9, 0.1, 0, 0]])
    # region 2 (1 voxel) faces 1 with score 0.9 and 3 with score 0.5: 3 is the stronger neighbour
    np.testing.assert_array_equal(merge_small(seg, min_size=2, boundary=b), [[1, 1, 1, 3, 3, 3, 3]])
    # without evidence: the larger contact wins; here equal, so the lowest id
    np.testing.assert_array_equal(merge_small(seg, min_size=2), [[1, 1, 1, 1, 3, 3, 3]])
    # chains of small regions end up in a big one; isolated small regions stay
    seg = np.array([[5, 5, 5, 5, 6, 7, 0, 8]])
    out = merge_small(seg, min_size=3)
    np.testing.assert_array_equal(out, [[5, 5, 5, 5, 5, 5, 0, 8]])
    assert merge_small(seg, min_size=0).tolist() == seg.tolist()


def test_agglomerate_errors():
    frag = np.ones((4, 4), int)
    with pytest.raises(ValueError, match="does not match"):
        agglomerate(frag, boundary=np.zeros((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        agglomerate(frag, boundary=np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="either"):
        agglomerate(frag, boundary=np.zeros((4, 4)), affinities=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="scoring"):
        agglomerate(frag, boundary=np.zeros((4, 4)), scoring="max")
    with pytest.raises(ValueError, match="spatial shape"):
        agglomerate(frag, affinities=np.zeros((2, 4, 3)))


def test_agglomerate_graph_on_a_split_graph_equals_agglomerate(rng):
    """The graph-level function, fed the graph's statistics split in two halves and summed (as the
    blocks of segment_blockwise do), gives agglomerate's regions and history."""
    from mire.segment import agglomerate_graph

    frag = _random_fragments(rng, n=40)
    b = rng.random(frag.shape)
    a, c, w = face_scores(frag, boundary=b)
    half = np.arange(a.size) % 2 == 0
    stats = {}
    for sel in (half, ~half):
        for u, v, s in zip(a[sel], c[sel], w[sel]):
            n, t, h = stats.get((u, v), (0, 0.0, np.zeros(16, np.uint32)))
            h = h.copy()
            h[min(int(s * 16), 15)] += 1
            stats[(u, v)] = (n + 1, t + s, h)
    edges = np.array(sorted(stats))
    counts = np.array([stats[tuple(e)][0] for e in edges])
    sums = np.array([stats[tuple(e)][1] for e in edges])
    hist = np.array([stats[tuple(e)][2] for e in edges])
    for scoring in ("mean", "quantile:0.75"):
        res = agglomerate(frag, boundary=b, thresholds=[0.45, 0.55], scoring=scoring, nbins=16)
        regions, history = agglomerate_graph(edges, counts, sums, hist, thresholds=[0.45, 0.55], scoring=scoring,
                                             nbins=16, n_nodes=int(frag.max()) + 1)
        for seg, region in zip(res.segmentations, regions):
            np.testing.assert_array_equal(region[frag], seg)
        np.testing.assert_array_equal(history["a"], res.history["a"])
        np.testing.assert_allclose(history["score"], res.history["score"])
    hist_before = hist.copy()
    agglomerate_graph(edges, counts, sums, hist, thresholds=0.55, scoring="quantile:0.75", nbins=16)
    np.testing.assert_array_equal(hist, hist_before)  # the input is left alone unless overwrite_hist
    with pytest.raises(ValueError, match="histogram per edge"):
        agglomerate_graph(edges, counts, sums, None, scoring="median")
    with pytest.raises(ValueError, match="counts"):
        agglomerate_graph(edges, counts[:-1], sums)


def test_merge_small_graph_hand_case():
    from mire.segment import merge_small_graph

    # nodes 1..4 in a chain; 2 (1 voxel) is small: it joins 3 (lower mean score), the group is named 3
    edges = np.array([[1, 2], [2, 3], [3, 4]])
    region = merge_small_graph(edges, np.array([2, 1, 5]), np.array([1.6, 0.2, 2.5]),
                               np.array([0, 5, 1, 4, 6]), min_size=2)
    assert region.tolist() == [0, 1, 3, 3, 4]
    # the same, starting from a grouping where 3 and 4 are already one region (named 3)
    region = merge_small_graph(edges, np.array([2, 1, 5]), np.array([1.6, 0.2, 2.5]),
                               np.array([0, 5, 1, 4, 6]), min_size=2, regions=np.array([0, 1, 2, 3, 3]))
    assert region.tolist() == [0, 1, 3, 3, 3]
