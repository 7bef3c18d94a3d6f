"""``mire segment`` (boundary map / affinities -> labels) and ``mire proofread`` (apply an edit log)."""

from __future__ import annotations

from pathlib import Path

import typer

from mire.cli._common import (check_input_exists, check_model_output, check_output, check_single_image, console,
                              friendly_errors)


def _thresholds(text: str) -> list:
    try:
        values = [v.strip().lower() if v.strip().lower() == "auto" else float(v) for v in text.split(",")
                  if v.strip()]
    except ValueError:
        raise ValueError(f"--threshold must be numbers separated by commas, e.g. 0.5 or 0.3,0.5, or auto; "
                         f"got {text!r}") from None
    if not values:
        raise ValueError("--threshold is empty")
    bad = [v for v in values if v != "auto" and not 0.0 <= v <= 1.0]
    if bad:  # every map mire segments (boundaries, affinities) is a probability
        raise ValueError(f"--threshold values must lie in [0, 1] (a probability), got {', '.join(map(str, bad))}")
    return values


def _as_probability(arr, *, invert: bool):
    """Scale an integer map to [0, 1] (8/16-bit probability maps are common) and optionally invert it."""
    import numpy as np

    arr = np.asarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / np.iinfo(arr.dtype).max
    else:
        arr = arr.astype(np.float32)
    return 1.0 - arr if invert else arr


def _fmt(t) -> str:
    return t if isinstance(t, str) else f"{t:g}"


def _out_path(out: Path, threshold, many: bool) -> Path:
    if not many:
        return out
    threshold = _fmt(threshold)
    name = out.name
    for ext in (".ome.zarr", ".ome.tif", ".tiff", ".tif", ".zarr", ".h5", ".png"):
        if name.lower().endswith(ext):
            return out.with_name(f"{name[: -len(ext)]}_t{threshold}{name[-len(ext):]}")
    return out.with_name(f"{name}_t{threshold}")


def _axes(ndim: int) -> str:
    return "ZYX"[-ndim:]


def _ints(text: str, option: str, ndim: int) -> tuple[int, ...]:
    """``"64"`` or ``"16,256,256"`` -> one int per axis."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} must be an integer or comma-separated integers such as 16,256,256; "
                         f"got {text!r}") from None
    if len(values) == 1:
        values *= ndim
    if len(values) != ndim:
        raise ValueError(f"{option} has {len(values)} values but the image is {ndim}D")
    return values


def _segment_blocks(image, out, *, block_size, halo, thresholds, invert, stitch, workers, cluster, progress,
                    options):
    """The blockwise path: lazy input, zarr / OME-Zarr output written block by block."""
    import numpy as np

    from mire.io import imread, imwrite
    from mire.segment import segment_blockwise

    data = imread(image, lazy=True)  # dask: each block reads only its own window
    if data.ndim not in (2, 3):
        raise ValueError(f"{image}: a boundary map must be 2D or 3D, got shape {data.shape}")
    # elementwise and lazy, so still read block by block (as _as_probability does in memory)
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max)
    else:
        data = data.astype(np.float32)
    if invert:
        data = 1.0 - data
    block = _ints(block_size, "--block-size", data.ndim) if block_size else tuple(min(n, 256) for n in data.shape)
    halo_t = _ints(halo, "--halo", data.ndim)
    zarr_out = out.name.lower().endswith(".zarr")
    for t in thresholds:
        path = _out_path(out, t, len(thresholds) > 1)
        seg = segment_blockwise(data, block_shape=block, halo=halo_t, threshold=t, stitch=stitch,
                                out=path if zarr_out else None, axes=_axes(data.ndim), scheduler=cluster,
                                workers=workers, progress=progress, **options)
        if zarr_out:  # ids are 1..N: the count is the maximum, read block by block
            import dask.array as da

            n = int(da.from_zarr(seg).max().compute())
        else:  # other formats are written whole, from memory
            imwrite(path, seg, axes=_axes(seg.ndim), labels=True)
            n = int(np.count_nonzero(np.unique(seg)))
        console.print(f"threshold {_fmt(t)}: {n} segments in blocks of {block} -> {path}")


def _segment_model_blocks(image, out, *, model, block_size, halo, predict_halo, threshold, stitch, workers, cluster,
                          progress, options):
    """Raw EM with a model, blockwise: the boundary map (an affinity model: its nearest-neighbour
    affinities, and the map made from them) is predicted block by block into a scratch zarr beside
    OUT (one intensity range for the whole volume), then segmented and stitched."""
    import dask.array as da
    import numpy as np

    from mire.io import imread, imwrite
    from mire.segment import Segmenter

    segmenter = Segmenter.load(model)
    data = imread(image, lazy=True)  # dask: each block reads only its own window
    if data.ndim not in (2, 3):
        raise ValueError(f"{image}: raw EM must be 2D or 3D, got shape {data.shape}")
    block = _ints(block_size, "--block-size", data.ndim) if block_size else tuple(min(n, 256) for n in data.shape)
    halo_t = _ints(halo, "--halo", data.ndim)
    predict_halo_t = _ints(predict_halo, "--predict-halo", data.ndim)
    thr = _thresholds(threshold) if threshold else [segmenter.metadata["postprocess"]["threshold"]]
    post = {k: v for k, v in options.items() if v}  # only what was given overrides the model's own
    zarr_out = out.name.lower().endswith(".zarr")
    for t in thr:  # before the prediction, not after
        if _out_path(out, t, len(thr) > 1).exists():
            raise FileExistsError(f"output {_out_path(out, t, len(thr) > 1)} exists; remove it or choose another name")
    run = dict(scheduler=cluster, workers=workers, progress=progress)
    # one prediction for all thresholds (beside OUT, so that a killed run reuses it)
    with segmenter.predicted_scratch(data, block_shape=block, halo=predict_halo_t, out=out if zarr_out else None,
                                     **run) as (bmap, affs):
        for t in thr:
            path = _out_path(out, t, len(thr) > 1)
            seg = segmenter.segment_blockwise(data, block_shape=block, halo=halo_t, threshold=t, stitch=stitch,
                                              out=path if zarr_out else None, axes=_axes(data.ndim),
                                              boundary_map=bmap, affinities=affs, **run, **post)
            if zarr_out:
                n = int(da.from_zarr(seg).max().compute())
            else:
                imwrite(path, seg, axes=_axes(seg.ndim), labels=True)
                n = int(np.count_nonzero(np.unique(seg)))
            console.print(f"threshold {_fmt(t)}: {n} segments in blocks of {block} -> {path}")


def _affinity_channels(img, image):
    """The affinity array of a read file, channel axis first, refused when its axes say it has no channels
    (shared by the in-memory and the blockwise path, so a ZYX stack is never read as Z channels of a 2D map)."""
    import numpy as np

    data = img.data
    if img.axes is not None:  # the file names its axes: the channel axis must be there
        if "C" not in img.axes or "T" in img.axes:
            raise ValueError(f"{image} has axes {img.axes}: --affinities needs a channel axis and no time, "
                             "(C, Z, Y, X) or (C, Y, X); a map without channels is --boundaries")
        data = np.moveaxis(data, img.axes.index("C"), 0)  # numpy or dask alike (NEP 18)
    if data.ndim not in (3, 4):
        raise ValueError(f"{image}: affinities must be (C, Y, X) or (C, Z, Y, X), channel axis first; got shape "
                         f"{data.shape}")
    if img.axes is None:
        # the channel-first convention of affinity tools, but a plain Z stack fits it too: say how it was read
        console.print(f"note: {image} has no axes metadata; read as {'(C, Y, X)' if data.ndim == 3 else '(C, Z, Y, X)'}"
                      f" affinities, {data.shape[0]} channels over {tuple(data.shape[1:])} (channel axis first)")
    return data


def _segment_affinity_blocks(image, out, *, block_size, halo, thresholds, stitch, workers, cluster, progress,
                             options):
    """Affinities, blockwise: converted to a boundary map block by block into a scratch zarr beside OUT
    (once for all thresholds), then segmented and stitched with faces scored by ``1 - affinity``
    (as :func:`mire.segment.segment_affinities_blockwise`)."""
    import dask.array as da
    import numpy as np

    from mire.io import imwrite, read_image
    from mire.segment import segment_blockwise
    from mire.segment.affinity_blocks import boundary_scratch

    data = _affinity_channels(read_image(image, lazy=True), image)  # dask: each block reads only its window
    ndim = data.ndim - 1
    if block_size and len(block_size.split(",")) not in (1, ndim):
        raise ValueError(f"--block-size {block_size} has {len(block_size.split(','))} values, but {image} of shape "
                         f"{data.shape} read as affinities is {data.shape[0]} channels over a {ndim}D volume "
                         "(channel axis first): a 3D affinity volume is (C, Z, Y, X); a map without channels "
                         "is --boundaries")
    # 8/16-bit affinities are common: scaled lazily to [0, 1], as the boundary path scales its maps
    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / np.float32(np.iinfo(data.dtype).max)
    else:
        data = data.astype(np.float32)
    spatial = data.shape[1:]
    block = _ints(block_size, "--block-size", ndim) if block_size else tuple(min(n, 256) for n in spatial)
    halo_t = _ints(halo, "--halo", ndim)
    zarr_out = out.name.lower().endswith(".zarr")
    for t in thresholds:  # before the conversion, not after
        if _out_path(out, t, len(thresholds) > 1).exists():
            raise FileExistsError(f"output {_out_path(out, t, len(thresholds) > 1)} exists; remove it or choose "
                                  "another name")
    run = dict(scheduler=cluster, workers=workers, progress=progress)
    # one conversion for all thresholds (beside OUT, so that a killed run reuses it)
    with boundary_scratch(data, block_shape=block, out=out if zarr_out else None, **run) as bmap:
        for t in thresholds:
            path = _out_path(out, t, len(thresholds) > 1)
            seg = segment_blockwise(bmap, block_shape=block, halo=halo_t, threshold=t, stitch=stitch,
                                    out=path if zarr_out else None, axes=_axes(ndim),
                                    affinities=data if stitch == "graph" else None, **run, **options)
            if zarr_out:  # ids are 1..N: the count is the maximum, read block by block
                n = int(da.from_zarr(seg).max().compute())
            else:  # other formats are written whole, from memory
                imwrite(path, seg, axes=_axes(ndim), labels=True)
                n = int(np.count_nonzero(np.unique(seg)))
            console.print(f"threshold {_fmt(t)}: {n} segments in blocks of {block} -> {path}")


def _segment_ffn(image, out, *, model, block_size, halo, min_size, workers, progress):
    """Raw EM flood-filled by an FFN (:class:`mire.segment.FloodFiller`), whole or block by block."""
    import numpy as np

    from mire.io import imread, imwrite
    from mire.segment import FloodFiller

    filler = FloodFiller.load(model)
    opts = {"min_size": min_size} if min_size else {}
    if block_size is not None:
        ndim = filler.ndim
        block = _ints(block_size, "--block-size", ndim)
        halo_t = _ints(halo, "--halo", ndim) if halo != "16" else None  # default: the network's FOV
        target = out if str(out).endswith(".zarr") else None
        seg = filler.segment_blockwise(imread(image, lazy=True), block_shape=block, halo=halo_t,
                                       out=str(out) if target else None, workers=workers, progress=progress, **opts)
        if target is None:
            imwrite(out, np.asarray(seg), axes=_axes(ndim), downscale="nearest")
    else:
        seg, stats = filler.segment(imread(image), progress=progress, return_stats=True, **opts)
        imwrite(out, seg, axes=_axes(seg.ndim), downscale="nearest")
        console.print(f"{stats['evals']} FOV evaluations ({stats['evals'] / max(stats['dense_evals'], 1):.1%} of a "
                      f"sliding window)")
    n = int(np.asarray(seg).max()) if np.asarray(seg).size else 0
    console.print(f"flood-filled {n} objects -> {out}")


def segment_cmd(
    image: Path = typer.Argument(..., help="Raw EM (with --model), boundary probability map (1 = membrane) "
                                           "or affinities (C, Z, Y, X)."),
    out: Path = typer.Argument(..., help="Output labels (.tif, .ome.zarr, .zarr, file.h5:/dataset); with "
                                         "--block-size, .zarr / .ome.zarr are written block by block."),
    boundaries: bool = typer.Option(False, "--boundaries", help="IMAGE is a boundary probability map."),
    affinities: bool = typer.Option(False, "--affinities", help="IMAGE is an affinity volume: a file that names "
                                    "its axes needs a C axis (moved first); one without axes metadata (plain "
                                    "TIFF, zarr, HDF5) is read channel first, (C, Y, X) if 3D, (C, Z, Y, X) if "
                                    "4D, and a note says so."),
    model: str = typer.Option(None, "--model", "-m", help="IMAGE is raw EM: segment it with this shipped model "
                                                          "name or saved Segmenter path."),
    threshold: str = typer.Option(None, "--threshold", "-t",
                                  help="Agglomeration threshold(s) on the boundary score (1 - affinity), comma "
                                       "separated; several write one file each (OUT with _t<value>); 'auto': "
                                       "chosen from the volume's own fragment graph. Default 0.5, or the model's "
                                       "own (fibsem3d-affinity: auto)."),
    min_size: int = typer.Option(0, "--min-size", help="Merge regions smaller than this into a neighbour."),
    scoring: str = typer.Option("", "--scoring",
                                help="Edge score: mean, median, quantile:0.75 (default: mean for boundaries, "
                                     "median for affinities)."),
    min_distance: float = typer.Option(3.0, "--min-distance", help="Seed spacing of the watershed (voxels)."),
    per_slice: bool = typer.Option(False, "--per-slice", help="2D watershed per z-slice (thick-section ssTEM)."),
    invert: bool = typer.Option(False, "--invert", help="The map is 1 inside cells (1 - boundary): invert it."),
    block_size: str = typer.Option(None, "--block-size",
                                   help="Segment block by block, e.g. 64,256,256 (Z,Y,X): the input is read one "
                                        "block at a time and labels are stitched across blocks (--boundaries; "
                                        "--affinities or --model: the boundary map is converted or predicted "
                                        "block by block first)."),
    halo: str = typer.Option("16", "--halo", help="Context voxels around each block: one number or Z,Y,X."),
    predict_halo: str = typer.Option("32", "--predict-halo",
                                     help="With --model: context voxels around each block's prediction."),
    stitch: str = typer.Option("graph", "--stitch",
                               help="graph: one agglomeration of the blocks' summed region graph (as in memory); "
                                    "overlap: each block agglomerates, segments matched by overlap."),
    workers: int = typer.Option(None, "--workers", help="Local worker threads (default: one per core)."),
    cluster: str = typer.Option(None, "--cluster",
                                help="dask.distributed scheduler address (tcp://host:8786); the output and its "
                                     "scratch folder must be on storage the workers share."),
    progress: bool = typer.Option(False, "--progress", help="Show a progress bar per pass (blockwise)."),
):
    """Segment raw EM with a model, or a boundary map / affinities: watershed, agglomeration, cleanup."""
    with friendly_errors(data=image):
        import numpy as np

        from mire.io import imread, imwrite
        from mire.segment import Segmenter, segment_affinities, segment_boundaries

        if sum([boundaries, affinities, model is not None]) != 1:
            raise ValueError("say what IMAGE holds: give exactly one of --boundaries, --affinities or --model")
        check_input_exists(image)
        check_output(out, inputs=(image,))
        if not affinities:  # affinities have their channels first; anything else is one image
            check_single_image(image, "segment")
        from mire.segment.ffn import is_ffn_model

        if model is not None and is_ffn_model(model):
            # a flood-filling network grows objects itself: refuse options it would silently ignore
            for flag, given in (("--threshold", threshold is not None), ("--predict-halo", predict_halo != "32")):
                if given:
                    raise ValueError(f"{flag} does not apply to a flood-filling model ({model})")
            _segment_ffn(image, out, model=model, block_size=block_size, halo=halo, min_size=min_size,
                         workers=workers, progress=progress)
            return
        if (block_size is not None or cluster is not None) and model is not None:
            _segment_model_blocks(image, out, model=model, block_size=block_size, halo=halo,
                                  predict_halo=predict_halo, threshold=threshold,
                                  stitch=stitch, workers=workers, cluster=cluster, progress=progress,
                                  options=dict(min_size=min_size, scoring=scoring, per_slice=per_slice))
            return
        if block_size is not None or cluster is not None:
            if affinities:
                if per_slice:
                    raise ValueError("--per-slice applies to boundary maps only: affinities carry their own z "
                                     "edges (segment them in 3D, or convert to a boundary map and use --boundaries)")
                _segment_affinity_blocks(image, out, block_size=block_size, halo=halo,
                                         thresholds=_thresholds(threshold or "0.5"), stitch=stitch, workers=workers,
                                         cluster=cluster, progress=progress,
                                         options=dict(min_size=min_size, scoring=scoring or "median",
                                                      min_distance=min_distance))
                return
            _segment_blocks(image, out, block_size=block_size, halo=halo, thresholds=_thresholds(threshold or "0.5"),
                            invert=invert, stitch=stitch, workers=workers, cluster=cluster, progress=progress,
                            options=dict(min_size=min_size, scoring=scoring or "mean", min_distance=min_distance,
                                         per_slice=per_slice))
            return
        if model is not None:
            segmenter = Segmenter.load(model)
            thr = _thresholds(threshold) if threshold else [segmenter.metadata["postprocess"]["threshold"]]
            opts = {"threshold": thr}
            if min_size:
                opts["min_size"] = min_size
            if scoring:
                opts["scoring"] = scoring
            if per_slice:
                opts["per_slice"] = True
            segs = segmenter.segment(imread(image), **opts)
            for t, used, seg in zip(thr, segmenter.last_settings["threshold"], segs):
                path = _out_path(out, t, len(thr) > 1)
                imwrite(path, seg, axes=_axes(seg.ndim), labels=True)
                chosen = f" (chosen from the volume: {used:.3f})" if _fmt(t) == "auto" else ""
                console.print(f"threshold {_fmt(t)}{chosen}: {int(np.count_nonzero(np.unique(seg)))} segments -> "
                              f"{path}")
            return
        thr = _thresholds(threshold or "0.5")
        from mire.io import read_image

        raw = imread(image) if boundaries else _affinity_channels(read_image(image), image)
        data = _as_probability(raw, invert=invert)
        if boundaries:
            segs = segment_boundaries(data, threshold=thr, min_size=min_size, scoring=scoring or "mean",
                                      min_distance=min_distance, per_slice=per_slice)
        else:
            if per_slice:
                raise ValueError("--per-slice applies to boundary maps only")
            segs = segment_affinities(data, thresholds=thr, min_size=min_size, scoring=scoring or "median",
                                      min_distance=min_distance)
        for t, seg in zip(thr, segs):
            path = _out_path(out, t, len(thr) > 1)
            imwrite(path, seg, axes=_axes(seg.ndim), labels=True)  # labels: no averaged pyramid
            n = int(np.count_nonzero(np.unique(seg)))
            console.print(f"threshold {_fmt(t)}: {n} segments -> {path}")


def proofread_cmd(
    seg: Path = typer.Argument(..., help="Segmentation to edit."),
    log: Path = typer.Argument(..., help="Edit log (JSON written by mire.segment.Proofreader.save_log)."),
    out: Path = typer.Argument(..., help="Output labels."),
    boundary: Path = typer.Option(None, "--boundary", help="Boundary map used for the splits during proofreading."),
    invert: bool = typer.Option(False, "--invert", help="The boundary map is 1 inside cells: invert it."),
):
    """Apply a proofreading edit log (merges, splits) to a segmentation and write the result."""
    with friendly_errors():
        from mire.io import imread, imwrite
        from mire.segment import load_log, replay

        for p in (seg, log):
            if not p.exists():
                raise FileNotFoundError(f"input not found: {p}")
        check_output(out, inputs=(seg, log))
        labels = imread(seg)
        bmap = None if boundary is None else _as_probability(imread(boundary), invert=invert)
        doc = load_log(log)
        edited = replay(labels, doc, boundary=bmap)
        imwrite(out, edited, axes=_axes(edited.ndim), labels=True)
        console.print(f"applied {len(doc['edits'])} edits -> {out}")


def train_segment_cmd(
    images: list[Path] = typer.Option(..., "--image", "-i", help="Raw EM volume (repeat for several)."),
    labels: list[Path] = typer.Option(..., "--labels", "-l", help="Instance labels matching each --image."),
    out: Path = typer.Option(..., "--out", "-o", help="Model path stem: writes OUT.safetensors and OUT.json."),
    kind: str = typer.Option("unet", "--kind", help="unet (boundary / affinity network) | ffn (flood-filling "
                                                    "network, mire.segment.FloodFiller)."),
    target: str = typer.Option("boundaries", "--target", help="boundaries | affinities (--kind unet)."),
    ndim: int = typer.Option(3, "--ndim", help="2 (membranes per slice, ssTEM) or 3."),
    preset: str = typer.Option(None, "--preset", help="Network preset: fast (default) | paper | tiny; --kind ffn: "
                                                      "small (default) | paper | tiny."),
    epochs: int = typer.Option(10, "--epochs"),
    steps: int = typer.Option(100, "--steps", help="Steps per epoch."),
    batch_size: int = typer.Option(4, "--batch-size"),
    patch: str = typer.Option(None, "--patch", help="Patch size, e.g. 16,64,64 (3D) or 128,128 (2D)."),
    lr: float = typer.Option(1e-3, "--lr"),
    ignore_label: int = typer.Option(None, "--ignore-label", help="Label of unannotated voxels (no loss there)."),
    threshold: float = typer.Option(0.5, "--threshold", help="Agglomeration threshold stored with the model."),
    checkpoints: Path = typer.Option(None, "--checkpoints", help="Checkpoint folder (resumed when present)."),
    seed: int = typer.Option(0, "--seed"),
    base: str = typer.Option(None, "--from", help="Fine-tune this shipped model name or saved Segmenter path "
                                                  "(its network, offsets and post-processing are kept)."),
    sparse: bool = typer.Option(None, "--sparse/--dense",
                                help="Sparse painted labels: 0 = unpainted, ignored by the loss (default with "
                                     "--from); --dense: 0 = membrane/background."),
    membrane_label: int = typer.Option(None, "--membrane-label",
                                       help="With --sparse: the painted id of membrane voxels (affinity 0 to "
                                            "every neighbour, as dense labels' 0); paint thick membranes with it."),
    adapt: bool = typer.Option(True, "--adapt/--no-adapt",
                               help="With --from: adapt the model to the first --image before fine-tuning "
                                    "(Segmenter.adapt: histogram matching)."),
    long_range: str = typer.Option(None, "--long-range",
                                   help="Affinity models: also learn offsets -d along every axis, e.g. 3,9 "
                                        "(Lee et al. 2017); with --from, the model's channels are kept and "
                                        "new ones start as copies of their axis's nearest channel."),
    block: str = typer.Option(None, "--block",
                              help="--kind unet: plain (default) | residual (a residual module in every U-Net "
                                   "level, Lee et al. 2017)."),
    spacing: str = typer.Option(None, "--spacing",
                                help="--kind unet: voxel size Z,Y,X (or Y,X), e.g. 30,6,6: levels where Z is "
                                     ">= 2x coarser use 1x3x3 kernels and 1x2x2 pooling; isotropic = no change."),
):
    """Train a boundary or affinity network on raw EM + instance labels, or fine-tune one (--from)."""
    with friendly_errors():
        from mire.io import imread
        from mire.segment import Segmenter

        if len(images) != len(labels):
            raise ValueError(f"{len(images)} --image but {len(labels)} --labels: give one labels file per image")
        check_model_output(out)
        for p in list(images) + list(labels):
            if not p.exists():
                raise FileNotFoundError(f"input not found: {p}")
        if not 0 <= threshold <= 1:  # stored with the model, then every segment would merge (or none)
            raise ValueError(f"--threshold must lie in [0, 1] (a boundary probability), got {threshold}")
        patch_t = None
        if patch:
            try:
                patch_t = tuple(int(v) for v in patch.split(","))
            except ValueError:
                raise ValueError(f"--patch must be comma-separated integers, got {patch!r}") from None
        import torch

        torch.manual_seed(seed)  # the initial weights too: --seed makes the whole run reproducible
        if kind not in ("unet", "ffn"):
            raise ValueError(f"--kind must be unet or ffn, got {kind!r}")
        if kind == "ffn":
            from mire.segment import FloodFiller

            if patch_t is not None:
                raise ValueError("--patch is for --kind unet: an FFN trains on its FOV (set by the preset)")
            if base is not None:
                raise ValueError("--from fine-tunes an affinity/boundary model; it does not apply to --kind ffn")
            if block is not None or spacing is not None:
                raise ValueError("--block and --spacing are for --kind unet (an FFN's network is set by its preset)")
            filler = FloodFiller(preset or "small")
            history = filler.train([imread(p) for p in images], [imread(p) for p in labels], epochs=epochs,
                                   steps_per_epoch=steps, batch_size=batch_size, lr=lr, checkpoint_dir=checkpoints,
                                   seed=seed, progress=True)
            stem = filler.save(out)
            console.print(f"trained {history['step']} episodes ({history['updates']} updates), final loss "
                          f"{history['loss'][-1]:.4f}; wrote {stem}.safetensors and {stem}.json")
            return
        raws = [imread(p) for p in images]
        offsets = None
        if long_range:
            from mire.segment import long_range_offsets

            try:
                distances = [int(v) for v in long_range.split(",")]
            except ValueError:
                raise ValueError(f"--long-range must be comma-separated integers, got {long_range!r}") from None
        source = Segmenter.load(base) if base is not None else None
        if long_range:
            offsets = long_range_offsets(ndim if source is None else source.ndim, distances)
        network = preset or "fast"
        if block is not None or spacing is not None:
            if base is not None:
                raise ValueError("--block and --spacing build a new network; with --from the model's own is kept")
            from mire.nets import PRESETS

            if network not in PRESETS:
                raise ValueError(f"unknown preset {network!r}; choose from {sorted(PRESETS)}")
            network = dict(PRESETS[network])
            if block is not None:
                network["block"] = block
            if spacing is not None:
                try:
                    network["spacing"] = [float(v) for v in spacing.split(",")]
                except ValueError:
                    raise ValueError(f"--spacing must be comma-separated numbers, got {spacing!r}") from None
        if base is not None:
            segmenter = source if offsets is None else source.with_offsets(offsets)
            if adapt:
                segmenter.adapt(raws[0])
            sparse = True if sparse is None else sparse
        else:
            if offsets is not None and target != "affinities":
                raise ValueError("--long-range needs --target affinities")
            segmenter = Segmenter(network, ndim=ndim, target=target, offsets=offsets)
            segmenter.metadata["postprocess"]["threshold"] = threshold
        history = segmenter.train(raws, [imread(p) for p in labels], patch=patch_t, sparse=bool(sparse),
                                  membrane_label=membrane_label,
                                  epochs=epochs, steps_per_epoch=steps, batch_size=batch_size, lr=lr,
                                  ignore_label=ignore_label, checkpoint_dir=checkpoints, seed=seed, progress=True)
        stem = segmenter.save(out)
        console.print(f"trained {history['step']} steps, final loss {history['loss'][-1]:.4f}; "
                      f"wrote {stem}.safetensors and {stem}.json")


def adapt_segment_cmd(
    image: Path = typer.Argument(..., help="The new, unlabeled raw EM volume to adapt to."),
    out: Path = typer.Option(..., "--out", "-o", help="Adapted model path stem (OUT.safetensors, OUT.json)."),
    model: str = typer.Option("fibsem3d-affinity", "--model", "-m", help="Shipped model name or Segmenter path."),
    intensity: bool = typer.Option(True, "--intensity/--no-intensity",
                                   help="Histogram matching to the training data's intensities."),
    batchnorm: bool = typer.Option(False, "--batchnorm/--no-batchnorm",
                                   help="Re-estimate the batch-norm statistics on IMAGE."),
    scale: bool = typer.Option(True, "--scale/--no-scale",
                               help="Resample IMAGE to the training data's scale (correlation length) when its "
                                    "cells are over 1.67x larger or smaller."),
):
    """Adapt a segmentation model to a new volume without labels (Segmenter.adapt), and save it."""
    with friendly_errors(data=image):
        from mire.io import imread
        from mire.segment import Segmenter

        check_input_exists(image)
        check_model_output(out)
        segmenter = Segmenter.load(model)
        segmenter.adapt(imread(image), intensity=intensity, batchnorm=batchnorm, scale=scale)
        stem = segmenter.save(out)
        ad = segmenter.metadata["adaptation"]
        console.print(f"adapted {model} to {image} (intensity {'on' if ad['intensity'] else 'off'}, batch-norm "
                      f"{'re-estimated' if ad['batchnorm'] else 'kept'}, scale ratio {ad.get('measured_zoom', 1.0):.2f}, "
                      f"zoom {ad['zoom']:.3g}); wrote "
                      f"{stem}.safetensors and {stem}.json")


def register(app: typer.Typer) -> None:
    app.command("segment")(segment_cmd)
    app.command("proofread")(proofread_cmd)
    app.command("train-segment")(train_segment_cmd)
    app.command("adapt-segment")(adapt_segment_cmd)
