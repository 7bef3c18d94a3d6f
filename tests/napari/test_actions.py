"""napari plugin logic without a display: readers/writers, sample data and the actions behind each widget."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari")
from napari.components import ViewerModel  # noqa: E402

from mire._napari import _actions, _io, _samples  # noqa: E402


def _add(viewer, layer_data):
    for data, kwargs, kind in layer_data:
        getattr(viewer, f"add_{kind}")(data, **kwargs)


def test_reader_writer_roundtrip_keeps_scale(tmp_path):
    from mire.io import imwrite

    data = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    path = tmp_path / "stack.tif"
    imwrite(path, data, axes="ZYX", pixel_size={"Z": 1.0, "Y": 0.33, "X": 0.33})
    reader = _io.get_reader(str(path))
    assert reader is not None and _io.get_reader(str(tmp_path / "x.unknown")) is None
    (arr, kwargs, kind), = reader(str(path))
    assert kind == "image"
    np.testing.assert_array_equal(np.asarray(arr), data)
    np.testing.assert_allclose(kwargs["scale"], [1.0, 0.33, 0.33], rtol=1e-4)
    viewer = ViewerModel()
    viewer.add_image(arr, **kwargs)
    out = tmp_path / "out.tif"
    layer = viewer.layers[0]
    _io.write_image(str(out), layer.data, {"scale": layer.scale})
    (arr2, kwargs2, _), = _io.read_layers(str(out))
    np.testing.assert_array_equal(np.asarray(arr2), data)
    np.testing.assert_allclose(kwargs2["scale"], [1.0, 0.33, 0.33], rtol=1e-4)


def test_labels_and_swc_are_read_as_labels_and_lines(tmp_path):
    from mire.io import imwrite, write_swc

    labels = np.zeros((5, 10, 10), np.int32)
    labels[:, 2:5, 2:5] = 7
    imwrite(tmp_path / "seg.tif", labels, axes="ZYX")
    (_, _, kind), = _io.read_layers(str(tmp_path / "seg.tif"))
    assert kind == "labels"
    swc = np.array([[1, 2, 1.0, 2.0, 0.0, 1.0, -1], [2, 2, 3.0, 2.0, 1.0, 1.0, 1], [3, 2, 3.0, 5.0, 2.0, 1.0, 2]])
    write_swc(tmp_path / "t.swc", swc)
    (lines, kwargs, kind), = _io.read_layers(str(tmp_path / "t.swc"))
    assert kind == "shapes" and len(lines) == 2
    np.testing.assert_allclose(lines[0], [[0.0, 2.0, 1.0], [1.0, 2.0, 3.0]])  # (z, y, x) of parent -> child


def test_sample_data():
    layers = _samples.neurites_sample()
    assert [k for _, _, k in layers] == ["image", "image"]
    assert layers[0][0].shape == layers[1][0].shape == (32, 128, 128)
    img, lab = _samples.em_sample()
    assert lab[2] == "labels" and lab[0].shape == img[0].shape and lab[0].max() > 1


def test_simulate_and_evaluate_actions():
    clean = _samples.neurites_sample()[1][0].astype(np.float64)
    (noisy, kwargs, kind), = _actions.simulate_layer(clean, condition="N3-B3", seed=1, name="n")
    viewer = ViewerModel()
    _add(viewer, [(noisy, kwargs, kind)])
    assert viewer.layers["n"].data.shape == clean.shape
    res = _actions.evaluate(noisy, clean, labels=False)
    # N3 noise SD is 3/14 of the peak: PSNR about 20 log10(14/3) = 13.4 dB before blur losses
    assert 11.0 < res["PSNR (dB)"] < 14.0
    labels = np.repeat(np.arange(1, 5), 4)[None].repeat(8, axis=0)
    res = _actions.evaluate(labels, labels, labels=True)
    assert res["adapted Rand error"] == pytest.approx(0.0) and res["VOI split"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="does not match"):
        _actions.evaluate(labels[:4], labels, labels=True)


def test_restore_action_improves_psnr():
    from mire.metrics import psnr
    from mire.optics import simulate

    clean = _samples.neurites_sample()[1][0][:16, :64, :64].astype(np.float64)
    noisy = simulate(clean, condition="N2-B2", seed=0)
    (out, kwargs, _), = _actions.restore_layer(noisy, method="tv", psf_sigma=0.8, weight=0.02, n_iter=30, name="r")
    peak = clean.max()
    assert psnr(clean, out, data_range=peak) > psnr(clean, noisy, data_range=peak) + 3
    with pytest.raises(ValueError, match="unknown method"):
        _actions.restore_layer(noisy, method="magic")


def test_segment_session_thresholds_without_repredicting():
    from mire.data import em_cells
    from mire.metrics import adapted_rand_error
    from mire.segment import boundaries

    _, labels = em_cells((4, 64, 64), seed=2)
    bmap = boundaries(labels).astype(np.float32)
    session = _actions.SegmentSession(bmap)
    low, high = session.labels(0.0), session.labels(0.5)
    assert len(np.unique(low)) >= len(np.unique(high))  # more merging at a higher threshold
    err, _, _ = adapted_rand_error(labels, high)
    assert err < 0.1
    assert session.labels(1.01).max() == 1 or len(np.unique(session.labels(1.01))) <= 2


def test_proofread_session_roundtrip(tmp_path):
    from mire.segment import load_log, replay

    seg = np.zeros((1, 6, 12), np.uint32)
    seg[:, :, :4], seg[:, :, 4:8], seg[:, :, 8:] = 1, 2, 3
    session = _actions.ProofreadSession(seg.copy())
    merged = session.merge([2, 3]).copy()
    assert set(np.unique(merged)) == {1, 2}
    split = session.split([(0, 2, 5), (0, 2, 10)]).copy()
    assert len(np.unique(split)) == 3
    np.testing.assert_array_equal(session.undo(), merged)
    path = session.save_log(tmp_path / "edits.json")
    np.testing.assert_array_equal(replay(seg, load_log(path)), merged)
    with pytest.raises(ValueError, match="one segment"):
        session.split([(0, 2, 1), (0, 2, 10)])


def test_train_segmentation_from_a_few_painted_slices(tmp_path):
    from mire.data import em_cells
    from mire.segment import Segmenter

    image, labels = em_cells((8, 64, 64), seed=3)
    painted = np.zeros_like(labels)
    painted[[2, 5]] = labels[[2, 5]]  # ground truth painted on two slices only
    steps = []
    result = _actions.train_model(image, painted, task="segmentation", steps=3, save_to=str(tmp_path / "seg"),
                                  callback=lambda step, loss: steps.append((step, loss)))
    assert result["steps"] == 3 and not result["cancelled"] and len(steps) == 3
    assert all(np.isfinite(loss) for _, loss in steps)
    model = Segmenter.load(result["path"])
    prob = model.predict(image)
    assert prob.shape == image.shape and 0 <= prob.min() and prob.max() <= 1
