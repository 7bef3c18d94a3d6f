"""Fuzz the ``mire`` command with generated bad inputs: every case must fail cleanly.

Each case writes its inputs into a fresh folder, runs the command in-process (as
tests/test_cli.py does) and asserts: exit code 2, exactly one line on stderr, no traceback,
and no new or modified file beside the inputs. ``CASES`` is the list of kinds (one per
command x bad input); ``pytest tests/fuzz -q`` runs them all and ``test_case_count`` records
how many there are.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mire.cli import app

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: no implicit path
import fuzz_kinds as K  # noqa: E402

runner = CliRunner()

#: one command line per command that reads an image; {x} is the bad input, {d} the folder
IMAGE_COMMANDS = {
    "info": ["info", "{x}"],
    "info-json": ["info", "{x}", "--json", "--no-stats"],
    "restore": ["restore", "{x}", "{d}/out.tif", "--method", "wiener"],
    "restore-blocks": ["restore", "{x}", "{d}/out.ome.zarr", "--method", "wiener", "--block-size", "8"],
    "simulate": ["simulate", "{x}", "{d}/sim.tif"],
    "segment": ["segment", "{x}", "{d}/seg.tif", "--boundaries"],
    "superres": ["superres", "{x}", "{d}/sr.tif", "--factor", "2", "--method", "ml"],
    "trace": ["trace", "{x}", "{d}/t.swc"],
    "evaluate": ["evaluate", "{x}", "{good}"],
    "evaluate-trace": ["evaluate-trace", "{x}", "{swc}", "{swc}"],
    "proofread": ["proofread", "{x}", "{log}", "{d}/p.tif"],
    "train-restore": ["train-restore", "--noisy", "{x}", "--noise2void", "--out", "{d}/m", "--epochs", "1",
                      "--steps", "1", "--ndim", "2", "--patch", "8,8", "--batch-size", "1"],
    "adapt-segment": ["adapt-segment", "{x}", "-o", "{d}/a"],
    "segment-ffn": ["segment", "{x}", "{d}/seg.tif", "--model", "fibsem3d-ffn"],
    "train-segment": ["train-segment", "-i", "{x}", "-l", "{labels}", "-o", "{d}/s", "--epochs", "1", "--steps",
                      "1", "--ndim", "2", "--patch", "8,8", "--batch-size", "1"],
}

#: (command, content kind) pairs that are valid input, so not a failure case
CONTENT_OK = {
    ("info", k) for k in K.CONTENT_KINDS} | {("info-json", k) for k in K.CONTENT_KINDS} | {
    # NaN / inf pixels are scored as they are by `info` only; single pixels and channels are fine where noted
    ("evaluate", "bool_zarr"), ("proofread", "bool_zarr"), ("segment", "bool_zarr"), ("evaluate-trace", "bool_zarr"),
    # a 1x1 image is tiny but valid where nothing needs a neighbourhood
    ("simulate", "1px"), ("segment", "1px"), ("trace", "1px"),
}
#: kinds whose damage is in the pixels: `info --no-stats` reads only the header, so succeeds
PIXEL_DAMAGE = {"tiff_bad_strip", "zarr_corrupt_chunk", "zarr_truncated_chunk"}


def _model(d, meta, weights=b"", name="m"):
    p = Path(d) / name
    Path(f"{p}.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    Path(f"{p}.safetensors").write_bytes(weights)
    return str(p)


def _good_meta(**over):
    meta = json.loads((Path(__file__).parents[2] / "src/mire/models/widefield2d-denoise.json").read_text())
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(meta.get(k), dict):
            meta[k] = {**meta[k], **v}
        else:
            meta[k] = v
    return meta


MODEL_KINDS = {
    "not_json": lambda d: _model(d, "{oops"),
    "deep": lambda d: _model(d, "[" * 50000 + "]" * 50000),
    "list": lambda d: _model(d, [1, 2]),
    "format_wrong": lambda d: _model(d, _good_meta(format="something")),
    "format_missing": lambda d: _model(d, {"name": "x"}),
    "ndim_text": lambda d: _model(d, _good_meta(network={"ndim": "two"})),
    "depth_huge": lambda d: _model(d, _good_meta(network={"depth": 1000})),
    "channels_huge": lambda d: _model(d, _good_meta(network={"base_channels": 10**9})),
    "weights_garbage": lambda d: _model(d, _good_meta(), b"\x00garbage" * 8),
    "weights_empty": lambda d: _model(d, _good_meta(), b""),
    "version_future": lambda d: _model(d, _good_meta(format_version=999)),
    "normalization_text": lambda d: _model(d, _good_meta(normalization="percentile")),
    "missing": lambda d: str(Path(d) / "no-model"),
    "ndim_4": lambda d: _model(d, _good_meta(network={"ndim": 4})),
    "json_truncated": lambda d: _model(d, json.dumps(_good_meta())[:40]),
}

#: bad option values with good inputs: (name, argv with {good} / {d} / {labels} / {log} / {swc})
OPTION_CASES = [
    ("restore/block-size-0", ["restore", "{good}", "{d}/o.tif", "--block-size", "0"]),
    ("restore/block-size-text", ["restore", "{good}", "{d}/o.tif", "--block-size", "abc"]),
    ("restore/block-size-count", ["restore", "{good}", "{d}/o.tif", "--block-size", "4,4,4"]),
    ("restore/halo-negative", ["restore", "{good}", "{d}/o.ome.zarr", "--halo", "-1"]),
    ("restore/method-unknown", ["restore", "{good}", "{d}/o.tif", "--method", "magic"]),
    ("restore/psf-negative", ["restore", "{good}", "{d}/o.tif", "--psf", "gaussian:-1"]),
    ("restore/psf-text", ["restore", "{good}", "{d}/o.tif", "--psf", "gaussian:wide"]),
    ("restore/psf-missing-file", ["restore", "{good}", "{d}/o.tif", "--psf", "{d}/psf.tif"]),
    ("restore/psf-complex-file", ["restore", "{good}", "{d}/o.tif", "--psf", "{complex}"]),
    ("restore/psf-bomb-file", ["restore", "{good}", "{d}/o.tif", "--psf", "{bomb}"]),
    ("restore/axes-bad", ["restore", "{good}", "{d}/o.tif", "--axes", "QQ"]),
    ("restore/axes-count", ["restore", "{good}", "{d}/o.tif", "--axes", "ZYX"]),
    ("restore/out-unknown-ext", ["restore", "{good}", "{d}/o.xyz"]),
    ("restore/out-folder-missing", ["restore", "{good}", "{d}/nofolder/o.tif"]),
    ("restore/bregman-wiener", ["restore", "{good}", "{d}/o.tif", "--method", "wiener", "--bregman", "2"]),
    ("simulate/condition", ["simulate", "{good}", "{d}/o.tif", "--condition", "N9-B9"]),
    ("simulate/dtype", ["simulate", "{good}", "{d}/o.tif", "--dtype", "int7"]),
    ("simulate/blur-text", ["simulate", "{good}", "{d}/o.tif", "--blur-sigma", "x"]),
    ("simulate/noise-unknown", ["simulate", "{good}", "{d}/o.tif", "--noise", "pink", "--condition", "none"]),
    ("simulate/boundary-unknown", ["simulate", "{good}", "{d}/o.tif", "--boundary", "wrap-ish"]),
    ("simulate/psf-complex", ["simulate", "{good}", "{d}/o.tif", "--psf", "{complex}"]),
    ("segment/no-mode", ["segment", "{good}", "{d}/o.tif"]),
    ("segment/threshold-text", ["segment", "{good}", "{d}/o.tif", "--boundaries", "--threshold", "high"]),
    ("segment/block-size-0", ["segment", "{good}", "{d}/o.zarr", "--boundaries", "--block-size", "0"]),
    ("segment/scoring-unknown", ["segment", "{good}", "{d}/o.tif", "--boundaries", "--scoring", "vibes"]),
    ("segment/model-missing", ["segment", "{good}", "{d}/o.tif", "--model", "{d}/none"]),
    ("superres/factor-0", ["superres", "{frames}", "{d}/o.tif", "--factor", "0"]),
    ("superres/method-unknown", ["superres", "{frames}", "{d}/o.tif", "--method", "magic"]),
    ("superres/prior-unknown", ["superres", "{frames}", "{d}/o.tif", "--prior", "magic"]),
    ("superres/reference-out", ["superres", "{frames}", "{d}/o.tif", "--reference", "99"]),
    ("sample/kind-unknown", ["sample", "cats", "{d}/o.tif"]),
    ("sample/shape-zero", ["sample", "neurites", "{d}/o.tif", "--shape", "0,0"]),
    ("sample/shape-text", ["sample", "neurites", "{d}/o.tif", "--shape", "big"]),
    ("sample/shape-huge", ["sample", "em", "{d}/o.tif", "--shape", "100000,100000,100000"]),
    ("sample/shape-negative", ["sample", "neurites", "{d}/o.tif", "--shape", "-4,16,16"]),
    ("sample/out-unknown-ext", ["sample", "neurites", "{d}/o.xyz", "--shape", "4,16,16"]),
    ("demo/shape-text", ["demo", "--out", "{d}/demo", "--shape", "abc"]),
    ("demo/shape-huge", ["demo", "--out", "{d}/demo", "--shape", "100000,100000,100000"]),
    ("demo/condition", ["demo", "--out", "{d}/demo", "--condition", "N7-B7", "--shape", "4,16,16"]),
    ("evaluate/metric-unknown", ["evaluate", "{good}", "{good}", "--metrics", "vibes"]),
    ("evaluate/data-range-text", ["evaluate", "{good}", "{good}", "--data-range", "wide"]),
    ("evaluate/shape-mismatch", ["evaluate", "{good}", "{labels3d}"]),
    ("evaluate/gt-missing", ["evaluate", "{good}", "{d}/none.tif"]),
    ("evaluate/gt-complex", ["evaluate", "{good}", "{complex}"]),
    ("evaluate/gt-bomb", ["evaluate", "{good}", "{bomb}"]),
    ("trace/out-not-swc", ["trace", "{good}", "{d}/o.txt"]),
    ("trace/seed-text", ["trace", "{good}", "{d}/o.swc", "--seed", "a,b"]),
    ("trace/spacing-count", ["trace", "{good}", "{d}/o.swc", "--spacing", "1,2,3,4"]),
    ("evaluate-trace/tolerance", ["evaluate-trace", "{good}", "{swc}", "{swc}", "--tolerance", "-1"]),
    ("evaluate-trace/gold-forest-single", ["evaluate-trace", "{good}", "{swc}", "{forest}", "--single-tree"]),
    ("proofread/boundary-complex", ["proofread", "{labels}", "{log}", "{d}/o.tif", "--boundary", "{complex}"]),
    ("proofread/labels-float", ["proofread", "{good}", "{log}", "{d}/o.tif"]),
    ("proofread/out-png-uint64", ["proofread", "{bigids}", "{log_big}", "{d}/o.png"]),
    ("train-restore/no-data", ["train-restore", "--out", "{d}/m"]),
    ("train-restore/patch-text", ["train-restore", "--noisy", "{good}", "--noise2void", "--out", "{d}/m",
                                  "--patch", "big"]),
    ("train-restore/ndim-7", ["train-restore", "--noisy", "{good}", "--noise2void", "--out", "{d}/m", "--ndim", "7"]),
    ("train-restore/from-missing", ["train-restore", "--noisy", "{good}", "--noise2void", "--out", "{d}/m",
                                    "--from", "no-such-model"]),
    ("train-segment/count-mismatch", ["train-segment", "-i", "{good}", "-i", "{good}", "-l", "{labels}", "-o",
                                      "{d}/s"]),
    ("train-segment/target-unknown", ["train-segment", "-i", "{good}", "-l", "{labels}", "-o", "{d}/s",
                                      "--target", "vibes"]),
    # usage errors: one line too, not click's usage block
    ("superres/factor-text", ["superres", "{frames}", "{d}/o.tif", "--factor", "abc"]),
    ("restore/missing-argument", ["restore", "{good}"]),
    ("restore/unknown-option", ["restore", "{good}", "{d}/o.tif", "--bogus"]),
    ("restore/workers-text", ["restore", "{good}", "{d}/o.tif", "--workers", "many"]),
    ("evaluate/workers-0", ["evaluate", "{good}", "{good}", "--workers", "0"]),
    ("mire/unknown-command", ["nosuchcommand", "{good}"]),
    ("train-restore/epochs-text", ["train-restore", "--noisy", "{good}", "--noise2void", "--out", "{d}/m",
                                   "--epochs", "ten"]),
    ("simulate/seed-float", ["simulate", "{good}", "{d}/o.tif", "--seed", "1.5"]),
    ("info/level-text", ["info", "{good}", "--level", "top"]),
    ("info/level-missing", ["info", "{ome}", "--level", "7"]),
    ("restore/psf-gaussian-nan", ["restore", "{good}", "{d}/o.tif", "--psf", "gaussian:nan"]),
    ("restore/weight-nan", ["restore", "{good}", "{d}/o.tif", "--method", "wiener", "--weight", "nan"]),
    ("restore/iterations-negative", ["restore", "{good}", "{d}/o.tif", "--method", "rl", "--iterations", "-3"]),
    ("segment/min-size-negative", ["segment", "{good}", "{d}/o.tif", "--boundaries", "--min-size", "-5"]),
    ("train-segment/labels-complex", ["train-segment", "-i", "{good}", "-l", "{complex}", "-o", "{d}/s",
                                      "--ndim", "2"]),
    # EM adaptation (adapt-segment, --from / --sparse / --threshold auto) and flood-filling networks
    ("adapt-segment/image-complex", ["adapt-segment", "{complex}", "-o", "{d}/a"]),
    ("adapt-segment/image-bomb", ["adapt-segment", "{bomb}", "-o", "{d}/a"]),
    ("adapt-segment/image-missing", ["adapt-segment", "{d}/none.tif", "-o", "{d}/a"]),
    ("adapt-segment/image-2d", ["adapt-segment", "{good}", "-o", "{d}/a"]),
    ("adapt-segment/model-missing", ["adapt-segment", "{labels3d}", "-o", "{d}/a", "--model", "{d}/none"]),
    ("adapt-segment/model-unknown-name", ["adapt-segment", "{labels3d}", "-o", "{d}/a", "--model", "vibes3d"]),
    ("segment/threshold-auto-text", ["segment", "{good}", "{d}/o.tif", "--boundaries", "--threshold", "auto:x"]),
    ("segment/threshold-nan", ["segment", "{good}", "{d}/o.tif", "--boundaries", "--threshold", "nan"]),
    ("segment/ffn-complex", ["segment", "{complex}", "{d}/o.tif", "--model", "fibsem3d-ffn"]),
    ("segment/ffn-2d", ["segment", "{good}", "{d}/o.tif", "--model", "fibsem3d-ffn"]),
    ("segment/ffn-block-size-text", ["segment", "{labels3d}", "{d}/o.zarr", "--model", "fibsem3d-ffn",
                                     "--block-size", "big"]),
    ("segment/ffn-block-size-0", ["segment", "{labels3d}", "{d}/o.zarr", "--model", "fibsem3d-ffn",
                                  "--block-size", "0,0,0"]),
    ("segment/ffn-block-size-count", ["segment", "{labels3d}", "{d}/o.zarr", "--model", "fibsem3d-ffn",
                                      "--block-size", "4,4"]),
    ("train-segment/kind-unknown", ["train-segment", "-i", "{good}", "-l", "{labels}", "-o", "{d}/s",
                                    "--kind", "vibes"]),
    ("train-segment/ffn-from", ["train-segment", "-i", "{good}", "-l", "{labels}", "-o", "{d}/s",
                                "--kind", "ffn", "--from", "fibsem3d-affinity"]),
    ("train-segment/ffn-complex", ["train-segment", "-i", "{complex}", "-l", "{labels}", "-o", "{d}/s",
                                   "--kind", "ffn"]),
    ("train-segment/ffn-labels-float", ["train-segment", "-i", "{raw3d}", "-l", "{raw3d}", "-o", "{d}/s",
                                        "--kind", "ffn"]),
    ("train-segment/from-labels-shape", ["train-segment", "-i", "{raw3d}", "-l", "{labels3d}", "-o", "{d}/s",
                                         "--from", "fibsem3d-affinity"]),
    ("train-segment/from-labels-float", ["train-segment", "-i", "{raw3d}", "-l", "{raw3d}", "-o", "{d}/s",
                                         "--from", "fibsem3d-affinity"]),
    ("train-segment/from-not-model", ["train-segment", "-i", "{good}", "-l", "{labels}", "-o", "{d}/s",
                                      "--from", "{good}"]),
    ("train-segment/sparse-labels-shape", ["train-segment", "-i", "{raw3d}", "-l", "{labels3d}", "-o", "{d}/s",
                                           "--from", "fibsem3d-affinity", "--sparse"]),
    ("train-segment/sparse-labels-float", ["train-segment", "-i", "{raw3d}", "-l", "{raw3d}", "-o", "{d}/s",
                                           "--from", "fibsem3d-affinity", "--sparse"]),
    ("train-segment/sparse-labels-complex", ["train-segment", "-i", "{raw3d}", "-l", "{complex}", "-o", "{d}/s",
                                             "--from", "fibsem3d-affinity", "--sparse"]),
    ("train-segment/sparse-labels-missing", ["train-segment", "-i", "{good}", "-l", "{d}/none.tif", "-o",
                                             "{d}/s", "--from", "fibsem3d-affinity", "--sparse"]),
    ("train-segment/ffn-block-size", ["train-segment", "-i", "{good}", "-l", "{labels}", "-o", "{d}/s",
                                      "--kind", "ffn", "--patch", "big"]),
    ("adapt-segment/nan-3d", ["adapt-segment", "{nan3d}", "-o", "{d}/a"]),
    ("adapt-segment/4d", ["adapt-segment", "{vol4d}", "-o", "{d}/a"]),
    ("segment/ffn-nan-3d", ["segment", "{nan3d}", "{d}/o.tif", "--model", "fibsem3d-ffn"]),
    ("segment/ffn-4d", ["segment", "{vol4d}", "{d}/o.tif", "--model", "fibsem3d-ffn"]),
    ("segment/auto-nan-3d", ["segment", "{nan3d}", "{d}/o.tif", "--model", "fibsem3d-affinity", "--threshold",
                             "auto"]),
    ("segment/auto-4d", ["segment", "{vol4d}", "{d}/o.tif", "--model", "fibsem3d-affinity", "--threshold", "auto"]),
    ("train-segment/ffn-nan-3d", ["train-segment", "-i", "{nan3d}", "-l", "{raw3d}", "-o", "{d}/s", "--kind", "ffn"]),
    ("train-segment/sparse-nan-3d", ["train-segment", "-i", "{nan3d}", "-l", "{raw3d}", "-o", "{d}/s",
                                     "--from", "fibsem3d-affinity", "--sparse"]),
    ("segment/ffn-threshold", ["segment", "{raw3d}", "{d}/o.tif", "--model", "fibsem3d-ffn", "--threshold", "auto"]),
    ("segment/ffn-predict-halo", ["segment", "{raw3d}", "{d}/o.zarr", "--model", "fibsem3d-ffn", "--block-size",
                                  "8,8,8", "--predict-halo", "x"]),
]


def _cases():
    cases = []
    for kind in K.GATE_KINDS:
        for cmd in IMAGE_COMMANDS:
            if not (cmd == "info-json" and kind in PIXEL_DAMAGE):
                cases.append((f"{cmd}/{kind}", "image", cmd, kind))
    for kind in K.CONTENT_KINDS:
        for cmd in IMAGE_COMMANDS:
            if (cmd, kind) not in CONTENT_OK:
                cases.append((f"{cmd}/content-{kind}", "content", cmd, kind))
    for kind in K.LOG_KINDS:
        cases.append((f"proofread/log-{kind}", "log", "proofread", kind))
    for kind in K.SWC_KINDS:
        cases.append((f"evaluate-trace/test-{kind}", "swc-test", "evaluate-trace", kind))
        cases.append((f"evaluate-trace/gold-{kind}", "swc-gold", "evaluate-trace", kind))
    for kind in MODEL_KINDS:
        cases.append((f"restore/model-{kind}", "model", "restore", kind))
        cases.append((f"segment/model-{kind}", "model", "segment", kind))
        cases.append((f"adapt-segment/model-{kind}", "model", "adapt-segment", kind))
        cases.append((f"train-segment/from-{kind}", "model", "train-segment", kind))
    for name, argv in OPTION_CASES:
        cases.append((name, "option", name.split("/")[0], argv))
    return cases


CASES = _cases()
#: distinct kinds of bad input (a generator, whichever commands it is driven through)
KINDS = sorted({f"{group}:{kind}" if isinstance(kind, str) else f"{group}:{name}"
                for name, group, _, kind in CASES})


def _snapshot(d: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            st = p.stat()
            out[str(p.relative_to(d))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def _companions(d: Path) -> dict:
    """Valid files the command lines refer to besides the bad input."""
    import tifffile

    from mire.io import imwrite

    frames = d / "frames.tif"
    imwrite(frames, np.random.default_rng(0).random((4, 8, 8)).astype(np.float32), axes="TYX")
    forest = d / "forest.swc"
    forest.write_text("1 1 5 5 0 1 -1\n2 1 6 5 0 1 1\n3 1 9 9 0 1 -1\n")
    big = np.zeros((16, 16), np.uint64)
    big[:, :8], big[:, 8:] = 2**62 + 1, 2**62 + 2
    tifffile.imwrite(d / "bigids.tif", big)
    log_big = d / "log_big.json"
    log_big.write_text(json.dumps({"format": "mire-edit-log", "edits": [{"op": "merge", "ids": [2**62 + 1,
                                                                                                  2**62 + 2]}]}))
    return {
        "good": K.good_image(d), "labels": K.good_labels(d), "labels3d": K.good_labels(d, "lab3.tif", (2, 8, 8)),
        "log": K.good_log(d), "swc": K.good_swc(d), "frames": str(frames), "forest": str(forest),
        "complex": K.make_complex64_tif(d), "bomb": K.make_tiff_bomb(d), "bigids": str(d / "bigids.tif"),
        "log_big": str(log_big), "ome": K._ome(d, "good.ome.zarr"), "raw3d": _raw3d(d),
        "nan3d": _raw3d(d, "nan3d.tif", nan=True), "vol4d": _raw3d(d, "vol4d.tif", shape=(2, 4, 16, 16)),
    }


def _raw3d(d, name="raw3d.tif", shape=(4, 16, 16), nan=False):
    from mire.io import imwrite

    p = d / name
    v = np.random.default_rng(1).random(shape).astype(np.float32)
    if nan:
        v[1, 2, 3] = np.nan
    imwrite(p, v, axes="CZYX"[4 - len(shape):])
    return str(p)


def _argv(template, d, values):
    return [a.format(d=d, **values) for a in template]


@pytest.fixture(scope="module")
def companions(tmp_path_factory):
    d = tmp_path_factory.mktemp("companions")
    return d, _companions(d)


def run_case(group, cmd, kind, d: Path, companions):
    d.mkdir(parents=True, exist_ok=True)
    shared, values = companions
    if group in ("image", "content"):
        make = K.GATE_KINDS[kind] if group == "image" else K.CONTENT_KINDS[kind]
        argv = _argv(IMAGE_COMMANDS[cmd], d, {**values, "x": make(d)})
    elif group == "log":
        argv = ["proofread", values["labels"], K.LOG_KINDS[kind](d), f"{d}/p.tif"]
    elif group == "swc-test":
        argv = ["evaluate-trace", values["good"], K.SWC_KINDS[kind](d), values["swc"]]
    elif group == "swc-gold":
        argv = ["evaluate-trace", values["good"], values["swc"], K.SWC_KINDS[kind](d)]
    elif group == "model":
        model = MODEL_KINDS[kind](d)
        argv = {"restore": ["restore", values["good"], f"{d}/o.tif", "--model", model],
                "segment": ["segment", values["good"], f"{d}/o.tif", "--model", model],
                "adapt-segment": ["adapt-segment", values["labels3d"], "-o", f"{d}/a", "--model", model],
                "train-segment": ["train-segment", "-i", values["good"], "-l", values["labels"], "-o", f"{d}/s",
                                  "--from", model, "--sparse", "--epochs", "1", "--steps", "1",
                                  "--batch-size", "1"]}[cmd]
    else:
        argv = _argv(kind, d, values)
    before = {**_snapshot(d), **{f"companions/{k}": v for k, v in _snapshot(shared).items()}}
    result = runner.invoke(app, argv)
    after = {**_snapshot(d), **{f"companions/{k}": v for k, v in _snapshot(shared).items()}}
    return argv, result, before, after


def check(argv, result, before, after):
    err = result.stderr
    problems = []
    if result.exit_code != 2:
        problems.append(f"exit code {result.exit_code} ({type(result.exception).__name__}: {result.exception})")
    lines = [line for line in err.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr: {err[-400:]!r}")
    if "Traceback" in result.output:
        problems.append("a traceback")
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        problems.append(f"files created or changed: {changed[:5]}")
    return problems


@pytest.mark.parametrize("name,group,cmd,kind", CASES, ids=[c[0] for c in CASES])
def test_fuzz_case(tmp_path, companions, name, group, cmd, kind):
    argv, result, before, after = run_case(group, cmd, kind, tmp_path, companions)
    problems = check(argv, result, before, after)
    assert not problems, f"mire {' '.join(argv)}: " + "; ".join(problems)


def test_case_count():
    """The suite's size, as quoted in the closing note (>= 100 kinds across the commands)."""
    commands = {c[2] for c in CASES}
    print(f"\nfuzz: {len(CASES)} cases, {len(KINDS)} distinct kinds of bad input, {len(commands)} commands")
    assert len(CASES) >= 100 and len(KINDS) >= 100
    driven = {argv[0] if isinstance(argv, list) else None for *_, argv in CASES} | commands
    for command in ("info", "restore", "simulate", "segment", "superres", "trace", "evaluate", "evaluate-trace",
                    "proofread", "train-restore", "train-segment", "sample", "demo"):
        assert command in driven, command
