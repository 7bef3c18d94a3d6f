"""Learned EM segmentation: a boundary or affinity network wrapped as an estimator.

``Segmenter`` trains a :mod:`mire.nets` U-Net on (image, instance labels) with the targets of
:mod:`mire.segment.targets` (masked binary cross-entropy), predicts boundary maps or affinities
tile by tile (:func:`mire.learn.predict_tiled`), and segments them with the post-processing of
:mod:`mire.segment.pipeline`, whose parameters are stored with the model. Files are
``<path>.safetensors`` (weights) + ``<path>.json`` (metadata), no pickle, like
:class:`mire.restore.Restorer`.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

from mire._validate import check_image
from mire.segment.targets import _check_offsets, affinities, boundaries, check_labels, ignore_mask

__all__ = ["Segmenter"]

FORMAT = "mire-segmenter"
FORMAT_VERSION = 1
TARGETS = ("boundaries", "affinities")
#: :meth:`Segmenter.adapt` resamples a volume only when its scale ratio to the training data is outside this
SCALE_BAND = (0.6, 1.67)
#: ``min_distance="auto"`` at the training data's scale (the value the shipped models were tuned with)
AUTO_MIN_DISTANCE = 3.0
DEFAULT_POST = {"threshold": 0.5, "scoring": None, "min_size": 0, "min_distance": 3.0, "seed_threshold": 0.5,
                "sigma": 1.0, "per_slice": False}


class Segmenter:
    """A boundary or affinity network with its normalization and post-processing.

    Parameters
    ----------
    config : dict or str, optional
        Network config or preset (see :func:`mire.nets.build_model`); default ``"fast"``. E.g.
        ``{**mire.nets.PRESETS["fast"], "block": "residual", "spacing": [30, 6, 6]}``: residual
        levels and in-plane kernels/pooling where Z is coarse (:class:`mire.nets.UNet`).
    ndim : {2, 3}
        2: a membrane network applied slice by slice (ssTEM, ISBI 2012); 3: a volume network.
    target : {"boundaries", "affinities"}
    offsets : sequence of int tuples, optional
        Affinity offsets (nearest neighbours first); default the nearest neighbours.
    percentiles : (float, float)
        Input intensity percentiles mapped to [0, 1].
    boundary_width : int
        Half-width of the boundary targets (see :func:`mire.segment.boundaries`).

    Examples
    --------
    >>> from mire.data import em_cells
    >>> image, labels = em_cells((64, 64), seed=0)
    >>> seg = Segmenter("tiny", ndim=2)
    >>> hist = seg.train(image, labels, patch=(32, 32), epochs=1, steps_per_epoch=2, progress=False)
    >>> seg.predict(image).shape, seg.segment(image).shape
    ((64, 64), (64, 64))
    """

    def __init__(self, config=None, *, ndim: int = 3, target: str = "boundaries", offsets=None,
                 percentiles=(1.0, 99.8), boundary_width: int = 1):
        from mire import __version__
        from mire.nets import build_model

        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if isinstance(config, dict) and "ndim" in config:
            ndim = int(config["ndim"])
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim}")
        offsets = _check_offsets(offsets, ndim) if target == "affinities" else None
        out_channels = len(offsets) if offsets else 1
        # a segmentation net predicts logits of a new quantity: never a residual on the input
        overrides = {"ndim": ndim, "in_channels": 1, "out_channels": out_channels, "residual": False}
        if isinstance(config, dict):
            self.model = build_model({**config, **overrides})
        else:
            self.model = build_model(config, **overrides)
        self.model.eval()
        self.ndim = ndim
        self.metadata = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": None, "axes": "ZYX"[-ndim:],
            "target": target, "offsets": [list(o) for o in offsets] if offsets else None,
            "boundary_width": int(boundary_width),
            "normalization": {"method": "percentile", "percentiles": [float(p) for p in percentiles]},
            "postprocess": dict(DEFAULT_POST, per_slice=ndim == 2), "network": self.model.config,
            "training": None, "metrics": {}, "mire_version": __version__,
        }

    @property
    def target(self) -> str:
        return self.metadata["target"]

    @property
    def offsets(self):
        o = self.metadata["offsets"]
        return None if o is None else [tuple(x) for x in o]

    def with_offsets(self, offsets, *, init: str = "copy", seed: int = 0) -> "Segmenter":
        """A copy of this affinity model that predicts other offsets, to fine-tune from.

        The trunk, the normalization and the post-processing are kept. A channel whose offset this
        model already predicts keeps its weights, so its output is unchanged until training; a new
        channel (e.g. a long-range offset, Lee et al. 2017) starts, with ``init="copy"``, as a
        copy of the channel of the nearest offset on the same axis and side (a long-range
        affinity is low wherever the nearest one is, a useful start), else as small random
        weights (near 0.5 everywhere). ``init="random"``: every new channel random.

        Parameters
        ----------
        offsets : sequence of int tuples
            The new model's offsets, nearest neighbours first (segmentation uses the first
            ``ndim`` channels).
        init : {"copy", "random"}
        seed : int
            Seed of the random channels.

        Returns
        -------
        Segmenter
        """
        from mire.nets import build_model, transfer_output_channels

        if self.target != "affinities":
            raise ValueError(f"with_offsets needs an affinity model, this one predicts {self.target}")
        if init not in ("copy", "random"):
            raise ValueError(f"init must be 'copy' or 'random', got {init!r}")
        new = _check_offsets(offsets, self.ndim)
        nearest = _check_offsets(None, self.ndim)
        if new[: self.ndim] != nearest:
            raise ValueError(f"the first {self.ndim} offsets must be the nearest neighbours {nearest} "
                             f"(segmentation reads them), got {new[: self.ndim]}")
        if len(set(new)) != len(new):
            raise ValueError(f"offsets repeat: {new}")
        old = self.offsets
        mapping = []
        for o in new:
            if o in old:
                mapping.append(old.index(o))
                continue
            match = None
            axes = np.flatnonzero(o).tolist()
            if init == "copy" and len(axes) == 1:
                ax, sign = axes[0], np.sign(o[axes[0]])
                same = [(abs(p[ax]), k) for k, p in enumerate(old)
                        if np.flatnonzero(p).tolist() == [ax] and np.sign(p[ax]) == sign]
                if same:
                    match = min(same)[1]
            mapping.append(match)
        seg = Segmenter.__new__(Segmenter)
        seg.ndim = self.ndim
        config = {**self.model.config, "out_channels": len(new)}
        seg.model = transfer_output_channels(self.model, build_model(config), mapping, seed=seed)
        seg.model.eval()
        seg.metadata = {**copy.deepcopy(self.metadata), "offsets": [list(o) for o in new],
                        "network": seg.model.config}
        seg.metadata["offsets_from"] = {"offsets": [list(o) for o in old], "channel_map": mapping, "init": init}
        return seg

    def init_body(self, path) -> "Segmenter":
        """Start from a self-supervised pretrained network (:func:`mire.learn.pretext.save_pretext`).

        Every weight but the output head is replaced by the pretrained one (the networks must be
        the same but for their output channels); the head keeps its fresh initialization, since
        the pretext head predicted intensities. Call before :meth:`train`. Returns ``self``.

        Parameters
        ----------
        path : str or Path
            Stem (or ``.json`` / ``.safetensors``) of the pretrained network.
        """
        from mire.learn.pretext import load_pretext
        from mire.nets import transfer_body

        state, meta = load_pretext(path)
        transfer_body(state, meta["network"], self.model)
        self.model.eval()
        self.metadata["pretrained"] = {"path": str(path), "weights_sha256": meta.get("weights_sha256"),
                                       "pretext": meta.get("pretext"), "training": meta.get("training")}
        return self

    # ------------------------------------------------------------------ training
    def _make_example(self, ignore_label, em_augment, background=0):
        from mire.segment.augment import blur_sections, contrast_jitter, microscope_change, misalign, missing_sections

        if em_augment not in (True, False, "microscope"):
            raise ValueError(f"em_augment must be True, False or 'microscope', got {em_augment!r}")

        width = self.metadata["boundary_width"]

        def make(crops, rng, group_index):
            img, lab = crops[0], np.rint(crops[1]).astype(np.int64)
            if em_augment:
                img = np.clip(img, 0, 1)
                img, _ = contrast_jitter(img, rng=rng, per_section=img.ndim == 3)
                if img.ndim == 3 and self.ndim == 3:
                    img, _ = missing_sections(img, rng=rng, p=0.03)
                    img, _ = blur_sections(img, rng=rng, p=0.03)
                    if rng.random() < 0.1:
                        img, lab = misalign(img, lab, rng=rng, max_shift=4)
                if em_augment == "microscope":  # whole-volume blur, lost resolution, noise
                    img, _ = microscope_change(img, rng=rng)
            if self.target == "boundaries":
                y = boundaries(lab, width=width, ignore_label=ignore_label, background=background)[None]
                mask = None if ignore_label is None else ignore_mask(lab, ignore_label=ignore_label)[None]
                mask = None if mask is None else mask.astype(np.float32)
            else:
                y, mask = affinities(lab, offsets=self.offsets, ignore_label=ignore_label, background=background)
            return img[None].astype(np.float32), y, mask

        return make

    def train(self, images, labels, *, patch=None, epochs: int = 10, steps_per_epoch: int = 100,
              batch_size: int = 4, lr: float = 1e-3, lr_decay: float = 0.9, ignore_label: int | None = None,
              em_augment: bool = True, sparse: bool = False, membrane_label: int | None = None, freeze_norm=None, val=None, checkpoint_dir=None, resume: bool = True,
              seed: int = 0, device=None, progress: bool = True, callback=None, stop_event=None,
              long_range_weight=None) -> dict:
        """Train (or fine-tune) on images and their instance labels.

        Parameters
        ----------
        images, labels : array-like or path, or lists of them
            Raw EM and instance labels of the same shape (0 = membrane/background). A 2D model
            samples 2D patches from the z-slices of a stack.
        patch : tuple of int, optional
            Default (16, 64, 64) in 3D, (128, 128) in 2D.
        ignore_label : int, optional
            Label of unannotated voxels, left out of the loss.
        sparse : bool
            Sparse painted labels (a few painted slices, e.g. from napari): label 0 is *unpainted*
            and left out of the loss (``ignore_label=0``; every affinity touching an unpainted voxel
            is masked), and every patch is drawn to contain painted voxels. Paint each painted
            slice completely, one id per body: faces between two ids are the membranes learned.
        membrane_label : int, optional
            With ``sparse``: the painted id of membrane (boundary) voxels, learned as affinity 0
            to every neighbour, the convention of dense labels' 0. Without it a painted slice
            has membranes only as the faces between ids, so a model trained on dense labels
            is taught that the voxels of a thick membrane (ssTEM) connect (see
            experiments/results/em_isbi_finetune_diag.md).
        freeze_norm : bool, optional
            Keep the batch-norm statistics (see :func:`mire.learn.train`); default: with ``sparse``
            (a few-shot fine-tune's small batches would overwrite them).
        em_augment : bool or "microscope"
            Contrast jitter (and for 3D: missing / blurred sections, misalignment) on top of the
            sampler's flips and rotations (:mod:`mire.segment.augment`); ``"microscope"`` adds
            whole-volume blur, lost resolution and noise (:func:`~mire.segment.augment.microscope_change`).
        long_range_weight : float, optional
            Affinity models with long-range channels: the loss is the nearest channels' mean
            cross-entropy plus this weight times the long-range channels' (auxiliary targets that
            leave the segmentation channels' own term as it is); default one mean over all channels.
        other parameters
            See :func:`mire.learn.train`; the loss is binary cross-entropy on logits, masked.

        Returns
        -------
        history : dict (see :func:`mire.learn.train`)
        """
        from mire.learn import PatchSampler, percentile_range
        from mire.learn import train as train_loop

        imgs = list(images) if isinstance(images, (list, tuple)) else [images]
        labs = list(labels) if isinstance(labels, (list, tuple)) else [labels]
        if len(imgs) != len(labs):
            raise ValueError(f"{len(imgs)} images but {len(labs)} label volumes")
        groups = []
        for k, (im, lb) in enumerate(zip(imgs, labs)):
            if isinstance(im, (str, Path)) or isinstance(lb, (str, Path)):
                from mire.io import imread

                im = imread(im) if isinstance(im, (str, Path)) else im
                lb = imread(lb) if isinstance(lb, (str, Path)) else lb
            im = check_image(im, name=f"image {k}", ndim=(2, 3))
            lb = check_labels(lb, name=f"labels {k}")
            if im.shape != lb.shape:
                raise ValueError(f"labels {k} shape {lb.shape} does not match image {k} shape {im.shape}")
            if im.ndim < self.ndim:
                raise ValueError(f"image {k} is {im.ndim}D; this {self.ndim}D model needs {self.ndim}D data")
            groups.append((im, lb.astype(np.float32)))
        patch = tuple(patch) if patch is not None else ((16, 64, 64) if self.ndim == 3 else (128, 128))
        if len(patch) != self.ndim:
            raise ValueError(f"patch {patch} must have {self.ndim} sizes for this {self.ndim}D model")
        bad = [p for p, m in zip(patch, self.model.size_multiple) if p % m]
        if bad:
            raise ValueError(f"patch {patch} must be divisible by the network's size multiple "
                             f"{self.model.size_multiple}")
        if sparse:
            if ignore_label not in (None, 0):
                raise ValueError(f"sparse labels ignore label 0 (unpainted); got ignore_label={ignore_label}")
            ignore_label = 0
            if membrane_label is not None and int(membrane_label) <= 0:
                raise ValueError(f"membrane_label must be a positive id (0 is unpainted), got {membrane_label}")
            if not any(np.any(g[1] > 0) for g in groups):
                raise ValueError("sparse labels: nothing is painted (every label is 0)")
        elif not any(np.any(g[1] > 0) for g in groups):
            # before: trained and saved a model that had seen no segment at all (exit 0)
            raise ValueError("labels: every label is 0, so there is no segment to learn (the wrong file, or "
                             "sparse labels without --sparse?)")
        pct = self.metadata["normalization"]["percentiles"]
        if self.metadata["normalization"].get("reference") is None:
            self.metadata["normalization"]["reference"] = self.reference_statistics([g[0] for g in groups])
        if (self.metadata.get("adaptation") or {}).get("intensity") or self.metadata["normalization"].get(
                "method") == "quantile":
            # an adapted model sees histogram-matched input: train on the same, each image matched itself
            groups = [(self._matched_input(im), lb) for im, lb in groups]
            ranges = [[(0.0, 1.0), (0.0, 1.0)] for _ in groups]
        else:
            # images by their own percentiles; labels untouched (lo 0, hi 1 is the identity)
            ranges = [[percentile_range(g[0], percentiles=pct), (0.0, 1.0)] for g in groups]
        if membrane_label is not None and not sparse:
            raise ValueError("membrane_label is for sparse painted labels (dense labels' membrane is 0)")
        background = int(membrane_label) if membrane_label is not None else 0
        # sparse: a patch is redrawn until it holds a painted voxel (label >= 1)
        sampler = PatchSampler(groups, patch=patch,
                               make_example=self._make_example(ignore_label, em_augment, background),
                               normalize=ranges, seed=seed, foreground=1.0 if sparse else 0.0,
                               foreground_level=1.0)
        loss = "bce"
        if long_range_weight is not None:
            if self.target != "affinities" or len(self.offsets) <= self.ndim:
                raise ValueError("long_range_weight needs an affinity model with long-range offsets")
            loss = _split_bce(self.ndim, float(long_range_weight))
        history = train_loop(self.model, sampler, loss=loss, lr=lr, lr_decay=lr_decay, epochs=epochs,
                             steps_per_epoch=steps_per_epoch, batch_size=batch_size, val=val,
                             checkpoint_dir=checkpoint_dir, resume=resume, seed=seed, device=device,
                             progress=progress, callback=callback, stop_event=stop_event,
                             freeze_norm=bool(sparse if freeze_norm is None else freeze_norm))
        self.metadata["training"] = {
            "patch": list(patch), "epochs": epochs, "steps_per_epoch": steps_per_epoch, "batch_size": batch_size,
            "lr": lr, "lr_decay": lr_decay, "loss": "bce", "ignore_label": ignore_label, "em_augment": em_augment,
            "sparse": bool(sparse), "membrane_label": membrane_label, "freeze_norm": bool(sparse if freeze_norm is None else freeze_norm),
            "painted_voxels": int(sum(np.count_nonzero(g[1]) for g in groups)) if sparse
            else None,
            "steps": history["step"], "final_loss": history["loss"][-1] if history["loss"] else None,
            "long_range_weight": long_range_weight,
            "fine_tuned_from": self.metadata.get("training"),
        }
        self.model.eval()
        return history

    # ---------------------------------------------------------------- prediction
    def predict(self, image, *, tile=None, overlap=None, batch_size: int = 1, device=None,
                normalization=None, intensity_map=None) -> np.ndarray:
        """Boundary probabilities (``image.shape``) or affinities (``(C, *image.shape)``), float32 in [0, 1].

        A 2D model applied to a (Z, Y, X) stack predicts slice by slice (affinities then have the
        2D channels only). Normalization uses the percentiles of the whole input, or
        ``normalization``: the ``(low, high)`` intensities mapped to 0 and 1 (blockwise runs pass
        the whole volume's, so that every block is mapped the same way).
        """
        from mire._torch import default_device
        from mire.learn import predict_tiled
        from mire.learn.normalize import input_range
        from mire.learn.tiling import default_tiling

        img = check_image(image, name="image", ndim=(2, 3))
        if img.ndim < self.ndim:
            raise ValueError(f"image is {img.ndim}D; this {self.ndim}D model needs a {self.ndim}D image")
        device = torch.device(device) if device is not None else default_device()
        self.model.to(device).eval()
        lo, hi = input_range(img, normalization=normalization,
                             percentiles=self.metadata["normalization"]["percentiles"])
        if img.ndim == self.ndim:
            stack, spatial = img[None], img.shape
        else:  # a 2D model over a (Z, Y, X) stack: slice by slice
            stack, spatial = img, img.shape[1:]
        n_out = int(self.model.config["out_channels"])
        out = np.zeros((len(stack), n_out) + tuple(spatial), np.float32)
        tile, overlap = default_tiling(spatial, tile=tile, overlap=overlap)
        zoom = float((self.metadata.get("adaptation") or {}).get("zoom") or 1.0)
        knots = self._intensity_knots(img, lo, hi, intensity_map)
        preprocess = self._preprocess(lo, hi, knots)
        if zoom != 1.0:  # scale adaptation: the network sees the volume at its training scale
            return self._predict_zoomed(img, zoom, tile=tile, overlap=overlap, batch_size=batch_size,
                                        device=device, normalization=(lo, hi), intensity_map=knots)
        for k in range(len(stack)):
            predict_tiled(self.model, stack[k][None], tile=tile, overlap=overlap, batch_size=batch_size,
                          device=device, out=out[k], preprocess=preprocess)
        # tiles are blended as logits, then squashed once
        out = (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
        if self.target == "boundaries":
            out = out[:, 0]
            return out[0] if img.ndim == self.ndim else out
        if img.ndim == self.ndim:
            return out[0]
        return np.moveaxis(out, 1, 0)  # (C, Z, Y, X) for a 2D model over a stack

    def _intensity_knots(self, image, lo, hi, given=None):
        """The histogram-matching map of ``image`` (``{"x", "y"}`` knots) or None: ``given``, else
        the one :meth:`adapt` stored, else, for a model whose normalization method is
        ``"quantile"``, the map of ``image``'s own quantiles onto the training data's."""
        if given is not None:
            return given
        stored = (self.metadata.get("adaptation") or {}).get("intensity")
        if stored:
            return stored
        norm = self.metadata["normalization"]
        if norm.get("method") == "quantile" and (norm.get("reference") or {}).get("quantiles"):
            from mire.segment.adapt import intensity_quantiles, quantile_map

            x, y = quantile_map(intensity_quantiles(image, lo=lo, hi=hi), norm["reference"]["quantiles"])
            return {"x": x.tolist(), "y": y.tolist()}
        return None

    def _preprocess(self, lo, hi, knots=None):
        """Network input from raw intensities: ``(x - lo) / (hi - lo)``, then the histogram-matching
        map ``knots`` (see :meth:`_intensity_knots`) if any."""
        if not knots:
            return lambda x: ((x - lo) / (hi - lo)).astype(np.float32)
        xs, ys = np.asarray(knots["x"], np.float64), np.asarray(knots["y"], np.float64)
        return lambda x: np.interp((x - lo) / (hi - lo), xs, ys).astype(np.float32)

    def _predict_zoomed(self, img, zoom, *, normalization, **kw):
        """:meth:`predict` on ``img`` resampled by ``zoom`` (in-plane only for a 2D model over a
        stack), the output resampled back to ``img``'s grid (linear)."""
        from scipy import ndimage as ndi

        factors = (1.0,) * (img.ndim - self.ndim) + (zoom,) * self.ndim
        small = ndi.zoom(np.asarray(img, np.float32), factors, order=1)
        if any(s < m for s, m in zip(small.shape[-self.ndim:], self.model.size_multiple)):
            raise ValueError(f"zoom {zoom:.3g} makes the image {small.shape}, smaller than the network needs")
        ad = self.metadata.pop("adaptation")
        try:
            self.metadata["adaptation"] = dict(ad, zoom=1.0)
            prob = self.predict(small, normalization=normalization, **kw)
        finally:
            self.metadata["adaptation"] = ad
        lead = prob.ndim - img.ndim
        back = (1.0,) * lead + tuple(n / m for n, m in zip(img.shape, prob.shape[lead:]))
        out = ndi.zoom(prob, back, order=1, grid_mode=False)
        # zoom's rounding can miss the target shape by a voxel: crop or edge-pad to it
        out = out[(slice(None),) * lead + tuple(slice(0, n) for n in img.shape)]
        pad = [(0, 0)] * lead + [(0, n - m) for n, m in zip(img.shape, out.shape[lead:])]
        return np.clip(np.pad(out, pad, mode="edge"), 0, 1).astype(np.float32)

    def _matched_input(self, image) -> np.ndarray:
        """``image`` as the network sees it after histogram matching to the reference (float32)."""
        from mire.learn.normalize import input_range
        from mire.segment.adapt import intensity_quantiles, quantile_map

        lo, hi = input_range(image, percentiles=self.metadata["normalization"]["percentiles"])
        x, y = quantile_map(intensity_quantiles(image, lo=lo, hi=hi),
                            self.metadata["normalization"]["reference"]["quantiles"])
        return np.interp((np.asarray(image, np.float64) - lo) / (hi - lo), x, y).astype(np.float32)

    # ---------------------------------------------------------------- adaptation
    def reference_statistics(self, images) -> dict:
        """The training data's intensity quantiles (after the model's percentile normalization,
        pooled over ``images``) and correlation length, which :meth:`adapt` maps a new volume to."""
        from mire.learn.normalize import input_range
        from mire.segment.adapt import correlation_length, intensity_quantiles

        pct = self.metadata["normalization"]["percentiles"]
        qs, lengths = [], []
        for im in images:
            lo, hi = input_range(im, percentiles=pct)
            qs.append(intensity_quantiles(im, lo=lo, hi=hi))
            try:
                lengths.append(correlation_length(im))
            except ValueError:  # too small to measure: no scale reference from this one
                pass
        return {"quantiles": np.mean(qs, axis=0).round(6).tolist(),
                "correlation_length": float(np.exp(np.mean(np.log(lengths)))) if lengths else None}

    def adapt(self, volume, *, intensity: bool = True, batchnorm: bool = False, scale: bool = True,
              tile=None, device=None) -> "Segmenter":
        """Adapt the model to an unlabeled volume, in place; returns ``self``.

        Parameters
        ----------
        volume : array-like
            The new, unlabeled raw EM (what will be segmented).
        intensity : bool
            Histogram matching: the volume's intensity quantiles (after the percentile
            normalization) are mapped onto the training data's
            (``metadata["normalization"]["reference"]``) by a monotone piecewise-linear map
            applied before the network. A volume with the training statistics gets the identity.
        batchnorm : bool
            Recompute the batch-norm statistics on the volume
            (:func:`mire.segment.adapt.reestimate_batchnorm`); changes the weights' buffers.
        scale : bool
            Resample the volume before the network by ``reference_length / volume_length``
            (:func:`mire.segment.adapt.correlation_length`) and the output back; applied only when
            the ratio is outside :data:`SCALE_BAND` (0.6 .. 1.67): inside it resampling cost up to
            0.03 ARAND on the gala volumes, outside it (cells 1.9x and 2.3x larger) it took the
            leave-one-out model from 0.16 to 0.10 and from 0.21 to 0.03
            (``experiments/results/em_adaptation_scale.md``; the band was set on those runs).
        tile, device
            Batch-norm re-estimation tiles (default about 32 x 128 x 128) and device.

        Notes
        -----
        What each part does on held-out volumes and simulated microscope changes is measured in
        ``experiments/results/em_adaptation.md``; the defaults follow those measurements.
        Settings are recorded in ``metadata["adaptation"]`` and saved with the model.
        """
        from mire.learn.normalize import input_range
        from mire.segment.adapt import correlation_length, intensity_quantiles, quantile_map, reestimate_batchnorm

        vol = check_image(volume, name="volume", ndim=(2, 3))
        if vol.ndim < self.ndim:
            raise ValueError(f"volume is {vol.ndim}D; this {self.ndim}D model needs a {self.ndim}D volume")
        ref = self.metadata["normalization"].get("reference")
        if (intensity or scale) and not ref:
            raise ValueError("this model stores no reference statistics of its training data "
                             "(metadata['normalization']['reference']); set them with "
                             "model.metadata['normalization']['reference'] = model.reference_statistics(images)")
        lo, hi = input_range(vol, percentiles=self.metadata["normalization"]["percentiles"])
        adaptation = {"intensity": None, "zoom": 1.0, "batchnorm": False}
        self.metadata["adaptation"] = adaptation
        if intensity:
            x, y = quantile_map(intensity_quantiles(vol, lo=lo, hi=hi), ref["quantiles"])
            adaptation["intensity"] = {"x": x.tolist(), "y": y.tolist()}
        if scale:
            ratio = float(ref["correlation_length"]) / correlation_length(vol)
            adaptation["measured_zoom"] = ratio
            if not SCALE_BAND[0] <= ratio <= SCALE_BAND[1]:
                adaptation["zoom"] = float(np.clip(ratio, 0.25, 4.0))
        if batchnorm:
            from scipy import ndimage as ndi

            z = adaptation["zoom"]
            src = vol if z == 1.0 else ndi.zoom(vol.astype(np.float32), (1.0,) * (vol.ndim - self.ndim)
                                                 + (z,) * self.ndim, order=1)
            pre = self._preprocess(lo, hi, self._intensity_knots(vol, lo, hi))
            n = reestimate_batchnorm(self.model, [src] if src.ndim == self.ndim else list(src), preprocess=pre,
                                     tile=tile, device=device)
            adaptation["batchnorm"] = n > 0
        return self

    def segment(self, image, *, return_probabilities: bool = False, **postprocess):
        """Predict and post-process into instance labels.

        ``postprocess`` overrides the stored parameters (``threshold``, ``scoring``, ``min_size``,
        ``min_distance``, ``seed_threshold``, ``sigma``, ``per_slice``); a list of thresholds
        returns a list of segmentations.
        """
        from mire.segment.pipeline import segment_affinities, segment_boundaries

        params = self._postprocess(postprocess)
        prob = self.predict(image)
        params["min_distance"] = self._min_distance(params["min_distance"], image)
        kw = {k: params[k] for k in ("min_size", "min_distance", "seed_threshold", "sigma")}
        if self.target == "boundaries":
            seg, _, result = segment_boundaries(prob, threshold=params["threshold"],
                                                scoring=params["scoring"] or "mean", return_result=True,
                                                per_slice=bool(params["per_slice"]) and prob.ndim == 3, **kw)
        else:
            if self.ndim == 2 and np.ndim(image) == 3:
                raise ValueError("a 2D affinity model over a stack: segment the slices one by one")
            seg, _, result = segment_affinities(prob, thresholds=params["threshold"], return_result=True,
                                                scoring=params["scoring"] or "median", **kw)
        # what "auto" resolved to on this volume
        self.last_settings = dict(params, threshold=result.thresholds if not np.isscalar(params["threshold"])
                                  else result.thresholds[0])
        return (seg, prob) if return_probabilities else seg

    def _min_distance(self, value, image) -> float:
        """``"auto"``: :data:`AUTO_MIN_DISTANCE` voxels scaled by the volume's correlation length over
        the training data's (cells twice as large get seeds twice as far apart), in [1.5, 12]."""
        from mire.segment.adapt import correlation_length, is_auto

        if isinstance(value, str) and value == "dynamic":    # seeds by their dynamic: no spacing to scale
            return value
        if not is_auto(value):
            return float(value)
        ref = (self.metadata["normalization"].get("reference") or {}).get("correlation_length")
        if not ref:
            return AUTO_MIN_DISTANCE
        shape = np.shape(image)
        window = tuple(slice(max(0, (n - 96) // 2), max(0, (n - 96) // 2) + min(n, 96)) for n in shape)
        length = correlation_length(np.asarray(image[window], dtype=np.float32))
        return float(np.clip(AUTO_MIN_DISTANCE * length / float(ref), 1.5, 12.0))

    def _postprocess(self, overrides) -> dict:
        params = dict(self.metadata["postprocess"])
        unknown = set(overrides) - set(params)
        if unknown:
            raise TypeError(f"unknown post-processing option(s) {sorted(unknown)}; use {sorted(params)}")
        params.update(overrides)
        return params

    # --------------------------------------------------------- larger than memory
    def _weights_digest(self) -> str:
        """SHA-1 of the weights: a resumed blockwise run must be from the same network."""
        import hashlib

        digest = hashlib.sha1()
        for t in self.model.state_dict().values():
            digest.update(t.detach().cpu().numpy().tobytes())
        return digest.hexdigest()

    def predict_blockwise(self, image, *, block_shape, halo=32, out=None, reduce: str = "max",
                          normalization=None, scheduler=None, workers=None, progress: bool = False,
                          resume: bool = True):
        """Boundary map of a volume larger than memory, predicted block by block.

        The input's intensity range is computed once, from a strided subsample of the whole
        volume (:func:`mire.learn.percentile_range`), and every block is normalized with it, as
        :meth:`predict` normalizes a whole input. Each block is predicted with ``halo`` voxels of
        context that are cut off again (:func:`mire.blockwise.map_blocks`). An affinity model's
        affinities become a boundary map in each block (:func:`mire.segment.affinities_to_boundaries`
        with ``reduce``), so that :func:`mire.segment.segment_blockwise` can stitch it.

        Parameters
        ----------
        image : (Z, Y, X) or (Y, X) array-like
            Raw EM: numpy, zarr, dask or h5py (read one haloed block at a time).
        block_shape, halo : int or tuple of int
            Blocks and their context; a 2D model over a stack needs no context along z. On ISBI
            2012 slices (em2d-membrane, 128-pixel blocks) the map differs from a whole-image
            prediction by 2e-3 on average with a 16-pixel halo, 1.5e-4 with 32 (the network sees
            further than 16 pixels).
        out : str, Path or zarr array, optional
            As in :func:`mire.blockwise.map_blocks` (a path run resumes when killed).
        reduce : {"max", "mean"}
            Affinity models only, see :func:`mire.segment.affinities_to_boundaries`; ``"max"`` is
            what :func:`mire.segment.segment_affinities` floods.
        normalization : (float, float), optional
            The intensities mapped to 0 and 1; default the model's percentiles of ``image``.
        scheduler, workers, progress, resume
            As in :func:`mire.blockwise.map_blocks`.

        Returns
        -------
        float32 boundary map of ``image.shape`` (numpy, or the written zarr array).

        Examples
        --------
        >>> from mire.data import em_cells
        >>> image, _ = em_cells((64, 64), seed=0)
        >>> seg = Segmenter("tiny", ndim=2)
        >>> b = seg.predict_blockwise(image, block_shape=32, halo=16)
        >>> bool(np.allclose(b, seg.predict(image), atol=1e-4))
        True
        """
        from functools import partial

        from mire.blockwise import map_blocks

        if reduce not in ("max", "mean"):
            raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
        lo, hi, halo, token, knots = self._blockwise_setup(image, halo, normalization, reduce)
        return map_blocks(partial(_boundary_block, segmenter=self, normalization=(lo, hi), reduce=reduce,
                                  intensity_map=knots), image,
                          block_shape=block_shape, halo=halo, out=out, dtype=np.float32,
                          scheduler=scheduler, workers=workers, progress=progress, resume=resume, token=token)

    def _blockwise_setup(self, image, halo, normalization, what):
        """Checks, the whole volume's intensity range, the per-axis halo and a resume token."""
        import hashlib
        import json

        from mire.learn.normalize import input_range

        if len(image.shape) not in (2, 3) or len(image.shape) < self.ndim:
            raise ValueError(f"image must be {self.ndim}D{' or 3D' if self.ndim == 2 else ''} for this "
                             f"{self.ndim}D model, got shape {tuple(image.shape)}")
        lo, hi = input_range(image, normalization=normalization,
                             percentiles=self.metadata["normalization"]["percentiles"])
        ndim = len(image.shape)
        halo = np.broadcast_to(np.asarray(halo, dtype=int), (ndim,)).copy()
        if ndim > self.ndim:
            halo[0] = 0  # a 2D model predicts each slice on its own
        # one histogram map for the whole volume (its strided subsample), as for the intensity range
        knots = self._intensity_knots(image, lo, hi)
        token = hashlib.sha1(json.dumps([lo, hi, what, self._weights_digest(), self.metadata.get("adaptation"),
                                         knots]).encode()).hexdigest()[:16]
        return lo, hi, tuple(int(h) for h in halo), token, knots

    def _affinities_blockwise(self, image, *, block_shape, halo=32, out=None, scheduler=None, workers=None,
                              progress: bool = False, resume: bool = True):
        """The nearest-neighbour affinity channels (``(ndim, *image.shape)``) of an affinity model whose
        dimension is the image's, predicted block by block (long-range channels are dropped)."""
        from functools import partial

        from mire.blockwise import map_blocks

        ndim = len(image.shape)
        if self.target != "affinities" or ndim != self.ndim:
            raise ValueError(f"nearest-neighbour affinities need a {ndim}D affinity model")
        lo, hi, halo, token, knots = self._blockwise_setup(image, halo, None, "affinities")
        return map_blocks(partial(_affinity_block, segmenter=self, normalization=(lo, hi), intensity_map=knots),
                          image,
                          block_shape=block_shape, halo=halo, out=out, dtype=np.float32, channels=ndim,
                          scheduler=scheduler, workers=workers, progress=progress, resume=resume, token=token)

    def segment_blockwise(self, image, *, block_shape, halo=16, predict_halo=32, out=None, reduce: str = "max",
                          stitch="graph", axes=None, pixel_size=None, scheduler=None, workers=None,
                          progress: bool = False, resume: bool = True, boundary_map=None, affinities=None,
                          **postprocess):
        """:meth:`segment` for volumes larger than memory: blockwise prediction, then stitching.

        :meth:`predicted_scratch` writes the boundary map (and, for an affinity model of the
        image's dimension, its nearest-neighbour affinities) to a scratch zarr (beside ``out``
        when it is a path, else a temporary folder), :func:`mire.segment.segment_blockwise`
        segments it with the model's stored post-processing, and the scratch is removed. A
        killed run with a path ``out`` resumes from the scratch and from the segmentation's own
        intermediate results.

        Parameters
        ----------
        image : (Z, Y, X) or (Y, X) array-like
            Raw EM (numpy, zarr, dask, h5py).
        block_shape, halo
            Blocks and their context in the segmentation (:func:`mire.segment.segment_blockwise`).
        predict_halo : int or tuple of int
            Context of each block's prediction (:meth:`predict_blockwise`).
        out, axes, pixel_size, stitch, scheduler, workers, progress, resume
            As in :func:`mire.segment.segment_blockwise`.
        reduce : {"max", "mean"}
            Affinity models: how affinities become the boundary map that is segmented.
        boundary_map, affinities : array-like, optional
            What :meth:`predicted_scratch` yields for ``image``, made earlier: segmented without
            predicting again (e.g. at several thresholds). ``affinities`` (``None`` for boundary
            models) scores the fragments' faces; without it they are scored on the boundary map.
        postprocess
            Overrides of the stored post-processing (one ``threshold``).

        Returns
        -------
        uint32 labels (numpy, or the written zarr array).

        Notes
        -----
        An affinity model of the image's dimension is segmented as :meth:`segment` does it:
        watershed fragments of the boundary map its affinities make (``reduce``), faces scored
        by ``1 - affinity`` (with ``stitch="graph"``; ``"overlap"`` scores them on the boundary
        map). A 2D affinity model over a stack is segmented from its boundary map, faces scored
        ``(b[u] + b[v]) / 2``.

        Examples
        --------
        >>> from mire.data import em_cells
        >>> from mire.metrics import adapted_rand_error
        >>> image, _ = em_cells((64, 64), seed=0)
        >>> seg = Segmenter("tiny", ndim=2)
        >>> labels = seg.segment_blockwise(image, block_shape=32, halo=16)
        >>> bool(adapted_rand_error(seg.segment(image), labels)[0] < 0.01)
        True
        """
        from mire.segment.chunked import segment_blockwise

        params = self._postprocess(postprocess)
        self._blockwise_options(params, len(image.shape))  # bad options fail before any work
        if isinstance(out, (str, Path)) and Path(out).exists():  # before the prediction, not after
            raise FileExistsError(f"output {out} exists; remove it or choose another name")
        if boundary_map is not None and tuple(boundary_map.shape) != tuple(image.shape):
            raise ValueError(f"boundary_map shape {tuple(boundary_map.shape)} does not match image shape "
                             f"{tuple(image.shape)}")
        if affinities is not None and boundary_map is None:
            raise ValueError("affinities are given with their boundary_map (both from predicted_scratch)")
        predicted = nullcontext((boundary_map, affinities)) if boundary_map is not None else self.predicted_scratch(
            image, block_shape=block_shape, halo=predict_halo, out=out, reduce=reduce, scheduler=scheduler,
            workers=workers, progress=progress, resume=resume)
        with predicted as (bmap, affs):
            return segment_blockwise(bmap, block_shape=block_shape, halo=halo, out=out, axes=axes,
                                     pixel_size=pixel_size, stitch=stitch, scheduler=scheduler, workers=workers,
                                     progress=progress, resume=resume,
                                     affinities=affs if stitch == "graph" else None,
                                     **self._blockwise_options(params, len(image.shape), image))

    def _blockwise_options(self, params, ndim, image=None) -> dict:
        """The stored post-processing as :func:`mire.segment.segment_blockwise` options."""
        if not np.isscalar(params["threshold"]):
            raise ValueError("segment_blockwise takes one threshold; run it once per threshold")
        from mire.segment.adapt import AUTO, is_auto

        return dict(threshold=AUTO if is_auto(params["threshold"]) else float(params["threshold"]),
                    seed_threshold=params["seed_threshold"],
                    min_distance=params["min_distance"] if image is None else self._min_distance(
                        params["min_distance"], image), sigma=params["sigma"],
                    per_slice=bool(params["per_slice"]) and ndim == 3, min_size=params["min_size"],
                    scoring=params["scoring"] or ("mean" if self.target == "boundaries" else "median"))

    @contextmanager
    def predicted_scratch(self, image, *, block_shape, halo=32, out=None, reduce: str = "max", scheduler=None,
                          workers=None, progress: bool = False, resume: bool = True):
        """The blockwise prediction in a scratch zarr, open for the ``with`` block, then removed.

        Yields ``(boundary_map, affinities)``: the :meth:`predict_blockwise` boundary map, and
        for an affinity model of the image's dimension its nearest-neighbour affinities
        (``(ndim, *image.shape)``; the map is then converted from them,
        :func:`mire.segment.affinities_to_boundaries_blockwise`), else ``None``. The scratch is
        ``.<name>.predict/`` beside a path ``out`` (kept when the block fails, so that a rerun
        with the same model and blocks reuses the prediction), else a temporary folder.
        """
        import zarr

        from mire.segment.affinity_blocks import affinities_to_boundaries_blockwise
        from mire.segment.chunked import scratch_folder

        keep_affinities = self.target == "affinities" and len(image.shape) == self.ndim
        fingerprint = dict(weights=self._weights_digest(), adaptation=self.metadata.get("adaptation"),
                           shape=list(image.shape),
                           block=np.ravel(block_shape).tolist(), halo=np.ravel(halo).tolist(), reduce=reduce,
                           affinities=keep_affinities)
        run = dict(scheduler=scheduler, workers=workers, progress=progress, resume=resume)
        with scratch_folder(out, fingerprint, resume=resume, suffix="predict") as folder:
            scratch = folder / "boundary.zarr"
            affs = None
            if keep_affinities:
                aff_path = folder / "affinities.zarr"
                if not aff_path.exists():  # else an interrupted run finished the prediction
                    self._affinities_blockwise(image, block_shape=block_shape, halo=halo, out=aff_path, **run)
                affs = zarr.open_array(str(aff_path), mode="r")
                if not scratch.exists():
                    affinities_to_boundaries_blockwise(affs, block_shape=block_shape, reduce=reduce, out=scratch,
                                                       **run)
            elif not scratch.exists():
                self.predict_blockwise(image, block_shape=block_shape, halo=halo, out=scratch, reduce=reduce, **run)
            yield zarr.open_array(str(scratch), mode="r"), affs

    # ------------------------------------------------------------------- files
    def save(self, path) -> Path:
        """Write ``<path>.safetensors`` and ``<path>.json`` atomically; returns the stem."""
        from mire.learn.modelfile import save_model

        return save_model(path, self.model, self.metadata, fmt=FORMAT)

    @classmethod
    def load(cls, name_or_path) -> "Segmenter":
        """Load a shipped model by name (:func:`mire.models.available`) or a saved one by path."""
        from mire.learn.modelfile import load_weights, read_model_metadata

        meta, meta_path, weights_path = read_model_metadata(
            name_or_path, fmt=FORMAT, version=FORMAT_VERSION, kind="segmenter",
            required=("network", "target", "normalization", "postprocess"))
        try:
            seg = cls(meta["network"], target=meta["target"], offsets=meta.get("offsets"),
                      percentiles=meta["normalization"]["percentiles"],
                      boundary_width=meta.get("boundary_width", 1))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{meta_path}: invalid network description: {exc}") from None
        load_weights(seg.model, meta, meta_path, weights_path)
        seg.metadata.update({k: v for k, v in meta.items() if k != "weights_sha256"})
        return seg

    def __repr__(self):
        from mire.nets import count_parameters

        return (f"Segmenter({self.metadata.get('name') or 'unnamed'!r}, target={self.target!r}, ndim={self.ndim}, "
                f"parameters={count_parameters(self.model)})")


def _split_bce(n_nearest, weight):
    """Masked BCE of the first ``n_nearest`` channels plus ``weight`` times that of the others."""
    from mire.learn.losses import pixel_loss

    bce = pixel_loss("bce")

    def part(mask, sl):  # a one-channel mask is shared by every channel
        return None if mask is None else (mask if mask.shape[1] == 1 else mask[:, sl])

    def loss(pred, target, mask=None):
        near, far = slice(0, n_nearest), slice(n_nearest, None)
        return (bce(pred[:, near], target[:, near], part(mask, near))
                + weight * bce(pred[:, far], target[:, far], part(mask, far)))

    return loss


def _affinity_block(piece, *, segmenter, normalization, intensity_map=None):
    """One block of :meth:`Segmenter._affinities_blockwise`: the nearest-neighbour channels."""
    return segmenter.predict(piece, normalization=normalization, intensity_map=intensity_map)[: piece.ndim]


def _boundary_block(piece, *, segmenter, normalization, reduce, intensity_map=None):
    """One block of :meth:`Segmenter.predict_blockwise`: the boundary map of a haloed window."""
    from mire.segment.watershed import affinities_to_boundaries

    prob = segmenter.predict(piece, normalization=normalization, intensity_map=intensity_map)
    if segmenter.target == "boundaries":
        return prob
    if prob.ndim == piece.ndim + 1 and prob.shape[0] >= piece.ndim:
        return affinities_to_boundaries(prob, reduce=reduce)
    # a 2D affinity model over a stack: (C, Z, Y, X) with the in-plane channels only
    return np.stack([affinities_to_boundaries(prob[:, z], reduce=reduce) for z in range(piece.shape[0])])
