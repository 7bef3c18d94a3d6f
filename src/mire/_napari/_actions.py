"""The work behind each napari widget, as plain functions on arrays.

They return napari LayerData tuples ``(data, kwargs, layer_type)`` so they can be tested with
``napari.components.ViewerModel`` (no display) and called from a worker thread.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

MODEL_FILE = "(model file...)"


def _kwargs(name: str, scale=None, **extra) -> dict:
    kw = {"name": name, **extra}
    if scale is not None:
        kw["scale"] = tuple(float(s) for s in scale)
    return kw


def _pixels(data, dtype=np.float32, *, name: str = "image") -> np.ndarray:
    """A layer's pixels as ``dtype``, after the shared input checks: complex values, NaN and empty
    layers are refused in words (a bare cast would drop the imaginary part, or train on NaN)."""
    from mire._validate import check_image

    return np.asarray(check_image(data, name=name), dtype=dtype)


# ----------------------------------------------------------------------------- simulate
def simulate_layer(data, *, condition: str = "N2-B2", seed: int = 0, name: str = "simulated", scale=None):
    """Degrade ``data`` with the paper-2020 condition (blur + noise) -> one image layer."""
    from mire.optics import simulate

    out = simulate(_pixels(data, np.float64), condition=condition, seed=seed)
    return [(out.astype(np.float32), _kwargs(name, scale, colormap="magma"), "image")]


# ------------------------------------------------------------------------------ restore
def model_choices(kind: str) -> list[str]:
    """Shipped model names for ``kind`` ("restore" or "segment"), then an entry to pick a file."""
    try:
        from mire.models import available, load_metadata
    except ImportError:
        return [MODEL_FILE]
    names = []
    for n in available():
        meta = load_metadata(n)
        is_segmenter = "target" in meta  # segmenters record what they predict: boundaries / affinities
        if is_segmenter == (kind == "segment"):
            names.append(n)
    return names + [MODEL_FILE]


def restore_methods() -> list[str]:
    return ["tv", "rl", "wiener", "model"]


def restore_layer(data, *, method: str = "tv", psf_sigma: float = 0.8, psf_file: str | None = None,
                  weight: float | None = None, n_iter: int = 50, model: str | None = None,
                  name: str = "restored", scale=None):
    """Restore ``data`` with a classical method or a trained model -> one image layer."""
    from mire import restore
    from mire.optics import gaussian_psf, load_psf

    img = _pixels(data)
    if method == "model":
        if not model or model == MODEL_FILE:
            raise ValueError("choose a shipped model, or type the path of a model file in 'model'")
        axes = "ZYX"[-img.ndim:] if img.ndim <= 3 else None
        out = restore.Restorer.load(model).predict(img, axes=axes)
    else:
        psf = load_psf(psf_file) if psf_file else gaussian_psf(psf_sigma, ndim=img.ndim)
        if method == "tv":
            out = restore.tv_deconvolve(img, psf=psf, weight=weight, n_iter=n_iter)
        elif method == "rl":
            # read noise and offset are in RL's model; the iteration count is the automatic (hold-out)
            # stop's, with the widget's iterations as its ceiling
            out = restore.richardson_lucy(img, psf, max_iter=max(int(n_iter), 1), tv_weight=weight or 0.0)
        elif method == "wiener":
            out = restore.wiener(img, psf, balance=weight)
        else:
            raise ValueError(f"unknown method {method!r}; choose tv, rl, wiener or model")
    return [(np.asarray(out, dtype=np.float32), _kwargs(name, scale, colormap="magma"), "image")]


# ---------------------------------------------------------------------------- superres
def superres_layers(frames, *, factor: int = 2, method: str = "bayesian", psf_sigma: float = 1.0,
                    robust: bool = False, name: str = "frames"):
    """Multi-frame super-resolution of ``frames`` (first axis = frames) -> result and uncertainty layers."""
    from mire.superres import superresolve

    frames = _pixels(frames, np.float64, name="frames")
    if frames.ndim < 3:
        raise ValueError(f"frames must be a stack (T, Y, X) or (T, Z, Y, X), got shape {frames.shape}")
    result, info = superresolve(frames, factor=factor, method=method, psf_sigma=psf_sigma, robust=robust,
                                return_info=True)
    layers = [(np.asarray(result, np.float32), _kwargs(f"{name} super-resolved x{factor}"), "image")]
    sd = info.get("posterior_sd") if isinstance(info, dict) else None
    if sd is not None:
        layers.append((np.asarray(sd, np.float32),
                       _kwargs(f"{name} uncertainty (posterior SD)", colormap="viridis", visible=False), "image"))
    return layers


# ------------------------------------------------------------------------------- train
def train_model(image, target=None, *, task: str = "restoration", steps: int = 200, save_to: str = "mire-model",
                stop_event: threading.Event | None = None, callback=None, seed: int = 0) -> dict:
    """Train a small model from layers and save it; cancellable through ``stop_event``.

    Restoration: ``target`` is the clean image (pairs) or None (Noise2Void on ``image`` alone).
    Segmentation: ``target`` is a labels layer painted on a few slices; label 0 = unlabeled (ignored).
    Returns a dict with the saved path, the steps done and whether training was cancelled.
    """
    image = _pixels(image)
    ndim = 3 if image.ndim == 3 and min(image.shape) >= 16 else 2
    history: dict
    if task == "restoration":
        from mire.restore import Restorer

        model = Restorer("tiny", ndim=ndim)
        patch = _patch_for(image.shape[-ndim:], (16, 32, 32) if ndim == 3 else (64, 64), model.model.size_multiple)
        kwargs = dict(noisy=image, clean=None if target is None else _pixels(target, name="clean image"))
        history = model.train(**kwargs, patch=patch, epochs=1, steps_per_epoch=steps, batch_size=2, seed=seed,
                              progress=False, callback=callback, stop_event=stop_event)
    elif task == "segmentation":
        from mire.segment import Segmenter

        if target is None:
            raise ValueError("segmentation training needs a labels layer (paint a few slices)")
        model = Segmenter("tiny", ndim=ndim)
        patch = _patch_for(image.shape[-ndim:], (16, 64, 64) if ndim == 3 else (128, 128), model.model.size_multiple)
        # painted ground truth: 0 is "not painted" and is left out of the loss; membranes are where ids change
        history = model.train(image, np.asarray(target), patch=patch, ignore_label=0, epochs=1,
                              steps_per_epoch=steps, batch_size=2, seed=seed, progress=False, callback=callback,
                              stop_event=stop_event)
    else:
        raise ValueError(f"task must be 'restoration' or 'segmentation', got {task!r}")
    path = model.save(save_to)
    cancelled = bool(stop_event is not None and stop_event.is_set())
    return {"path": str(path), "steps": int(history.get("step", 0)), "cancelled": cancelled,
            "loss": history.get("loss", [])}


def _patch_for(shape, wanted, multiple) -> tuple:
    """The largest patch <= ``wanted`` that fits ``shape`` and is a multiple of the network's size step."""
    patch = tuple(min(w, s) // m * m for w, s, m in zip(wanted, shape, multiple))
    if min(patch) < 1:
        raise ValueError(f"image {tuple(shape)} is too small to train on (needs multiples of {tuple(multiple)})")
    return patch


# ----------------------------------------------------------------------------- segment
class SegmentSession:
    """Predict (or take) a boundary map once, agglomerate once to the top, then threshold instantly.

    ``labels(t)`` replays the merge history up to threshold ``t`` (no new prediction, no new
    agglomeration), which is what the threshold slider calls.
    """

    def __init__(self, data, *, model: str | None = None):
        from mire.segment import baseline_boundary_map, segment_boundaries

        data = np.asarray(data)
        self.fixed = None
        if model:
            from mire.segment.ffn import is_ffn_model

            if is_ffn_model(model):  # a flood-filling network: objects, not a merge hierarchy
                from mire.segment import FloodFiller

                self.fixed = FloodFiller.load(model).segment(data)
                return
            from mire.segment import Segmenter

            boundary = np.asarray(Segmenter.load(model).predict(data), dtype=np.float32)
            if boundary.ndim == data.ndim + 1:  # affinities: a voxel touching a cut edge is membrane
                from mire.segment import affinities_to_boundaries

                boundary = affinities_to_boundaries(boundary)
        elif np.issubdtype(data.dtype, np.floating) and data.min() >= 0 and data.max() <= 1:
            boundary = data.astype(np.float32)  # already a boundary probability map
        else:
            boundary = baseline_boundary_map(data, sigma=1.0)
        self.boundary = boundary
        _, self.fragments, result = segment_boundaries(boundary, threshold=[1.01], return_result=True)
        self.history = result.history

    def labels(self, threshold: float) -> np.ndarray:
        from mire.segment import segmentation_at

        if self.fixed is not None:  # FFN: the threshold slider has nothing to re-agglomerate
            return self.fixed

        return segmentation_at(self.fragments, self.history, float(threshold))


# --------------------------------------------------------------------------- proofread
class ProofreadSession:
    """A :class:`mire.segment.Proofreader` bound to one labels layer."""

    def __init__(self, seg, *, boundary=None, layer_name: str = ""):
        from mire.segment import Proofreader

        self.layer_name = layer_name
        self.proofreader = Proofreader(np.asarray(seg), boundary=boundary)

    def merge(self, ids) -> np.ndarray:
        self.proofreader.merge([int(i) for i in ids])
        return self.proofreader.seg

    def split(self, seeds) -> np.ndarray:
        seeds = np.asarray(seeds, dtype=int)
        ids = {int(self.proofreader.seg[tuple(s)]) for s in seeds}
        ids.discard(0)
        if len(ids) != 1:
            raise ValueError(f"all split seeds must lie inside one segment; they touch segments {sorted(ids)}")
        self.proofreader.split(ids.pop(), [tuple(s) for s in seeds])
        return self.proofreader.seg

    def undo(self) -> np.ndarray:
        if self.proofreader.undo() is None:
            raise ValueError("nothing to undo")
        return self.proofreader.seg

    def save_log(self, path) -> str:
        return str(self.proofreader.save_log(path))


# ---------------------------------------------------------------------------- evaluate
def evaluate(pred, gt, *, labels: bool) -> dict:
    """Metrics of ``pred`` against ``gt``: ARAND/VOI for label images, PSNR/SSIM for intensities."""
    from mire import metrics

    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} does not match ground truth shape {gt.shape}")
    if labels:
        s = metrics.segmentation_scores(gt, pred)  # EM protocol: GT 0 ignored by every score
        return {"adapted Rand error": s["arand_error"], "Rand precision": s["arand_precision"],
                "Rand recall": s["arand_recall"], "VOI split": s["voi_split"], "VOI merge": s["voi_merge"]}
    peak = float(np.max(gt))
    return {"PSNR (dB)": metrics.psnr(gt, pred, data_range=peak), "SSIM": metrics.ssim(gt, pred, data_range=peak)}


def save_table(path, results: dict) -> Path:
    from mire.io.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=2))
    return Path(path)


# ------------------------------------------------------------------------------- trace
def seeds_from_points(points_layer, image_layer) -> np.ndarray | None:
    """A Points layer's points as ``trace`` seeds: SWC order (x, y, z) in the image's pixels.

    napari points are stored in the points layer's data coordinates, (z, y, x) (or (y, x)); SWC and
    :func:`mire.trace.trace` want (x, y, z) in pixels / slices of the *image*. So: points -> world
    (points scale/translate) -> image pixels (inverse of the image scale/translate) -> reversed axes.
    Rotations/affines on the layers are not supported (the reader never sets them).
    """
    if points_layer is None or len(points_layer.data) == 0:
        return None
    pts = np.asarray(points_layer.data, dtype=float)
    ndim = image_layer.ndim
    if pts.shape[1] != ndim:
        raise ValueError(f"seed points have {pts.shape[1]} coordinates but the image is {ndim}D")
    world = pts * np.asarray(points_layer.scale, float) + np.asarray(points_layer.translate, float)
    pixels = (world - np.asarray(image_layer.translate, float)) / np.asarray(image_layer.scale, float)
    return pixels[:, ::-1].copy()  # (z, y, x) -> (x, y, z)


def trace_layer_data(data, *, scale=None, translate=None, seeds=None, single_tree: bool = False,
                     name: str = "trace", **trace_options):
    """Trace ``data`` with :func:`mire.trace.trace` -> one Shapes LayerData tuple of the tree's edges.

    The layer looks like an SWC file opened with the mire reader (one line per parent-child edge, the
    same :func:`mire._napari._io.swc_to_shapes`), carries the image's ``scale``/``translate`` so it
    sits on the image in world coordinates, and keeps the SWC array in ``metadata["swc"]`` for saving.
    ``seeds`` are (x, y, z) pixels as in SWC (see :func:`seeds_from_points`); the voxel spacing is
    ``scale`` (ZYX), so anisotropic stacks are traced in physical units.
    """
    from mire._napari._io import swc_to_shapes
    from mire.trace import trace

    image = np.asarray(data)
    spacing = None if scale is None else tuple(float(s) for s in scale)
    swc = trace(image, spacing=spacing, seeds=seeds, single_tree=single_tree, **trace_options)
    lines = swc_to_shapes(swc)
    if image.ndim == 2:  # SWC always has a z column (0 in 2D); a 2D image's shapes are (y, x)
        lines = [line[:, 1:] for line in lines]
    kw = _kwargs(name, scale, shape_type="line", edge_color="cyan", edge_width=1, ndim=image.ndim,
                 metadata={"swc": swc, "single_tree": bool(single_tree)})
    if translate is not None:
        kw["translate"] = tuple(float(t) for t in translate)
    return [(lines, kw, "shapes")]


def trace_layer(viewer, image_layer, *, single_tree: bool = False, seeds_layer=None, name: str | None = None,
                **trace_options):
    """Trace an image layer of ``viewer`` and add the tree as a Shapes layer; returns the new layer.

    The spacing comes from the image layer's scale, seeds from ``seeds_layer`` (a Points layer, may be
    None); an image with nothing to trace gives an empty layer, and a message in ``metadata["message"]``.
    """
    seeds = seeds_from_points(seeds_layer, image_layer)
    (lines, kw, _), = trace_layer_data(image_layer.data, scale=image_layer.scale, translate=image_layer.translate,
                                       seeds=seeds, single_tree=single_tree,
                                       name=name or f"{image_layer.name} trace", **trace_options)
    kw["metadata"]["message"] = trace_message(kw["metadata"]["swc"])
    return viewer.add_shapes(lines, **kw)


def trace_message(swc) -> str:
    """A one-line summary of a trace for the status line: nodes, trees, or why it is empty."""
    swc = np.asarray(swc)
    if len(swc) == 0:
        return "no neurite found: the trace is empty (try seeds, or restore the image first)"
    n_roots = int(np.sum(swc[:, 6] == -1))
    return f"{len(swc)} nodes in {n_roots} tree{'s' if n_roots != 1 else ''}"


def _layer_swc(layer) -> np.ndarray:
    """The SWC a traced Shapes layer keeps in ``metadata["swc"]``; a clear error for any other layer."""
    swc = getattr(layer, "metadata", {}).get("swc")
    if swc is None:
        raise ValueError(f"layer {layer.name!r} holds no trace: trace an image first (its SWC is kept "
                         "in the layer's metadata)")
    return np.asarray(swc)


def save_trace(layer, path) -> Path:
    """Write the SWC stored in a traced Shapes layer's ``metadata["swc"]`` (atomically, via mire.io)."""
    from mire.io import write_swc

    if not str(path).lower().endswith(".swc"):  # as `mire trace`: "tree" or "tree.txt" is no SWC file
        raise ValueError(f"the trace is saved as SWC: give a file name ending in .swc, got {str(path)!r}")
    write_swc(path, _layer_swc(layer))
    return Path(path)


def evaluate_trace(layer, clean, gold_path, *, spacing=None) -> dict:
    """Score a traced layer against a gold-standard SWC file on the clean image (the paper's protocol).

    Foreground precision/recall of the regions grown from both traces on ``clean``, and node
    precision/recall, from :func:`mire.trace.evaluate_tracing`.
    """
    from mire.io import read_swc
    from mire.trace import evaluate_tracing

    r = evaluate_tracing(np.asarray(clean), _layer_swc(layer), read_swc(gold_path), spacing=spacing)
    return {"precision": r["precision"], "recall": r["recall"], "node precision": r["node_precision"],
            "node recall": r["node_recall"]}
