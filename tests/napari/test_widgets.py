"""The dock widgets in a real (offscreen) viewer: each runs on sample data and produces its layer."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
if not (os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen"):
    pytest.skip("napari widget tests need a display: run under `xvfb-run -a` or set QT_QPA_PLATFORM=offscreen",
                allow_module_level=True)

from mire._napari import _widgets  # noqa: E402


def _run(widget, qtbot, timeout=120_000):
    widget._on_run()
    assert widget.worker is not None, widget.status.value
    # the Run button comes back when the worker has finished (even if that was before we looked)
    qtbot.waitUntil(lambda: widget.run_button.enabled and widget.status.value != "running...", timeout=timeout)
    assert not widget.status.value.startswith("error"), widget.status.value


@pytest.fixture
def viewer(make_napari_viewer):
    v = make_napari_viewer()
    clean = np.zeros((8, 48, 48), np.float32)
    clean[:, 20:24, 5:40] = 1.0
    clean[:, 5:40, 30:33] = 0.8
    v.add_image(clean, name="clean")
    return v


def _dock(viewer, widget):
    viewer.window.add_dock_widget(widget)
    widget.reset_choices()
    return widget


def test_manifest_is_valid():
    from pathlib import Path

    from npe2 import PluginManifest

    import mire

    manifest = PluginManifest.from_file(Path(mire.__file__).parent / "napari.yaml")
    assert manifest.name == "mire"
    # the installed package exposes it through the napari.manifest entry point (what `npe2 validate mire` reads)
    assert PluginManifest.from_distribution("mire").name == "mire"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert len(manifest.contributions.widgets) == 8  # simulate ... evaluate, trace
    # every python_name resolves to a real object
    import importlib

    for name in commands.values():
        module, attr = name.split(":")
        assert hasattr(importlib.import_module(module), attr), name


def test_simulate_then_restore_then_evaluate(viewer, qtbot):
    sim = _dock(viewer, _widgets.SimulateWidget(viewer))
    sim.image.value = viewer.layers["clean"]
    sim.condition.value = "N2-B2"
    _run(sim, qtbot)
    assert "clean N2-B2" in viewer.layers
    noisy = viewer.layers["clean N2-B2"]
    assert noisy.data.shape == (8, 48, 48) and noisy.data.std() > 0.05

    rest = _dock(viewer, _widgets.RestoreWidget(viewer))
    rest.image.value = noisy
    rest.method.value = "rl"
    rest.iterations.value = 10
    _run(rest, qtbot)
    name = "clean N2-B2 restored (rl)"
    assert name in viewer.layers

    ev = _dock(viewer, _widgets.EvaluateWidget(viewer))
    ev.prediction.value = viewer.layers[name]
    ev.truth.value = viewer.layers["clean"]
    _run(ev, qtbot)
    assert ev.results["PSNR (dB)"] > 10 and "SSIM" in ev.table.value


def test_errors_become_notifications_not_crashes(viewer, qtbot):
    rest = _dock(viewer, _widgets.RestoreWidget(viewer))
    rest.image.value = viewer.layers["clean"]
    rest.method.value = "model"  # no model chosen
    rest.model.value = rest.model.choices[-1]
    rest._on_run()
    qtbot.waitUntil(lambda: rest.status.value.startswith("error"), timeout=60_000)
    assert "choose a shipped model" in rest.status.value
    qtbot.waitUntil(lambda: rest.run_button.enabled, timeout=10_000)  # ready for the next try



def test_an_rgb_layer_is_refused_in_words(viewer, qtbot):
    # before: restoring an RGB layer complained that the PSF (9, 9, 9) was larger than the image (64, 64, 3):
    # the colour axis was read as a third spatial axis
    viewer.add_image(np.random.default_rng(0).random((64, 64, 3)).astype(np.float32), name="colour", rgb=True)
    rest = _dock(viewer, _widgets.RestoreWidget(viewer))
    rest.image.value = viewer.layers["colour"]
    rest._on_run()
    assert rest.worker is None or rest.status.value.startswith("error")
    assert "layer 'colour' is an RGB(A) image; mire works on one channel" in rest.status.value

def test_segment_threshold_slider_relabels_without_repredicting(viewer, qtbot):
    from mire.data import em_cells
    from mire.segment import boundaries

    _, labels = em_cells((4, 64, 64), seed=1)
    viewer.add_image(boundaries(labels).astype(np.float32), name="bmap")
    seg = _dock(viewer, _widgets.SegmentWidget(viewer))
    seg.image.value = viewer.layers["bmap"]
    _run(seg, qtbot)
    layer = viewer.layers["bmap segmentation"]
    n_mid = len(np.unique(layer.data))
    session = seg.session
    seg.threshold.value = 0.0
    assert seg.session is session  # same prediction, only re-thresholded
    assert len(np.unique(layer.data)) >= n_mid


def test_proofread_merge_split_undo(viewer, qtbot, tmp_path):
    seg = np.zeros((2, 10, 12), np.uint32)
    seg[:, :, :6], seg[:, :, 6:] = 1, 2
    viewer.add_labels(seg, name="seg")
    pr = _dock(viewer, _widgets.ProofreadWidget(viewer))
    pr.segmentation.value = viewer.layers["seg"]
    pr.select(1)
    pr.select(2)
    pr.merge()
    assert set(np.unique(viewer.layers["seg"].data)) == {1}
    pr.undo()
    np.testing.assert_array_equal(viewer.layers["seg"].data, seg)
    viewer.add_points(np.array([[0, 5, 0], [0, 5, 5]]), name="seeds")
    pr.seeds.value = viewer.layers["seeds"]
    pr.split()  # segment 1 (columns 0-5) cut in two around the seeds
    after = viewer.layers["seg"].data
    assert len(np.unique(after)) == 3 and after[0, 5, 0] != after[0, 5, 5]
    assert np.all(after[:, :, 6:] == 2)
    pr.log_file.value = str(tmp_path / "edits.json")
    _run(pr, qtbot)
    assert (tmp_path / "edits.json").exists()


def test_training_can_be_cancelled(viewer, qtbot, tmp_path):
    viewer.add_image(viewer.layers["clean"].data + 0.1 * np.random.default_rng(0).standard_normal((8, 48, 48))
                     .astype(np.float32), name="noisy")
    tr = _dock(viewer, _widgets.TrainWidget(viewer))
    tr.image.value = viewer.layers["noisy"]
    tr.target.value = viewer.layers["clean"]
    tr.steps.value = 100000
    tr.save_to.value = str(tmp_path / "model")
    tr._on_run()
    qtbot.waitUntil(lambda: tr.progress.value >= 2, timeout=120_000)
    tr.cancel()
    qtbot.waitUntil(lambda: tr.run_button.enabled, timeout=120_000)
    assert "cancelled" in tr.status.value
    assert tr.progress.value < 100000
    assert (tmp_path / "model.safetensors").exists()


def test_a_model_trained_in_the_gui_restores_from_its_file(viewer, qtbot, tmp_path):
    from mire._napari import _actions

    noisy = viewer.layers["clean"].data + 0.1 * np.random.default_rng(1).standard_normal((8, 48, 48))
    viewer.add_image(noisy.astype(np.float32), name="noisy")
    result = _actions.train_model(viewer.layers["noisy"].data, viewer.layers["clean"].data, steps=2,
                                  save_to=str(tmp_path / "mine"))
    rest = _dock(viewer, _widgets.RestoreWidget(viewer))
    rest.image.value = viewer.layers["noisy"]
    rest.method.value = "model"
    rest.model.value = _actions.MODEL_FILE
    rest.model_file.value = result["path"] + ".json"
    _run(rest, qtbot)
    out = viewer.layers["noisy restored (model)"].data
    assert out.shape == noisy.shape and np.isfinite(out).all()
