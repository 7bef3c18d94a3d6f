"""``mire trace IN OUT.swc`` and ``mire evaluate-trace CLEAN TEST.swc GOLD.swc``."""

from __future__ import annotations

import json

import typer

from mire.cli._common import check_output, console, friendly_errors


def _floats(text: str | None, name: str, n: int | None = None):
    if text is None:
        return None
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, got {text!r}") from None
    if n is not None and len(vals) != n:
        raise ValueError(f"{name} needs {n} numbers, got {text!r}")
    return vals


def _spacing_for(path: str, image_ndim: int, spacing: str | None):
    """--spacing if given, else the pixel size stored in the file (ZYX), else isotropic."""
    if spacing is not None:
        return _floats(spacing, "--spacing", image_ndim)
    from mire.io import iminfo

    try:
        sizes = iminfo(path).get("pixel_size") or {}
    except Exception:  # metadata is a convenience here; the pixels were read fine
        return None
    axes = "ZYX"[-image_ndim:]
    if all(a in sizes and sizes[a] for a in axes):
        sp = [float(sizes[a]) for a in axes]
        console.print(f"spacing from file metadata ({axes}): {', '.join(f'{v:.4g}' for v in sp)}")
        return sp
    return None


def _check_inside(swc, shape, path) -> None:
    """Nodes must lie on the image (x = column, y = row, z = slice; half a pixel of slack)."""
    import numpy as np

    if len(swc) == 0 or len(shape) not in (2, 3):
        return  # evaluate_tracing names a wrong ndim
    sizes = (shape[-1], shape[-2], shape[0] if len(shape) == 3 else 1)
    for col, axis, n in zip((2, 3, 4), "xyz", sizes):
        bad = np.flatnonzero((swc[:, col] < -0.5) | (swc[:, col] > n - 0.5))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{path}: node {int(swc[i, 0])} has {axis} = {swc[i, col]:g}, outside the image "
                             f"(0..{n - 1} along {axis}); {bad.size} of {len(swc)} nodes lie outside: is it the "
                             "trace of another image?")


def trace_cmd(
    image: str = typer.Argument(..., help="2D image or 3D stack (ZYX): TIFF, OME-Zarr, 'file.h5:/dataset', ..."),
    out: str = typer.Argument(..., help="Output .swc file (written atomically)."),
    spacing: str = typer.Option(None, "--spacing", help="Voxel size per axis, ZYX, e.g. '1,0.33,0.33' "
                                "(default: from the file's metadata, else isotropic)."),
    seed: list[str] = typer.Option(None, "--seed", help="Seed point 'x,y,z' in pixels (repeatable); "
                                   "only the neurites through the seeds are kept."),
    max_gap: float = typer.Option(10.0, "--max-gap", help="Largest gap bridged, in pixels."),
    min_branch_length: float = typer.Option(6.0, "--min-branch", help="Shorter terminal branches are pruned (px)."),
    single_tree: bool = typer.Option(False, "--single-tree",
                                     help="Keep only the tree with the most cable (APP2 convention, as in the "
                                          "paper's Table 3); with --seed, the largest seeded tree."),
) -> None:
    """Trace the bright neurites of an image into an SWC file (x, y in pixels, z in slices)."""
    import numpy as np

    from mire.io import imread, write_swc
    from mire.trace import topology, trace

    with friendly_errors(data=image):
        check_output(out, swc=True)
        data = np.asarray(imread(image))
        sp = _spacing_for(image, data.ndim, spacing)
        seeds = [_floats(s, "--seed") for s in seed] if seed else None
        swc = trace(data, spacing=sp, seeds=seeds, max_gap=max_gap, min_branch_length=min_branch_length,
                    single_tree=single_tree)
        write_swc(out, swc, header=f"mire trace {image}" + (f" spacing={sp}" if sp else "")
                  + (" single-tree" if single_tree else ""))
    t = topology(swc)
    console.print(f"{out}: {t['nodes']} nodes, {t['roots']} trees, {t['branch_points']} branch points, "
                  f"{t['terminals']} terminals")


def evaluate_trace_cmd(
    clean: str = typer.Argument(..., help="The clean image the traces are projected onto."),
    test: str = typer.Argument(..., help="SWC to score."),
    gold: str = typer.Argument(..., help="Gold-standard SWC."),
    spacing: str = typer.Option(None, "--spacing", help="Voxel size per axis, ZYX (default: file metadata)."),
    tolerance: float = typer.Option(4.0, "--tolerance", help="Node-matching distance in pixels."),
    threshold: float = typer.Option(None, "--threshold", help="Region-growing threshold (default: Otsu near the gold trace)."),
    max_distance: float = typer.Option(12.0, "--max-distance", help="How far (geodesically) regions grow from a trace (px)."),
    snap_distance: float = typer.Option(3.5, "--snap-distance",
                                        help="Bright voxels this close to a trace seed its region (px)."),
    distance_tolerance: float = typer.Option(5.0, "--distance-tolerance",
                                             help="Distance score: a point within this many px of the other "
                                                  "arbor's segments (z scaled by --spacing) is matched."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    single_tree: bool = typer.Option(False, "--single-tree",
                                     help="Refuse a GOLD that is not one tree (a forest or repeated roots)."),
) -> None:
    """Score a trace against a gold standard: foreground voxel (paper Table 3), node and distance
    precision / recall.

    The output reports how many trees (roots) each SWC holds; a gold forest is noted on stderr
    (or refused with --single-tree), and an SWC whose parents form a cycle is refused.
    """
    import numpy as np

    from mire.io import imread, read_swc
    from mire.io.swc import duplicate_root_note
    from mire.trace import evaluate_tracing

    with friendly_errors():
        test_swc, gold_swc = read_swc(test), read_swc(gold, single_tree=single_tree)  # cheap checks first
        img = np.asarray(imread(clean))
        _check_inside(test_swc, img.shape, test)
        _check_inside(gold_swc, img.shape, gold)
        sp = _spacing_for(clean, img.ndim, spacing)
        res = evaluate_tracing(img, test_swc, gold_swc, spacing=sp, tolerance=tolerance,
                               threshold=threshold, max_distance=max_distance, snap_distance=snap_distance,
                               distance_tolerance=distance_tolerance)
    res["test_trees"] = int(np.sum(test_swc[:, 6] == -1))
    res["gold_trees"] = int(np.sum(gold_swc[:, 6] == -1))
    if res["gold_trees"] > 1:
        console.print(f"note: {gold} holds {res['gold_trees']} trees{duplicate_root_note(gold_swc)}; "
                      "scored as one neuron (--single-tree refuses it)")
    if as_json:
        typer.echo(json.dumps(res))
        return
    for key in ("precision", "recall", "f1", "node_precision", "node_recall",
                "distance_precision", "distance_recall", "distance_f1"):
        typer.echo(f"{key:15s} {res[key]:.4f}")
    typer.echo(f"{'threshold':15s} {res['threshold']:.4g}")
    typer.echo(f"{'voxels':15s} test {res['test_voxels']}  gold {res['gold_voxels']}")
    typer.echo(f"{'trees':15s} test {res['test_trees']}  gold {res['gold_trees']}")


def register(app: typer.Typer) -> None:
    app.command("trace")(trace_cmd)
    app.command("evaluate-trace")(evaluate_trace_cmd)
