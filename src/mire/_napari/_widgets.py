"""Dock widgets, one per step of the flow: simulate, restore, super-resolve, train, segment, proofread, evaluate, trace.

Each widget is a magicgui ``Container`` with a help line, layer pickers and sensible defaults. The work runs in
a napari thread worker (the viewer never freezes); results arrive as new layers, errors as notifications in plain
words. The computations themselves live in :mod:`mire._napari._actions`.
"""

from __future__ import annotations

import threading

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    create_widget,
)

from mire._napari import _actions


def _notify_error(exc: BaseException) -> None:
    from napari.utils.notifications import show_error

    show_error(f"mire: {exc}")


class _MireWidget(Container):
    """Common parts: help line, status line, a Run button and background execution."""

    help_text = ""

    def __init__(self, napari_viewer, widgets):
        self.viewer = napari_viewer
        self.status = Label(value="")
        self.run_button = PushButton(text="Run")
        help_label = Label(value=self.help_text)
        help_label.native.setWordWrap(True)  # long help lines wrap instead of widening the dock
        super().__init__(widgets=[help_label, *widgets, self.run_button, self.status], labels=True)
        self.run_button.changed.connect(self._on_run)
        self.worker = None

    # subclasses return a callable doing the work (in a thread) and a callback handling its result
    def job(self):
        raise NotImplementedError

    def _on_run(self, *_):
        try:
            func, on_done = self.job()
        except Exception as exc:  # a bad choice in the form: say it, don't crash the viewer
            _notify_error(exc)
            self.status.value = f"error: {exc}"
            return
        self.start(func, on_done)

    def start(self, func, on_done):
        from napari.qt.threading import create_worker

        self.status.value = "running..."
        self.run_button.enabled = False
        # errors are ours to report (a notification), not napari's to re-raise in the event loop
        worker = create_worker(func, _ignore_errors=True)
        worker.returned.connect(lambda *_: setattr(self.status, "value", "done"))
        worker.returned.connect(on_done)  # after "done", so a callback may say something more specific
        worker.errored.connect(_notify_error)
        worker.errored.connect(lambda exc: setattr(self.status, "value", f"error: {exc}"))
        worker.finished.connect(lambda: setattr(self.run_button, "enabled", True))
        self.worker = worker
        worker.start()
        return worker

    def add_layers(self, layer_data):
        for data, kwargs, kind in layer_data:
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)


def _layer_picker(kind: str, label: str, *, optional: bool = False):
    import typing

    import napari

    annotation = getattr(napari.layers, kind)
    if optional:  # may stay empty: the widget then does without that input
        return create_widget(annotation=typing.Optional[annotation], label=label, value=None)
    return create_widget(annotation=annotation, label=label)


class SimulateWidget(_MireWidget):
    help_text = "Degrade an image with the microscope's forward optics (paper-2020 blur/noise conditions)."

    def __init__(self, napari_viewer):
        from mire.optics import CONDITIONS

        self.image = _layer_picker("Image", "image")
        self.condition = ComboBox(choices=list(CONDITIONS), value="N2-B2", label="condition")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        super().__init__(napari_viewer, [self.image, self.condition, self.seed])

    def job(self):
        layer = _require(self.image.value, "an image layer to degrade")
        data, cond, seed = np.asarray(layer.data), self.condition.value, int(self.seed.value)
        name = f"{layer.name} {cond}"
        return (lambda: _actions.simulate_layer(data, condition=cond, seed=seed, name=name, scale=layer.scale)), \
            self.add_layers


class RestoreWidget(_MireWidget):
    help_text = "Restore an image: TV deconvolution, Richardson-Lucy, Wiener, or a trained network."

    def __init__(self, napari_viewer):
        self.image = _layer_picker("Image", "image")
        self.method = ComboBox(choices=_actions.restore_methods(), value="tv", label="method")
        self.psf = ComboBox(choices=["gaussian"], value="gaussian", label="PSF")
        self.psf_sigma = FloatSpinBox(value=0.8, min=0.0, max=10.0, step=0.1, label="PSF sigma (px)")
        self.psf_file = FileEdit(mode="r", label="PSF file (optional)", filter="*.tif *.tiff")
        self.weight = FloatSpinBox(value=0.0, min=0.0, max=10.0, step=0.001, label="weight (0 = automatic)")
        self.iterations = SpinBox(value=50, min=1, max=5000, label="iterations")
        self.model = ComboBox(choices=_actions.model_choices("restore"), label="model")
        self.model_file = FileEdit(mode="r", label="model file", filter="*.json *.safetensors")
        super().__init__(napari_viewer, [self.image, self.method, self.psf_sigma, self.psf_file, self.weight,
                                         self.iterations, self.model, self.model_file])

    def job(self):
        layer = _require(self.image.value, "an image layer to restore")
        data = np.asarray(layer.data)
        psf_file = str(self.psf_file.value) if self.psf_file.value and str(self.psf_file.value) not in ("", ".") \
            else None
        opts = dict(method=self.method.value, psf_sigma=float(self.psf_sigma.value), psf_file=psf_file,
                    weight=float(self.weight.value) or None, n_iter=int(self.iterations.value),
                    model=_model_name(self.model.value, self.model_file.value),
                    name=f"{layer.name} restored ({self.method.value})", scale=layer.scale)
        return (lambda: _actions.restore_layer(data, **opts)), self.add_layers


class SuperresWidget(_MireWidget):
    help_text = "Fuse shifted/rotated low-res frames (first axis = frames) into one sharper image + uncertainty."

    def __init__(self, napari_viewer):
        self.frames = _layer_picker("Image", "frames")
        self.factor = SpinBox(value=2, min=1, max=8, label="factor")
        self.method = ComboBox(choices=["map", "ml", "bayesian", "bayesian-registration"], value="bayesian",
                               label="method")
        self.psf_sigma = FloatSpinBox(value=1.0, min=0.0, max=10.0, step=0.1, label="PSF sigma (high-res px)")
        self.robust = create_widget(value=False, annotation=bool, label="robust to occlusions")
        super().__init__(napari_viewer, [self.frames, self.factor, self.method, self.psf_sigma, self.robust])

    def job(self):
        layer = _require(self.frames.value, "a layer holding the frames (T, Y, X)")
        data = np.asarray(layer.data)
        opts = dict(factor=int(self.factor.value), method=self.method.value, psf_sigma=float(self.psf_sigma.value),
                    robust=bool(self.robust.value), name=layer.name)
        return (lambda: _actions.superres_layers(data, **opts)), self.add_layers


class TrainWidget(_MireWidget):
    help_text = ("Train a model from layers: restoration (noisy image + clean image, or noisy alone) or "
                 "segmentation (image + painted labels; unlabeled voxels are ignored).")

    def __init__(self, napari_viewer):
        self.task = ComboBox(choices=["restoration", "segmentation"], value="restoration", label="task")
        self.image = _layer_picker("Image", "input image")
        self.target = ComboBox(choices=self._target_choices, label="target (clean image or labels)", nullable=True)
        self.steps = SpinBox(value=200, min=1, max=1_000_000, label="training steps")
        self.save_to = FileEdit(mode="w", label="save model to", value="mire-model")
        self.progress = ProgressBar(value=0, min=0, max=100, label="progress")
        self.loss = Label(value="", label="loss")
        self.cancel_button = PushButton(text="Cancel")
        super().__init__(napari_viewer, [self.task, self.image, self.target, self.steps, self.save_to,
                                         self.progress, self.loss, self.cancel_button])
        self.cancel_button.changed.connect(self.cancel)
        self.stop_event = threading.Event()
        # the worker thread only records (step, loss); a GUI-thread timer shows them (Qt widgets are
        # not thread-safe)
        self._latest = None
        from qtpy.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._show_progress)
        self._timer.start()

    def _target_choices(self, *_):
        if not hasattr(self, "viewer") or self.viewer is None:
            return []
        return [layer for layer in self.viewer.layers if layer._type_string in ("image", "labels")]

    def cancel(self, *_):
        self.stop_event.set()
        self.status.value = "cancelling..."

    def job(self):
        image = _require(self.image.value, "an input image layer")
        target = self.target.value
        task, steps = self.task.value, int(self.steps.value)
        self.progress.max = steps
        self.progress.value = 0
        self.stop_event.clear()
        data = np.asarray(image.data)
        tdata = None if target is None else np.asarray(target.data)
        save_to = str(self.save_to.value)

        def run():
            return _actions.train_model(data, tdata, task=task, steps=steps, save_to=save_to,
                                        stop_event=self.stop_event, callback=self._on_step)

        return run, self._on_trained

    def _on_step(self, step, loss):
        self._latest = (int(step), float(loss))  # worker thread: plain Python values only

    def _show_progress(self):
        if self._latest is None:
            return
        step, loss = self._latest
        self.progress.value = min(step, self.progress.max)
        self.loss.value = f"{loss:.4g} (step {step})"

    def _on_trained(self, result):
        from napari.utils.notifications import show_info

        self._latest = None
        self.progress.value = min(result["steps"], self.progress.max)
        state = "cancelled, saved" if result["cancelled"] else "saved"
        show_info(f"mire: model {state} to {result['path']}")
        self.status.value = f"{state} to {result['path']}"


class SegmentWidget(_MireWidget):
    help_text = ("Segment EM: predict boundaries/affinities with a model (or use a boundary-map layer), then "
                 "watershed + agglomeration; or flood-fill it with an FFN model (kind ffn). The threshold slider "
                 "re-agglomerates without re-predicting.")

    def __init__(self, napari_viewer):
        self.image = _layer_picker("Image", "EM image or boundary map")
        self.model = ComboBox(choices=["(input is a boundary map)"] + _actions.model_choices("segment"),
                              value="(input is a boundary map)", label="model")
        self.model_file = FileEdit(mode="r", label="model file", filter="*.json *.safetensors")
        self.threshold = FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, label="merge threshold")
        super().__init__(napari_viewer, [self.image, self.model, self.model_file, self.threshold])
        self.session = None
        self.threshold.changed.connect(self._rethreshold)

    def job(self):
        layer = _require(self.image.value, "an EM image or boundary-map layer")
        data = np.asarray(layer.data)
        model = None if self.model.value.startswith("(input") else _model_name(self.model.value,
                                                                                 self.model_file.value)
        threshold = float(self.threshold.value)
        name, scale = f"{layer.name} segmentation", layer.scale

        def run():
            return _actions.SegmentSession(data, model=model), threshold, name, scale

        return run, self._on_segmented

    def _on_segmented(self, result):
        session, threshold, name, scale = result
        self.session = session
        labels = session.labels(threshold)
        if name in self.viewer.layers:
            self.viewer.layers[name].data = labels
        else:
            self.viewer.add_labels(labels, name=name, scale=scale)
        self._layer_name = name

    def _rethreshold(self, value):
        if self.session is None:
            return
        self.viewer.layers[self._layer_name].data = self.session.labels(float(value))


class ProofreadWidget(_MireWidget):
    help_text = ("Fix a segmentation: shift-click two segments then 'Merge'; put points inside one segment "
                 "then 'Split'; 'Undo' reverts. The edit log can be saved and replayed with `mire proofread`.")

    def __init__(self, napari_viewer):
        self.segmentation = _layer_picker("Labels", "segmentation")
        self.boundary = _layer_picker("Image", "boundary map (for splits)", optional=True)
        self.seeds = _layer_picker("Points", "split seeds", optional=True)
        self.merge_button = PushButton(text="Merge selected")
        self.split_button = PushButton(text="Split at seeds")
        self.undo_button = PushButton(text="Undo")
        self.log_file = FileEdit(mode="w", label="edit log", value="edits.json")
        self.selected = Label(value="", label="selected ids")
        super().__init__(napari_viewer, [self.segmentation, self.boundary, self.seeds, self.selected, self.merge_button,
                                         self.split_button, self.undo_button, self.log_file])
        self.run_button.text = "Save edit log"
        self.session = None
        self.selected_ids: list[int] = []
        self.merge_button.changed.connect(lambda *_: self._safely(self.merge))
        self.split_button.changed.connect(lambda *_: self._safely(self.split))
        self.undo_button.changed.connect(lambda *_: self._safely(self.undo))
        self.segmentation.changed.connect(self._attach)

    def _safely(self, fn):
        try:
            fn()
        except Exception as exc:
            _notify_error(exc)
            self.status.value = f"error: {exc}"

    def _attach(self, layer=None):
        layer = layer if layer is not None else self.segmentation.value
        if layer is None:
            return
        if self._on_click not in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.append(self._on_click)

    def _session(self):
        layer = _require(self.segmentation.value, "a labels layer to proofread")
        if self.session is None or self.session.layer_name != layer.name:
            boundary = None if self.boundary.value is None else np.asarray(self.boundary.value.data)
            self.session = _actions.ProofreadSession(np.asarray(layer.data), boundary=boundary,
                                                     layer_name=layer.name)
        return layer, self.session

    def _on_click(self, layer, event):
        if "Shift" not in event.modifiers:
            return
        self.select(int(layer.get_value(event.position, world=True) or 0))

    def select(self, label_id: int):
        if label_id == 0:
            return
        self.selected_ids = (self.selected_ids + [label_id])[-2:]
        self.selected.value = ", ".join(map(str, self.selected_ids))

    def merge(self):
        layer, session = self._session()
        if len(self.selected_ids) < 2:
            raise ValueError("shift-click two segments first")
        layer.data = session.merge(self.selected_ids)
        self.status.value = f"merged {self.selected_ids}"
        self.selected_ids = []
        self.selected.value = ""

    def split(self):
        layer, session = self._session()
        points = self.seeds.value
        if points is None or len(points.data) < 2:
            raise ValueError("add at least two points inside the segment to split")
        # points -> world -> the labels layer's voxel indices (the two layers may be scaled differently)
        coords = np.array([layer.world_to_data(points.data_to_world(p)) for p in points.data])
        layer.data = session.split(np.round(coords).astype(int))
        self.status.value = "split"

    def undo(self):
        layer, session = self._session()
        layer.data = session.undo()
        self.status.value = "undone"

    def job(self):
        _, session = self._session()
        path = str(self.log_file.value)
        return (lambda: session.save_log(path)), lambda p: setattr(self.status, "value", f"log saved to {p}")


class EvaluateWidget(_MireWidget):
    help_text = ("Compare a result with ground truth: PSNR/SSIM for images, adapted Rand error and VOI "
                 "for segmentations.")

    def __init__(self, napari_viewer):
        self.prediction = ComboBox(choices=self._layers, label="prediction")
        self.truth = ComboBox(choices=self._layers, label="ground truth")
        self.table = Label(value="", label="metrics")
        super().__init__(napari_viewer, [self.prediction, self.truth, self.table])
        self.results: dict = {}

    def _layers(self, *_):
        if not hasattr(self, "viewer") or self.viewer is None:
            return []
        return [layer for layer in self.viewer.layers if layer._type_string in ("image", "labels")]

    def job(self):
        pred = _require(self.prediction.value, "a prediction layer")
        gt = _require(self.truth.value, "a ground-truth layer")
        p, g = np.asarray(pred.data), np.asarray(gt.data)
        labels = pred._type_string == "labels" or gt._type_string == "labels"
        return (lambda: _actions.evaluate(p, g, labels=labels)), self._show

    def _show(self, results: dict):
        self.results = results
        self.table.value = "\n".join(f"{k}: {v:.4f}" for k, v in results.items())


class TraceWidget(_MireWidget):
    help_text = ("Trace neurites into an SWC tree (vesselness + skeleton graph); optional seed points. "
                 "'single tree' keeps only the largest tree, as APP2 and the paper's Table 3 protocol do.")

    def __init__(self, napari_viewer):
        from magicgui.widgets import CheckBox

        self.image = _layer_picker("Image", "image")
        self.seeds = _layer_picker("Points", "seeds (optional)", optional=True)
        self.single_tree = CheckBox(value=False, text="single tree (APP2 / paper protocol)")
        self.swc_file = FileEdit(mode="w", label="SWC file", filter="*.swc")
        self.save_button = PushButton(text="Save SWC")
        # optional scoring against a gold standard on the clean image (paper Table 3 protocol)
        self.clean = _layer_picker("Image", "clean image (evaluate)", optional=True)
        self.gold_file = FileEdit(mode="r", label="gold SWC (evaluate)", filter="*.swc")
        self.evaluate_button = PushButton(text="Evaluate trace")
        self.scores = Label(value="", label="scores")
        super().__init__(napari_viewer, [self.image, self.seeds, self.single_tree, self.swc_file,
                                         self.save_button, self.clean, self.gold_file, self.evaluate_button,
                                         self.scores])
        self.run_button.text = "Trace"
        self.save_button.changed.connect(self.save)
        self.evaluate_button.changed.connect(self.evaluate)
        self.trace_layer = None  # the Shapes layer made by the last Trace, what Save SWC writes

    def job(self):
        layer = _require(self.image.value, "an image layer to trace")
        seeds = _actions.seeds_from_points(self.seeds.value, layer)  # read the layers here, on the GUI thread
        data, scale, translate = np.asarray(layer.data), tuple(layer.scale), tuple(layer.translate)
        opts = dict(scale=scale, translate=translate, seeds=seeds, single_tree=bool(self.single_tree.value),
                    name=f"{layer.name} trace")
        return (lambda: _actions.trace_layer_data(data, **opts)), self._on_traced

    def _on_traced(self, layer_data):
        (lines, kwargs, _), = layer_data
        self.trace_layer = self.viewer.add_shapes(lines, **kwargs)
        self.status.value = _actions.trace_message(kwargs["metadata"]["swc"])

    def save(self, *_):
        try:
            layer = self.viewer.layers.selection.active
            if layer is None or "swc" not in getattr(layer, "metadata", {}):
                layer = _require(self.trace_layer, "a traced layer (press Trace first)")
            path = str(self.swc_file.value or "")
            if path in ("", "."):
                raise ValueError("choose an SWC file to save to")
            self.status.value = f"saved {_actions.save_trace(layer, path)}"
        except Exception as exc:
            _notify_error(exc)
            self.status.value = f"error: {exc}"

    def evaluate(self, *_):
        # a few tenths of a second on typical stacks: run inline rather than in a worker
        try:
            layer = _require(self.trace_layer, "a traced layer (press Trace first)")
            clean = _require(self.clean.value, "the clean image layer to evaluate on")
            gold = str(self.gold_file.value or "")
            if gold in ("", "."):
                raise ValueError("choose the gold-standard SWC file")
            results = _actions.evaluate_trace(layer, clean.data, gold, spacing=tuple(clean.scale))
            self.scores.value = "\n".join(f"{k}: {v:.3f}" for k, v in results.items())
        except Exception as exc:
            _notify_error(exc)
            self.status.value = f"error: {exc}"


def _model_name(choice: str, file_value) -> str | None:
    """A shipped model's name, or the path typed in the model-file field when that entry is chosen."""
    if choice != _actions.MODEL_FILE:
        return choice
    path = str(file_value or "")
    if path in ("", "."):
        raise ValueError("choose a shipped model, or pick a model file (.json / .safetensors)")
    return path.removesuffix(".json").removesuffix(".safetensors")


def _require(value, what: str):
    if value is None:
        raise ValueError(f"choose {what}")
    if getattr(value, "rgb", False):
        # napari keeps colour as a last axis of 3 or 4; mire's methods would read it as a third spatial axis
        raise ValueError(f"layer {value.name!r} is an RGB(A) image; mire works on one channel: split it first "
                         "(right-click the layer, Split RGB) and choose one channel")
    return value
