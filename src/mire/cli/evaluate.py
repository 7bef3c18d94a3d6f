"""``mire evaluate``: score an image or a segmentation against its ground truth."""

from __future__ import annotations

import json
import math
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


def _parse_data_range(spec: str | None, gt: np.ndarray):
    if spec is None or spec.lower() == "range":
        return None  # mire.metrics default: gt.max() - gt.min()
    if spec.lower() == "peak":
        return float(np.max(gt))  # paper-2020 protocol
    try:
        return float(spec)
    except ValueError:
        raise ValueError(f"--data-range must be a number, 'peak' or 'range', got {spec!r}") from None


def _parse_ignore(spec: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in spec.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"--ignore-labels must be comma-separated integers, got {spec!r}") from None


def evaluate_arrays(pred: np.ndarray, gt: np.ndarray, metrics: list[str], *, data_range=None,
                    window: int = 5, ignore_labels=(0,)) -> dict[str, float]:
    """Compute the named metrics of ``pred`` against ``gt``; keys as in the JSON output."""
    from mire import metrics as M

    if np.shape(pred) != np.shape(gt):
        raise ValueError(f"PRED shape {np.shape(pred)} does not match GT shape {np.shape(gt)}")
    out: dict[str, float] = {}
    if "psnr" in metrics:
        out["psnr"] = M.psnr(gt, pred, data_range=data_range)
    if "ssim" in metrics:
        out["ssim"] = M.ssim(gt, pred, data_range=data_range, window=window)
    if {"arand", "voi", "cremi"} & set(metrics):
        # One contingency table for all label metrics.
        scores = M.segmentation_scores(gt, pred, ignore_labels=ignore_labels)
        if "arand" in metrics:
            out.update({k: scores[k] for k in ("arand_error", "arand_precision", "arand_recall")})
        if "voi" in metrics:
            out.update({k: scores[k] for k in ("voi_split", "voi_merge")})
        if "cremi" in metrics:
            out["cremi_score"] = scores["cremi_score"]
    if "fg" in metrics:
        out["fg_precision"], out["fg_recall"] = M.foreground_precision_recall(gt != 0, pred != 0)
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
):
    """Score PRED against GT and print a table (or JSON with --json).

    Label metrics follow the EM protocol: GT label 0 (unlabelled) is not scored.

    JSON keys: psnr, ssim, arand_error/precision/recall, voi_split/merge, cremi_score, fg_precision/recall.

    An infinite PSNR (identical images) is written as null in the JSON output.
    """
    from mire.io import imread

    with friendly_errors():
        with console.status(f"reading {pred.name} and {gt.name}"):
            gt_arr = np.asarray(imread(gt))
            pred_arr = np.asarray(imread(pred))
        if pred_arr.shape != gt_arr.shape:
            raise ValueError(f"PRED {pred} has shape {pred_arr.shape} but GT {gt} has shape {gt_arr.shape}")
        names = _parse_metrics(metrics, gt_arr)
        with console.status("computing " + ", ".join(names)):
            results = evaluate_arrays(pred_arr, gt_arr, names, data_range=_parse_data_range(data_range, gt_arr),
                                      window=window, ignore_labels=_parse_ignore(ignore_labels))

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
