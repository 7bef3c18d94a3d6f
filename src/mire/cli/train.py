"""``mire train-restore``: train or fine-tune a learned restorer from the command line."""

from __future__ import annotations

from pathlib import Path

import typer

from mire.cli._common import check_model_output, console, friendly_errors


def _read(path: Path):
    """Open a training image lazily (only patches are read during training)."""
    import numpy as np

    from mire._validate import check_dtype, check_image
    from mire.learn import open_array

    arr = open_array(path)
    check_dtype(arr.dtype, name=str(path), allow_bool=False)
    if len(arr.shape) > 3:
        raise ValueError(f"{path}: a training image is 2D or 3D (Z, Y, X), got shape {tuple(arr.shape)}; "
                         "split channels / time points first")
    if isinstance(arr, np.ndarray) and arr.size <= 2**28:  # memory-mapped or read whole: cheap to check
        check_image(arr, name=str(path))
    return arr


def train_restore(
    out: Path = typer.Option(..., "--out", "-o", help="Model path stem: writes OUT.safetensors and OUT.json."),
    noisy: Path = typer.Option(None, "--noisy", help="Noisy image (with --clean: pairs; alone with --noise2void)."),
    clean: Path = typer.Option(None, "--clean", help="Clean image (with --noisy: pairs; alone with --simulate)."),
    simulate: bool = typer.Option(False, "--simulate", help="Degrade --clean on the fly (paper-2020 protocol)."),
    noise2void: bool = typer.Option(False, "--noise2void", help="Self-supervised training on --noisy alone."),
    preset: str = typer.Option("restore", "--preset",
                               help="Network preset: restore (no batch norm) | fast | paper | tiny."),
    ndim: int = typer.Option(3, "--ndim", help="2 or 3: network dimensions (a 2D model samples Z slices)."),
    epochs: int = typer.Option(10, "--epochs"),
    steps: int = typer.Option(100, "--steps", help="Steps per epoch."),
    batch_size: int = typer.Option(4, "--batch-size"),
    patch: str = typer.Option(None, "--patch", help="Patch size, e.g. 16,64,64 (3D) or 96,96 (2D)."),
    lr: float = typer.Option(1e-3, "--lr"),
    from_model: str = typer.Option(None, "--from", help="Fine-tune this shipped model name or model path."),
    percentiles: str = typer.Option(None, "--percentiles",
                                    help="Input normalization LOW,HIGH percentiles of a new model (default 1,99.8; "
                                         "50,99.8 pins a dark majority background, as in fluo3d-neurite-restore)."),
    checkpoints: Path = typer.Option(None, "--checkpoints", help="Checkpoint folder (resumed when present)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Train a restoration network: --noisy A --clean B | --clean B --simulate | --noisy A --noise2void."""
    with friendly_errors():
        check_model_output(out)
        if simulate and noise2void:
            raise ValueError("choose one of --simulate and --noise2void")
        if simulate:
            if clean is None or noisy is not None:
                raise ValueError("--simulate needs --clean (and no --noisy)")
            mode = "simulate"
        elif noise2void:
            if noisy is None or clean is not None:
                raise ValueError("--noise2void needs --noisy (and no --clean)")
            mode = "noise2void"
        else:
            if noisy is None or clean is None:
                raise ValueError("give --noisy and --clean (pairs), --clean with --simulate, or --noisy with --noise2void")
            mode = "pairs"
        patch_t = None
        if patch:
            try:
                patch_t = tuple(int(v) for v in patch.split(","))
            except ValueError:
                raise ValueError(f"--patch must be comma-separated integers, got {patch!r}") from None
        pct = (1.0, 99.8)
        if percentiles:
            if from_model:
                raise ValueError("--percentiles sets a new model's normalization; a fine-tune (--from) keeps its own")
            try:
                pct = tuple(float(v) for v in percentiles.split(","))
            except ValueError:
                raise ValueError(f"--percentiles must be LOW,HIGH numbers, got {percentiles!r}") from None
        from mire.restore.learned import Restorer

        if from_model:
            restorer = Restorer.load(from_model)
            console.print(f"fine-tuning {restorer!r}")
        else:
            import torch

            torch.manual_seed(seed)  # the initial weights too: --seed makes the whole run reproducible
            restorer = Restorer(preset, ndim=ndim, percentiles=pct)
        data = {"noisy": _read(noisy) if noisy is not None else None,
                "clean": _read(clean) if clean is not None else None}
        history = restorer.train(**data, mode=mode, patch=patch_t, epochs=epochs, steps_per_epoch=steps,
                                 batch_size=batch_size, lr=lr, checkpoint_dir=checkpoints, seed=seed,
                                 progress=True)
        stem = restorer.save(out)
        console.print(f"trained {history['step']} steps, final loss {history['loss'][-1]:.4f}; "
                      f"wrote {stem}.safetensors and {stem}.json")


def register(app: typer.Typer) -> None:
    app.command("train-restore")(train_restore)
