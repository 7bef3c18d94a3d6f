"""Learned restoration: a trained network wrapped as an estimator (train / predict / save / load).

``Restorer`` keeps a network from :mod:`mire.nets` together with everything needed to apply it
correctly: its axes, how inputs are normalized, and how it was trained. Files are
``<path>.safetensors`` (weights) + ``<path>.json`` (metadata); no pickle anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mire._validate import check_axes, check_image

FORMAT = "mire-restorer"
FORMAT_VERSION = 1
_SPATIAL = "ZYX"
_LOOP = "TC"


class Restorer:
    """A restoration network with its axes, normalization and training record.

    Parameters
    ----------
    config : dict or str, optional
        Network config (see :func:`mire.nets.build_model`) or preset name: ``"restore"`` (the
        default: CPU-fast, no batch norm, direct output), ``"fast"``, ``"paper"`` or ``"tiny"``.
    ndim : {2, 3}
        Spatial dimensions when ``config`` does not say.
    axes : str, optional
        The model's spatial axes: ``"ZYX"`` (3D) or ``"YX"`` (2D); default from ``ndim``.
    percentiles : (float, float)
        Inputs are mapped from these percentiles to [0, 1] before the network and back after.

    Examples
    --------
    >>> import numpy as np
    >>> r = Restorer("tiny", ndim=2)
    >>> noisy = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    >>> r.predict(noisy, axes="YX").shape
    (40, 40)
    """

    def __init__(self, config=None, *, ndim: int = 3, axes: str | None = None, percentiles=(1.0, 99.8)):
        from mire.nets import build_model

        config = "restore" if config is None else config
        if isinstance(config, dict) and "ndim" in config:
            ndim = int(config["ndim"])
            self.model = build_model(config)
        else:
            self.model = build_model(config, ndim=ndim)
        axes = axes or _SPATIAL[-ndim:]
        axes = check_axes(axes, ndim, name="model axes")
        if axes != _SPATIAL[-ndim:]:
            raise ValueError(f"model axes must be {_SPATIAL[-ndim:]!r} for a {ndim}D network, got {axes!r}")
        self.axes = axes
        try:
            pct = tuple(float(v) for v in percentiles)
        except (TypeError, ValueError):
            pct = ()
        if len(pct) != 2 or not 0 <= pct[0] < pct[1] <= 100:
            raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100, got {percentiles!r}")
        self.model.eval()
        from mire import __version__

        self.metadata = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": None, "axes": axes,
            "normalization": {"method": "percentile", "percentiles": list(pct)},
            "network": self.model.config, "training": None, "metrics": {}, "mire_version": __version__,
            "output_min": None,
        }

    # ------------------------------------------------------------------ training
    def train(self, *, noisy=None, clean=None, mode: str | None = None, patch=None, epochs: int = 10,
              steps_per_epoch: int = 100, batch_size: int = 4, lr: float = 1e-3, lr_decay: float = 0.9,
              loss="l1", conditions=None, val=None, checkpoint_dir=None, resume: bool = True, seed: int = 0,
              device=None, progress: bool = True, callback=None, stop_event=None, foreground: float = 0.0,
              output_min="auto") -> dict:
        """Train (or fine-tune: the current weights are the start) on pairs, simulation or noise alone.

        Parameters
        ----------
        noisy, clean : array-like, path, or list of them
            ``noisy`` + ``clean``: supervised pairs (each clean image affinely aligned to its
            noisy partner, see :func:`mire.learn.affine_aligned_range`). ``clean`` alone:
            degraded on the fly by the paper-2020 protocol (:func:`mire.learn.simulate_sampler`,
            random condition per patch). ``noisy`` alone: Noise2Void
            (:func:`mire.learn.noise2void_sampler`). Arrays may have extra leading axes (e.g. Z
            for a 2D model): they are sampled like images.
        mode : {"pairs", "simulate", "noise2void"}, optional
            Inferred from which data are given.
        patch : tuple of int, optional
            Default (16, 64, 64) in 3D, (96, 96) in 2D.
        epochs, steps_per_epoch, batch_size, lr, lr_decay, loss, val, checkpoint_dir, resume, seed,
        device, progress, callback, stop_event
            See :func:`mire.learn.train`. Validation PSNR (which picks the ``best`` checkpoint)
            uses one data range for all validation patches (``val_data_range="global"``).
        conditions : list of str, optional
            Simulation conditions (default all nine).
        foreground : float
            Fraction of patches whose clean target must hold structure (``"pairs"`` and
            ``"simulate"``; see :class:`mire.learn.PatchSampler`). On sparse fluorescence (neurites
            fill < 1 % of a stack) uniform patches are nearly all background: 0.5 is a good choice.
        loss
            ``"l1"`` (the paper's, default) or ``"mse"``. PSNR scores the squared error, and on
            sparse bright structures under strong noise the L1 optimum (a median) shrinks them
            towards the background: ``"mse"`` keeps their brightness (see
            ``experiments/results/train_fluo3d.md``).
        output_min : "auto", float or None
            Floor of :meth:`predict`'s output, on the input's intensity scale (stored in the
            model's metadata). ``"auto"``: 0 when every training image is non-negative (fluorescence
            intensities are: a network's small negative excursions over the dark background are
            errors, and on the paper-2020 stacks clipping them raises the shipped 3D model's PSNR
            by 1-4 dB and its SSIM from 0.4-0.9 to 0.88-0.98), else no floor.

        Returns
        -------
        history : dict (see :func:`mire.learn.train`)
        """
        from mire.learn import noise2void_sampler, pairs_sampler, simulate_sampler
        from mire.learn import train as train_loop

        if mode is None:
            mode = "pairs" if noisy is not None and clean is not None else "simulate" if clean is not None else "noise2void"
        if mode not in ("pairs", "simulate", "noise2void"):
            raise ValueError(f"mode must be 'pairs', 'simulate' or 'noise2void', got {mode!r}")
        need = {"pairs": (noisy, clean), "simulate": (clean,), "noise2void": (noisy,)}[mode]
        if any(d is None for d in need):
            raise ValueError(f"mode {mode!r} needs " + {"pairs": "noisy and clean", "simulate": "clean",
                                                          "noise2void": "noisy"}[mode] + " images")
        ndim = self.model.ndim
        patch = tuple(patch) if patch is not None else ((16, 64, 64) if ndim == 3 else (96, 96))
        if len(patch) != ndim:
            raise ValueError(f"patch {patch} must have {ndim} sizes for this {ndim}D model")
        bad = [p for p, m in zip(patch, self.model.size_multiple) if p % m]
        if bad:
            raise ValueError(f"patch {patch} must be divisible by the network's size multiple {self.model.size_multiple}")
        if isinstance(output_min, str):
            if output_min != "auto":
                raise ValueError(f"output_min must be 'auto', a number or None, got {output_min!r}")
            output_min = 0.0 if _non_negative(list(need)) else None
        floor = None if output_min is None else float(output_min)
        pct = self.metadata["normalization"]["percentiles"]
        if mode == "pairs":
            # align: the clean target in the noisy input's units, so predict() returns a restored
            # image on the input's own intensity scale whatever stretch the pairs were exported with
            sampler = pairs_sampler(noisy, clean, patch=patch, seed=seed, percentiles=pct, align=True,
                                    foreground=foreground)
        elif mode == "simulate":
            sampler = simulate_sampler(clean, patch=patch, conditions=conditions, seed=seed, percentiles=pct,
                                       foreground=foreground)
        else:
            sampler = noise2void_sampler(noisy, patch=patch, seed=seed, percentiles=pct)
        history = train_loop(self.model, sampler, loss=loss, lr=lr, lr_decay=lr_decay, epochs=epochs,
                             steps_per_epoch=steps_per_epoch, batch_size=batch_size, val=val,
                             checkpoint_dir=checkpoint_dir, resume=resume, seed=seed, device=device,
                             progress=progress, callback=callback, stop_event=stop_event,
                             val_data_range="global")
        self.metadata["output_min"] = floor
        previous = self.metadata.get("training")
        self.metadata["training"] = {
            "mode": mode, "patch": list(patch), "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size, "lr": lr, "lr_decay": lr_decay, "loss": loss if isinstance(loss, str) else "custom",
            "conditions": list(conditions) if conditions else None, "foreground": foreground, "steps": history["step"],
            "final_loss": history["loss"][-1] if history["loss"] else None,
            "validation": history["val"][-1] if history["val"] else None,
            "fine_tuned_from": previous,
        }
        self.model.eval()
        return history

    # ---------------------------------------------------------------- prediction
    def _plan(self, shape, axes):
        """Split image axes into loop axes (looped over) and the model's spatial axes."""
        ndim = len(shape)
        if axes is None:
            if ndim != len(self.axes):
                raise ValueError(f"image is {ndim}D but the model's axes are {self.axes!r}: pass axes= "
                                 f"(e.g. {'C' + self.axes!r} or {'Z' + self.axes!r})")
            axes = self.axes
        axes = check_axes(axes, ndim)
        model_axes = self.axes
        if not axes.endswith(model_axes):
            spatial = "".join(a for a in axes if a in _SPATIAL)
            raise ValueError(f"image axes {axes!r} do not fit the model's {model_axes!r} "
                             f"(a {len(model_axes)}D model needs {model_axes!r} as the last axes"
                             + (f"; a 3D model cannot restore a {spatial} image" if len(spatial) < len(model_axes) else "")
                             + ")")
        loop = axes[: len(axes) - len(model_axes)]
        bad = [a for a in loop if a not in _LOOP + "Z"]
        if bad:
            raise ValueError(f"image axes {axes!r}: cannot loop over {bad}")
        return axes, loop

    def predict(self, image, *, axes: str | None = None, tile=None, overlap=None, batch_size: int = 1,
                device=None, out=None, tta: bool = False, normalization=None, clip: bool = True) -> np.ndarray:
        """Restore ``image``; returns float32 of the same shape, on the input's intensity scale.

        Parameters
        ----------
        image : array-like
            2D/3D image, optionally with leading ``T``/``C`` axes (looped over); numpy, memmap,
            zarr or dask (read tile by tile). A 2D model applied to a ``ZYX`` stack restores it
            slice by slice.
        axes : str, optional
            Axes of ``image`` (e.g. ``"CZYX"``); default the model's own axes.
        tile, overlap : int or tuple, optional
            Tile size and overlap per spatial axis (see :func:`mire.learn.predict_tiled`);
            default: the whole image when small, else 48x256x256 (3D) / 1024x1024 (2D) tiles.
        batch_size : int
            Tiles per forward pass.
        device : str or torch.device, optional
            Default: CUDA when available.
        out : array-like, optional
            Preallocated output (e.g. a zarr array for very large data).
        clip : bool
            Apply the model's output floor (``metadata["output_min"]``, see :meth:`train`).
        tta : bool
            Test-time augmentation: average the predictions of the 4 in-plane flips (4x the
            time). It averages out the 2x2 sub-pixel pattern a space-to-depth network can leave.
        normalization : (float, float) or list of them, optional
            The input's (low, high) intensities that map to 0 and 1 (one pair per channel);
            default: the model's percentiles of this input. Blockwise runs pass the whole
            volume's range, so every block is mapped the same way.

        Notes
        -----
        Normalization is global (percentiles over the whole input, per channel), so tiles and
        slices share one intensity mapping and the output goes back to the input's scale.
        """
        from mire._torch import default_device
        from mire.learn import percentile_range, predict_tiled
        from mire.learn.tiling import default_tiling

        if tta:
            image = np.asarray(image)
            acc = None
            for flip in ((), (-1,), (-2,), (-2, -1)):
                view = np.ascontiguousarray(np.flip(image, flip)) if flip else image
                pred = self.predict(view, axes=axes, tile=tile, overlap=overlap, batch_size=batch_size, device=device,
                                    normalization=normalization, clip=clip)
                pred = np.flip(pred, flip) if flip else pred
                acc = pred.astype(np.float64) if acc is None else acc + pred
            result = (acc / 4).astype(np.float32)
            if out is not None:
                out[...] = result
                return out
            return result
        lazy = not isinstance(image, np.ndarray) and hasattr(image, "shape") and hasattr(image, "__getitem__")
        if not lazy:
            image = check_image(image, name="image", ndim=(2, 3, 4, 5), allow_bool=False)
        elif len(image.shape) < 2 or 0 in image.shape:
            raise ValueError(f"image must be a non-empty 2D-5D array, got shape {tuple(image.shape)}")
        shape = tuple(image.shape)
        axes, loop = self._plan(shape, axes)
        device = torch.device(device) if device is not None else default_device()
        self.model.to(device).eval()
        spatial = shape[len(loop):]
        tile, overlap = default_tiling(spatial, tile=tile, overlap=overlap)
        if out is None:
            out = np.zeros(shape, dtype=np.float32)
        pct = self.metadata["normalization"]["percentiles"]
        c_axis = loop.find("C")
        n_channels = shape[c_axis] if c_axis >= 0 else 1
        ranges = []
        if normalization is not None:
            ranges = [tuple(map(float, r)) for r in np.reshape(np.asarray(normalization, float), (-1, 2))]
            if len(ranges) != n_channels or any(not hi > lo for lo, hi in ranges):
                raise ValueError(f"normalization must be {n_channels} (low, high) pair(s) with high > low, "
                                 f"got {normalization!r}")
        for c in range(n_channels if normalization is None else 0):
            sel = tuple(c if i == c_axis else slice(None) for i in range(len(shape)))
            ranges.append(percentile_range(image[sel] if c_axis >= 0 else image, percentiles=pct))
        floor = self.metadata.get("output_min") if clip else None
        for idx in np.ndindex(*shape[: len(loop)]):
            lo, hi = ranges[idx[c_axis]] if c_axis >= 0 else ranges[0]
            # the floor is applied per tile, before blending: blended tiles stay above it too
            predict_tiled(self.model, _Lead(image, idx), tile=tile, overlap=overlap, batch_size=batch_size,
                          device=device, out=_Lead(out, idx),
                          preprocess=lambda x, lo=lo, hi=hi: ((x - lo) / (hi - lo)).astype(np.float32),
                          postprocess=lambda y, lo=lo, hi=hi: _denormalize(y, lo, hi, floor))
        return out

    # ------------------------------------------------------------------- files
    def save(self, path) -> Path:
        """Write ``<path>.safetensors`` (weights) and ``<path>.json`` (metadata), each atomically.

        Returns the path stem.
        """
        from mire.learn.modelfile import save_model

        return save_model(path, self.model, dict(self.metadata, axes=self.axes), fmt=FORMAT)

    @classmethod
    def load(cls, name_or_path) -> "Restorer":
        """Load a shipped model by name (see :func:`mire.models.available`) or a saved one by path.

        Raises
        ------
        FileNotFoundError
            Neither a shipped name nor an existing file.
        ValueError
            Corrupted / truncated weights, invalid metadata, or weights that do not match the
            metadata (the message names the file and what is wrong).
        """
        from mire.learn.modelfile import load_weights, read_model_metadata

        meta, meta_path, weights_path = read_model_metadata(
            name_or_path, fmt=FORMAT, version=FORMAT_VERSION, kind="restorer",
            required=("network", "axes", "normalization"))
        try:
            restorer = cls(meta["network"], axes=meta["axes"], percentiles=meta["normalization"]["percentiles"])
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{meta_path}: invalid network description: {exc}") from None
        load_weights(restorer.model, meta, meta_path, weights_path)
        restorer.metadata.update({k: v for k, v in meta.items() if k != "weights_sha256"})
        return restorer

    def export_bioimageio(self, path, *, test_input=None, name: str | None = None,
                          description: str | None = None, authors=None) -> Path:
        """Write a BioImage Model Zoo package (``rdf.yaml``, format 0.5) into the folder ``path``.

        The folder holds TorchScript weights (the zoo's pickle-free format: a traced graph, no
        Python code), the safetensors weights and mire's JSON metadata as attachments, a test
        input/output pair (``.npy``) and a README. Preprocessing is the zoo's ``scale_range``
        with this model's percentiles; the output stays in those normalized units (mire's
        :meth:`predict` maps it back to the input scale, the zoo has no such step).

        Returns the path of ``rdf.yaml``.
        """
        import warnings

        import yaml

        from mire import __version__

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        nd = len(self.axes)
        mult = self.model.size_multiple
        if test_input is None:
            rng = np.random.default_rng(0)
            test_input = rng.random((1, 1) + tuple(4 * m for m in mult)).astype(np.float32)
        test_input = np.asarray(test_input, dtype=np.float32)
        if test_input.ndim == nd:
            test_input = test_input[None, None]
        lo, hi = np.percentile(test_input, self.metadata["normalization"]["percentiles"])
        x = torch.from_numpy(((test_input - lo) / (hi - lo + 1e-6)).astype(np.float32))
        model = self.model.cpu().eval()
        with warnings.catch_warnings():  # the input-size check is a constant in the trace: fine
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, x)
        with torch.no_grad():
            test_output = traced(x).numpy()
        traced.save(str(out / "weights.torchscript"))
        np.save(out / "test_input.npy", test_input)
        np.save(out / "test_output.npy", test_output)
        self.save(out / "mire_model")
        ids = [a.lower() for a in self.axes]
        in_axes = [{"type": "batch"}, {"type": "channel", "channel_names": ["raw"]}] + [
            {"type": "space", "id": i, "size": {"min": m, "step": m}} for i, m in zip(ids, mult)]
        out_axes = [{"type": "batch"}, {"type": "channel", "channel_names": ["restored"]}] + [
            {"type": "space", "id": i, "size": {"tensor_id": "raw", "axis_id": i}} for i in ids]
        pmin, pmax = self.metadata["normalization"]["percentiles"]
        title = name or self.metadata.get("name") or "mire restorer"
        rdf = {
            "type": "model", "format_version": "0.5.3", "name": title,
            "description": description or f"mire learned restoration ({nd}D {self.model.config['arch']})",
            "authors": authors or [{"name": "mire contributors"}],
            "cite": [{"text": "Ishii et al. 2020 (restoration protocol); mire", "url": "https://github.com/"}],
            "license": "BSD-3-Clause", "documentation": "README.md", "tags": ["restoration", "denoising", f"{nd}d"],
            "inputs": [{"id": "raw", "axes": in_axes, "test_tensor": {"source": "test_input.npy"},
                        "preprocessing": [{"id": "scale_range", "kwargs": {
                            "axes": ids, "min_percentile": pmin, "max_percentile": pmax}}]}],
            "outputs": [{"id": "restored", "axes": out_axes, "test_tensor": {"source": "test_output.npy"}}],
            "weights": {"torchscript": {"source": "weights.torchscript", "pytorch_version": torch.__version__.split("+")[0]}},
            "attachments": [{"source": "mire_model.safetensors"}, {"source": "mire_model.json"}],
            "config": {"mire": {"version": __version__, "network": self.model.config}},
        }
        (out / "README.md").write_text(f"# {title}\n\nExported by mire {__version__}. Network: "
                                       f"`{json.dumps(self.model.config)}`.\n\nTraining: "
                                       f"`{json.dumps(self.metadata.get('training'))}`\n")
        rdf_path = out / "rdf.yaml"
        tmp = out / ".rdf.yaml.tmp"
        tmp.write_text(yaml.safe_dump(rdf, sort_keys=False))
        tmp.replace(rdf_path)
        return rdf_path

    def __repr__(self):
        from mire.nets import count_parameters

        name = self.metadata.get("name") or "unnamed"
        return (f"Restorer({name!r}, axes={self.axes!r}, arch={self.model.config['arch']!r}, "
                f"parameters={count_parameters(self.model)})")


def _denormalize(y, lo, hi, floor):
    y = y * (hi - lo) + lo
    return y if floor is None else np.maximum(y, floor)


def _non_negative(sources) -> bool:
    """Whether every training image (array, path or list of them) has no negative value."""
    from mire.learn import open_array

    for src in sources:
        for item in (src if isinstance(src, (list, tuple)) else [src]):
            arr = open_array(item)
            low = arr.min() if hasattr(arr, "min") else np.min(np.asarray(arr))
            low = low.compute() if hasattr(low, "compute") else low
            if float(low) < 0:
                return False
    return True


class _Lead:
    """View of ``array[idx]`` with a leading singleton channel axis, sliced lazily (for tiling)."""

    def __init__(self, array, idx):
        self.array, self.idx = array, tuple(idx)
        self.shape = (1,) + tuple(array.shape[len(self.idx):])

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        # key[0] selects the (single) channel; the rest are spatial slices
        return np.asarray(self.array[self.idx + key[1:]])[None]

    def __setitem__(self, key, value):
        key = key if isinstance(key, tuple) else (key,)
        self.array[self.idx + key[1:]] = np.asarray(value)[0]

    @property
    def dtype(self):
        return self.array.dtype


__all__ = ["Restorer"]
