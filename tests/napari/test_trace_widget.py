"""The Trace widget's actions (no display) and the widget itself in an offscreen viewer."""

from __future__ import annotations

import os

import numpy as np
import pytest

napari = pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

import mire.data  # noqa: E402
from mire._napari import _actions  # noqa: E402
from mire.io import read_swc  # noqa: E402
from mire.trace import trace  # noqa: E402


@pytest.fixture(scope="module")
def neurites():
    image, _ = mire.data.neurites((16, 64, 64), seed=2, return_swc=True)
    return image


def _edges_world(swc, scale, translate):
    """Hand-made expectation: each child-parent edge's end points in world (z, y, x)."""
    pos = {int(r[0]): np.array([r[4], r[3], r[2]]) for r in swc}
    out = [np.array([pos[int(r[6])], pos[int(r[0])]]) for r in swc if int(r[6]) in pos]
    return [e * np.asarray(scale) + np.asarray(translate) for e in out]


def test_trace_layer_matches_direct_trace(neurites):
    viewer = ViewerModel()
    img = viewer.add_image(neurites, name="neurites")
    layer = _actions.trace_layer(viewer, img)
    assert len(viewer.layers) == 2 and layer._type_string == "shapes" and layer.name == "neurites trace"
    expected = trace(neurites)
    np.testing.assert_array_equal(layer.metadata["swc"], expected)
    # one line per parent-child edge, like an SWC opened with the reader
    n_edges = int(np.sum(expected[:, 6] != -1))
    assert n_edges > 20 and len(layer.data) == n_edges
    assert set(layer.shape_type) == {"line"}
    np.testing.assert_allclose(layer.data[0], _edges_world(expected, (1, 1, 1), (0, 0, 0))[0])


def test_single_tree_has_one_root(neurites):
    viewer = ViewerModel()
    img = viewer.add_image(neurites)
    # two separate bright rods: the forest has two trees, single_tree keeps the longer one
    image = np.zeros((16, 64, 64), np.float32)
    image[8, 10, 5:60] = 1.0
    image[8, 40, 20:45] = 1.0
    rods = viewer.add_image(image, name="rods")
    forest = _actions.trace_layer(viewer, rods)
    single = _actions.trace_layer(viewer, rods, single_tree=True)
    assert int(np.sum(forest.metadata["swc"][:, 6] == -1)) == 2
    swc = single.metadata["swc"]
    assert int(np.sum(swc[:, 6] == -1)) == 1
    assert np.all(swc[:, 3] == 10)  # the long rod (y = 10) is the one kept
    np.testing.assert_array_equal(_actions.trace_layer(viewer, img, single_tree=True).metadata["swc"],
                                  trace(neurites, single_tree=True))


def test_seeds_from_points_are_xyz_pixels(neurites):
    viewer = ViewerModel()
    img = viewer.add_image(neurites)
    ref = trace(neurites)
    zyx = ref[[0, len(ref) // 2], [4, 4]], ref[[0, len(ref) // 2], [3, 3]], ref[[0, len(ref) // 2], [2, 2]]
    points = viewer.add_points(np.stack(zyx, axis=1), name="seeds")  # napari order (z, y, x)
    seeds = _actions.seeds_from_points(points, img)
    np.testing.assert_allclose(seeds, ref[[0, len(ref) // 2]][:, 2:5])  # (x, y, z) as in SWC
    layer = _actions.trace_layer(viewer, img, seeds_layer=points)
    np.testing.assert_array_equal(layer.metadata["swc"], trace(neurites, seeds=seeds))
    # a seed far from any neurite keeps nothing: the seeds really reached trace()
    far = viewer.add_points(np.array([[0.0, 0.0, 63.0]]))
    assert len(_actions.trace_layer(viewer, img, seeds_layer=far).metadata["swc"]) < len(ref)


def test_scaled_layer_passes_spacing_and_sits_in_world(neurites):
    viewer = ViewerModel()
    scale, translate = (3.0, 1.0, 1.0), (10.0, -5.0, 2.0)
    img = viewer.add_image(neurites, scale=scale, translate=translate)
    layer = _actions.trace_layer(viewer, img)
    expected = trace(neurites, spacing=scale)
    np.testing.assert_array_equal(layer.metadata["swc"], expected)
    np.testing.assert_allclose(layer.scale, scale)
    np.testing.assert_allclose(layer.translate, translate)
    world = [layer.data_to_world(p) for p in layer.data[0]]
    np.testing.assert_allclose(world, _edges_world(expected, scale, translate)[0])
    # seed points placed in world coordinates on the scaled image come back as the image's pixels
    pts = viewer.add_points(np.array([[4 * 3.0 + 10.0, 20.0 - 5.0, 30.0 + 2.0]]))
    np.testing.assert_allclose(_actions.seeds_from_points(pts, img), [[30.0, 20.0, 4.0]])


def test_save_trace_roundtrip(neurites, tmp_path):
    viewer = ViewerModel()
    layer = _actions.trace_layer(viewer, viewer.add_image(neurites))
    path = _actions.save_trace(layer, tmp_path / "t.swc")
    np.testing.assert_allclose(read_swc(path), layer.metadata["swc"], atol=1e-3)
    plain = viewer.add_shapes([np.zeros((2, 3))], shape_type="line", name="drawn")
    with pytest.raises(ValueError, match="holds no trace"):
        _actions.save_trace(plain, tmp_path / "u.swc")


def test_evaluate_trace_against_gold(tmp_path):
    from mire.io import write_swc
    from mire.trace import evaluate_tracing

    image, gold = mire.data.neurites((16, 64, 64), seed=2, return_swc=True)
    write_swc(tmp_path / "gold.swc", gold)
    viewer = ViewerModel()
    layer = _actions.trace_layer(viewer, viewer.add_image(image))
    scores = _actions.evaluate_trace(layer, image, tmp_path / "gold.swc")
    ref = evaluate_tracing(image, trace(image), read_swc(tmp_path / "gold.swc"))
    assert scores["recall"] == ref["recall"] and scores["node recall"] == ref["node_recall"]
    assert scores["precision"] > 0.95 and scores["node recall"] > 0.9  # clean synthetic stack: near perfect


def test_empty_image_gives_empty_layer_and_message(tmp_path):
    viewer = ViewerModel()
    img = viewer.add_image(np.zeros((16, 32, 32), np.float32), name="blank")
    layer = _actions.trace_layer(viewer, img)
    assert len(layer.data) == 0 and layer.metadata["swc"].shape == (0, 7) and layer.ndim == 3
    assert "no neurite found" in layer.metadata["message"]
    _actions.save_trace(layer, tmp_path / "empty.swc")
    assert read_swc(tmp_path / "empty.swc").shape == (0, 7)


def test_2d_image_traces_to_2d_lines():
    viewer = ViewerModel()
    image = np.zeros((48, 48), np.float32)
    image[24, 4:44] = 1.0
    layer = _actions.trace_layer(viewer, viewer.add_image(image))
    assert layer.ndim == 2 and len(layer.data) > 0
    np.testing.assert_allclose(np.concatenate(layer.data)[:, 0], 24)  # (y, x): all on row 24


@pytest.mark.skipif(not (os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen"),
                    reason="napari widget tests need a display: run under `xvfb-run -a` or QT_QPA_PLATFORM=offscreen")
def test_trace_widget_traces_and_saves(make_napari_viewer, qtbot, neurites, tmp_path):
    pytest.importorskip("pytestqt")
    from mire._napari import _widgets

    viewer = make_napari_viewer()
    viewer.add_image(neurites, name="neurites", scale=(2.0, 1.0, 1.0))
    widget = _widgets.TraceWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    widget.single_tree.value = True
    widget._on_run()
    assert widget.worker is not None, widget.status.value
    qtbot.waitUntil(lambda: widget.trace_layer is not None or widget.status.value.startswith("error"),
                    timeout=60_000)
    swc = widget.trace_layer.metadata["swc"]
    np.testing.assert_array_equal(swc, trace(neurites, spacing=(2.0, 1.0, 1.0), single_tree=True))
    assert widget.status.value == _actions.trace_message(swc) and "1 tree" in widget.status.value
    widget.swc_file.value = str(tmp_path / "w.swc")
    widget.save()
    assert widget.status.value.startswith("saved"), widget.status.value
    np.testing.assert_allclose(read_swc(tmp_path / "w.swc"), swc, atol=1e-3)
    widget.clean.value = viewer.layers["neurites"]
    widget.gold_file.value = str(tmp_path / "w.swc")  # the trace against itself: perfect scores
    widget.evaluate()
    assert "recall: 1.000" in widget.scores.value, (widget.scores.value, widget.status.value)
