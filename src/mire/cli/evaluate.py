"""``mire evaluate``: score an image or a segmentation against its ground truth."""

from __future__ import annotations

import contextlib
import json
import math
import re
from pathlib import Path

import numpy as np
import typer

from mire.cli._common import console, friendly_errors

IMAGE_METRICS = ("psnr", "ssim")
LABEL_METRICS = ("arand", "voi")
ALL_METRICS = ("psnr", "ssim", "arand", "voi", "cremi", "fg")

# Row labels of the printed table, keyed like the JSON output.
_LABELS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "arand_error": "adapted Rand error",
    "arand_precision": "adapted Rand precision",
    "arand_recall": "adapted Rand recall",
    "voi_split": "VOI split (bits)",
    "voi_merge": "VOI merge (bits)",
    "cremi_score": "CREMI score",
    "fg_precision": "foreground precision",
    "fg_recall": "foreground recall",
}


def _parse_metrics(spec: str, gt: np.ndarray) -> list[str]:
    names = [m.strip().lower() for m in spec.split(",") if m.strip()]
    if names == ["auto"]:
        # Guess only where the dtype leaves no doubt: 8/16-bit integers are as often
        # microscope intensities as label ids, so for those the user must say which.
        if gt.dtype.kind == "f":
            return list(IMAGE_METRICS)
        if gt.dtype.kind in "iu" and gt.dtype.itemsize >= 4:
            return list(LABEL_METRICS)
        raise ValueError(f"cannot tell whether GT ({gt.dtype}) holds intensities or labels; "
                         f"pass --metrics psnr,ssim or --metrics arand,voi")
    bad = [m for m in names if m not in ALL_METRICS]
    if bad or not names:
        raise ValueError(f"unknown metric(s) {bad or spec!r}; choose from {', '.join(ALL_METRICS)} or 'auto'")
    return list(dict.fromkeys(names))  # keep the order given, drop repeats


def _parse_data_range(spec: str | None):
    if spec is None or spec.lower() in ("range", "peak"):
        # mire.metrics computes them (blockwise for big inputs): gt.max() - gt.min() by
        # default, gt.max() for the paper-2020 protocol
        return None if spec is None else spec.lower()
    try:
        return float(spec)
    except ValueError:
        raise ValueError(f"--data-range must be a number, 'peak' or 'range', got {spec!r}") from None


def _parse_block_size(spec: str | None):
    """``"128"`` -> 128 (every axis), ``"32,256,256"`` -> a tuple; None -> None."""
    if spec is None:
        return None
    try:
        sizes = tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(f"--block-size must be an integer or comma-separated integers such as "
                         f"32,256,256, got {spec!r}") from None
    if any(v < 1 for v in sizes):
        raise ValueError(f"--block-size must be positive, got {spec!r}")
    return sizes[0] if len(sizes) == 1 else sizes


def _read(path: Path, *, lazy: bool):
    """Chunked containers (zarr / OME-Zarr, HDF5) are always opened lazily, so the metrics
    read them block by block; other files too when blocks were asked for."""
    from mire.io import imread
    from mire.io.formats import read_format

    if lazy or read_format(path) in ("omezarr", "hdf5"):
        return imread(path, lazy=True)
    return np.asarray(imread(path))


@contextlib.contextmanager
def _cluster_client(address: str | None):
    """One dask.distributed client for every metric of the run (None: local scheduler)."""
    if not address:
        yield None
        return
    # Checked here because distributed's Client, once it failed to parse an address, hangs
    # for 20 s in its finalizer.
    if not re.fullmatch(r"inproc://\S+|([a-z]+://)?[^\s/]+:\d+", address):
        raise ValueError(f"--cluster must be a dask scheduler address such as tcp://10.0.0.1:8786, got {address!r}")
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--cluster needs dask.distributed: pip install distributed") from None
    try:
        # set as default: distributed.as_completed (used by mire.blockwise) looks the client up
        client = Client(address, timeout="10s")
    except (OSError, ValueError, TypeError) as exc:
        raise ConnectionError(f"cannot reach the dask scheduler at {address!r}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


def _parse_ignore(spec: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in spec.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--ignore-labels must be comma-separated integers, got {spec!r}") from None


@contextlib.contextmanager
def _progress(what: str, blockwise: bool, client):
    """A spinner for in-memory work; a bar per pass over the blocks on the local scheduler
    (stderr, so --json output stays clean); the dashboard's address on a cluster."""
    if not blockwise or client is not None:
        if client is not None:
            console.print(f"scoring on {client.scheduler.address}; progress: {client.dashboard_link}")
        with console.status("computing " + what):
            yield
        return
    import sys

    from dask.diagnostics import ProgressBar

    console.print(f"computing {what} block by block")
    with ProgressBar(minimum=1.0, out=sys.stderr):   # passes shorter than 1 s show no bar
        yield


def evaluate_arrays(pred, gt, metrics: list[str], *, data_range=None, window: int = 5, ignore_labels=(0,),
                    block_shape=None, scheduler=None, workers: int | None = None) -> dict[str, float]:
    """Compute the named metrics of ``pred`` against ``gt``; keys as in the JSON output.

    numpy inputs are scored in memory (blockwise if ``block_shape`` is given); zarr, HDF5
    and dask inputs block by block, on ``scheduler`` with ``workers`` (see mire.metrics).
    """
    from mire import metrics as M

    if np.shape(pred) != np.shape(gt):
        raise ValueError(f"PRED shape {np.shape(pred)} does not match GT shape {np.shape(gt)}")
    blockwise = {"block_shape": block_shape, "scheduler": scheduler, "workers": workers}
    out: dict[str, float] = {}
    if "psnr" in metrics:
        out["psnr"] = M.psnr(gt, pred, data_range=data_range, **blockwise)
    if "ssim" in metrics:
        out["ssim"] = M.ssim(gt, pred, data_range=data_range, window=window, **blockwise)
    if {"arand", "voi", "cremi"} & set(metrics):
        # One contingency table for all label metrics.
        scores = M.segmentation_scores(gt, pred, ignore_labels=ignore_labels, **blockwise)
        if "arand" in metrics:
            out.update({k: scores[k] for k in ("arand_error", "arand_precision", "arand_recall")})
        if "voi" in metrics:
            out.update({k: scores[k] for k in ("voi_split", "voi_merge")})
        if "cremi" in metrics:
            out["cremi_score"] = scores["cremi_score"]
    if "fg" in metrics:
        # nonzero = foreground, counted per block by the metric itself
        out["fg_precision"], out["fg_recall"] = M.foreground_precision_recall(gt, pred, **blockwise)
    return out


def evaluate(
    pred: Path = typer.Argument(..., help="Image or label file to judge (any format mire.io reads)."),
    gt: Path = typer.Argument(..., help="Ground-truth file, same shape as PRED."),
    metrics: str = typer.Option(
        "auto", "--metrics", "-m",
        help="Comma-separated: psnr, ssim, arand, voi, cremi, fg (nonzero-foreground precision/recall). "
             "'auto': psnr,ssim for float GT, arand,voi for 32/64-bit integer GT; 8/16-bit GT needs the flag."),
    data_range: str = typer.Option(
        None, "--data-range",
        help="Signal range for psnr/ssim: a number, 'peak' (max of GT, the paper-2020 protocol) "
             "or 'range' (GT max - min, the default)."),
    window: int = typer.Option(5, help="SSIM window width (uniform windows)."),
    ignore_labels: str = typer.Option(
        "0", "--ignore-labels", help="GT labels left out of arand/voi/cremi (comma-separated; '' for none)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (metric -> value) instead of a table."),
    block_size: str = typer.Option(
        None, "--block-size",
        help="Score block by block: one size for every axis or one per axis (e.g. 32,256,256). zarr / "
             "OME-Zarr / HDF5 inputs are always read block by block (default blocks: whole chunks, "
             "about 4 million voxels)."),
    workers: int = typer.Option(None, "--workers", min=1, help="Local worker threads for blockwise scoring."),
    cluster: str = typer.Option(
        None, "--cluster", help="Address of a dask.distributed scheduler (tcp://host:8786) to score the blocks on."),
):
    """Score PRED against GT and print a table (or JSON with --json).

    Label metrics follow the EM protocol: GT label 0 (unlabelled) is not scored.

    JSON keys: psnr, ssim, arand_error/precision/recall, voi_split/merge, cremi_score, fg_precision/recall.

    An infinite PSNR (identical images) is written as null in the JSON output.

    Volumes larger than memory (zarr / OME-Zarr, HDF5) are never loaded whole: every metric is
    summed over blocks (contingency tables for the label metrics) and equals the in-memory value.
    """
    with friendly_errors():
        block_shape = _parse_block_size(block_size)
        range_spec = _parse_data_range(data_range)
        with console.status(f"opening {pred.name} and {gt.name}"):
            gt_arr = _read(gt, lazy=block_shape is not None)
            pred_arr = _read(pred, lazy=block_shape is not None)
        if pred_arr.shape != gt_arr.shape:
            raise ValueError(f"PRED {pred} has shape {pred_arr.shape} but GT {gt} has shape {gt_arr.shape}")
        names = _parse_metrics(metrics, gt_arr)
        lazy = not (isinstance(gt_arr, np.ndarray) and isinstance(pred_arr, np.ndarray))
        with _cluster_client(cluster) as client, _progress(", ".join(names), lazy or block_shape is not None,
                                                           client):
            results = evaluate_arrays(pred_arr, gt_arr, names, data_range=range_spec, window=window,
                                      ignore_labels=_parse_ignore(ignore_labels), block_shape=block_shape,
                                      scheduler=client, workers=workers)

    if as_json:
        clean = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in results.items()}
        typer.echo(json.dumps(clean))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{pred.name} vs {gt.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results.items():
        table.add_row(_LABELS[key], "inf" if math.isinf(value) else f"{value:.6g}")
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
