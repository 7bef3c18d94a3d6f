"""Gaps found by a fresh-user audit of the CLI (issue #20 item 5 and the project's bad-input standard).

Each case failed before its fix: a stray warning line, an output folder created or an image left
behind on a failed command, or an error that named the wrong problem. Every CLI case asserts the
exit code, the one stderr line's text and that no output was written.
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from mire.cli import app
from mire.io import imwrite

runner = CliRunner()


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def _unclosed(caught, path) -> list:
    return [w for w in caught if issubclass(w.category, ResourceWarning) and str(path) in str(w.message)]


def test_lazy_tiff_read_closes_its_file(tmp_path):
    # before: the lazy view's handle was left to the garbage collector, whose ResourceWarning
    # `mire` printed as "warning: unclosed file <_io.BufferedReader ...>" after a good command
    from mire.io import read_image

    path = tmp_path / "v.tif"
    imwrite(path, np.arange(4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16), axes="ZYX")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path, lazy=True)
        assert float(image.data.sum().compute()) == float(np.arange(4 * 16 * 16).sum())
        del image
        gc.collect()
    assert not _unclosed(caught, path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["info", str(path)])
        gc.collect()
    assert result.exit_code == 0 and "unclosed" not in result.stderr
    assert not _unclosed(caught, path)


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    img2 = tmp_path / "img2.tif"
    imwrite(img2, rng.random((32, 32)).astype(np.float32), axes="YX")
    raw3 = tmp_path / "raw3.tif"
    imwrite(raw3, (rng.random((16, 64, 64)) * 255).astype(np.uint8), axes="ZYX")
    lab = np.zeros((32, 32), np.uint16)
    lab[:, :16], lab[:, 16:] = 1, 2
    lab2 = tmp_path / "lab2.tif"
    imwrite(lab2, lab, axes="YX", labels=True)
    return tmp_path, str(img2), str(raw3), str(lab2)


TRAIN = ["--epochs", "1", "--steps", "1", "--ndim", "2", "--patch", "16,16", "--batch-size", "2"]


@pytest.mark.parametrize("command", ["train-restore", "train-segment", "adapt-segment"])
def test_model_output_in_a_missing_folder_is_refused_before_training(inputs, command):
    # before: exit 0, the folder silently created and the model written into it
    d, img2, raw3, lab2 = inputs
    out = d / "no-such-folder" / "model"
    argv = {"train-restore": ["train-restore", "--noisy", img2, "--noise2void", "--out", str(out), *TRAIN],
            "train-segment": ["train-segment", "-i", img2, "-l", lab2, "-o", str(out), *TRAIN],
            "adapt-segment": ["adapt-segment", raw3, "-o", str(out)]}[command]
    line = _one_error_line(runner.invoke(app, argv))
    assert f"cannot write model {out}: folder {out.parent} does not exist" in line
    assert not out.parent.exists()


@pytest.mark.parametrize("kind,extra", [("neurites", "--swc"), ("em", "--labels")])
def test_sample_checks_every_output_before_writing_the_first(tmp_path, kind, extra):
    # before: the image was written, then the command failed on its SWC / labels path
    companion = tmp_path / "missing" / ("gold.swc" if extra == "--swc" else "labels.tif")
    image = tmp_path / "img.tif"
    result = runner.invoke(app, ["sample", kind, str(image), "--shape", "8,32,32", extra, str(companion)])
    line = _one_error_line(result)
    assert f"cannot write {companion}: folder {companion.parent} does not exist" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sample_refuses_an_swc_path_without_swc_suffix(tmp_path):
    result = runner.invoke(app, ["sample", "neurites", str(tmp_path / "img.tif"), "--shape", "8,32,32",
                                 "--swc", str(tmp_path / "gold.txt")])
    assert "output must be a .swc file" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_too_small_for_batch_norm_is_named(inputs):
    # before: torch's "Expected more than 1 value per channel when training, got input size
    # torch.Size([1, 96, 1, 1])", which names neither the patch nor the batch size
    d, img2, _, lab2 = inputs
    out = d / "seg"
    result = runner.invoke(app, ["train-segment", "-i", img2, "-l", lab2, "-o", str(out), "--epochs", "1",
                                 "--steps", "1", "--ndim", "2", "--patch", "8,8", "--batch-size", "1"])
    line = _one_error_line(result)
    assert "a batch of 1 patch(es) of size (8, 8) is too small for this network" in line
    assert "--patch" in line and "--batch-size" in line
    assert not (d / "seg.json").exists() and not (d / "seg.safetensors").exists()


def test_adapting_to_a_constant_volume_says_it_is_constant(tmp_path):
    # before: "image of shape (16, 64, 64) is too small to measure a correlation length"
    from mire.segment.adapt import correlation_length

    with pytest.raises(ValueError, match="is constant in its central 96-voxel window"):
        correlation_length(np.full((16, 64, 64), 255, np.uint8))
    with pytest.raises(ValueError, match="too small"):  # a too-small image still says that
        correlation_length(np.random.default_rng(0).random((4, 4, 4)))
    path = tmp_path / "flat.tif"
    imwrite(path, np.zeros((16, 64, 64), np.uint8), axes="ZYX")
    line = _one_error_line(runner.invoke(app, ["adapt-segment", str(path), "-o", str(tmp_path / "a")]))
    assert "is constant" in line and "no correlation length" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.tif"]


def test_superres_checks_the_uncertainty_path_before_writing_the_result(tmp_path):
    # before: the result was written, then the command failed on --uncertainty's missing folder
    frames = tmp_path / "frames.tif"
    imwrite(frames, np.random.default_rng(0).random((4, 8, 8)).astype(np.float32), axes="TYX")
    sd = tmp_path / "missing" / "sd.tif"
    result = runner.invoke(app, ["superres", str(frames), str(tmp_path / "sr.tif"), "--factor", "2",
                                 "--method", "bayesian", "--uncertainty", str(sd)])
    assert f"cannot write {sd}: folder {sd.parent} does not exist" in _one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.tif"]


@pytest.mark.parametrize("action", ["simulate", "restore", "superres", "train"])
def test_napari_actions_refuse_complex_and_nan_layers(tmp_path, action):
    # before: the actions cast the layer with np.asarray(..., float32) first, which dropped the
    # imaginary part of a complex layer (issue #20 item 5) and let training run on NaN pixels
    from mire._napari import _actions

    run = {"simulate": lambda x: _actions.simulate_layer(x),
           "restore": lambda x: _actions.restore_layer(x, method="wiener"),
           "superres": lambda x: _actions.superres_layers(x, factor=2, method="ml"),
           "train": lambda x: _actions.train_model(x, steps=1, save_to=str(tmp_path / "m"))}[action]
    good = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
    with pytest.raises(TypeError, match=r"has complex values \(dtype complex64\).*np\.abs"):
        run(good.astype(np.complex64))
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="contains 1 NaN or infinite values"):
        run(bad)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["abc", "-5", "0", "nan"])
def test_a_bad_memory_limit_is_named_not_ignored(tmp_path, monkeypatch, value):
    # before: 'abc' / 'nan' were silently ignored and '-5' gave "only -5 B is available"
    path = tmp_path / "v.tif"
    imwrite(path, np.ones((4, 16, 16), np.float32), axes="ZYX")
    monkeypatch.setenv("MIRE_MEMORY_LIMIT", value)
    result = runner.invoke(app, ["restore", str(path), str(tmp_path / "o.tif"), "--method", "wiener"])
    line = _one_error_line(result)
    assert f"MIRE_MEMORY_LIMIT={value!r} must be a positive number of bytes" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]


def test_paths_with_brackets_are_printed_as_named(tmp_path):
    # before: rich read "[raw]" and "[bold]" in the paths as markup: "wrote .../out x.tif", a file
    # the user cannot find; the error line keeps its red "error:" prefix
    src = tmp_path / "[raw] stack.tif"
    imwrite(src, np.random.default_rng(0).random((4, 16, 16)).astype(np.float32), axes="ZYX")
    out = tmp_path / "out [bold]x.tif"
    result = runner.invoke(app, ["restore", str(src), str(out), "--method", "wiener"])
    assert result.exit_code == 0 and out.exists()
    assert f"wrote {out} (" in " ".join(result.stderr.split())
    result = runner.invoke(app, ["trace", str(src), str(tmp_path / "t [b].swc")])
    assert result.exit_code == 0 and f"{tmp_path / 't [b].swc'}: " in result.stderr
    missing = tmp_path / "[x]" / "o.tif"
    line = _one_error_line(runner.invoke(app, ["restore", str(src), str(missing), "--method", "wiener"]))
    assert line.startswith("error: ") and f"cannot write {missing}: folder {missing.parent} does not exist" in line


def test_a_huge_gaussian_psf_is_refused_before_it_is_built(tmp_path, monkeypatch):
    # before: `--psf gaussian:100` built an 801^3 float64 kernel (and its grids, ~23 GiB) before the
    # "psf much larger than the image" check, so the command was killed for memory, not refused
    from mire.optics import gaussian_psf

    built = []
    monkeypatch.setattr("mire.optics.psf.gaussian_psf", lambda *a, **k: built.append(a) or gaussian_psf(*a, **k))
    path = tmp_path / "v.tif"
    imwrite(path, np.ones((8, 32, 32), np.float32), axes="ZYX")
    for extra in ([], ["--block-size", "4,16,16"]):
        out = tmp_path / ("o.ome.zarr" if extra else "o.tif")
        result = runner.invoke(app, ["restore", str(path), str(out), "--method", "wiener", "--psf", "gaussian:100",
                                     *extra])
        line = _one_error_line(result)
        assert "PSF 'gaussian:100' makes a 801x801x801 kernel, much larger than the image (8, 32, 32)" in line
    assert built == [] and sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]
    # the API's own builder is gated by the memory it would take
    monkeypatch.setenv("MIRE_MEMORY_LIMIT", "1e6")
    with pytest.raises(ValueError, match=r"a 801x801x801 kernel needs .* of memory but only 976.6 KiB"):
        gaussian_psf(100.0, ndim=3)


@pytest.mark.parametrize("command", ["restore", "segment"])
@pytest.mark.parametrize("out", ["o.ome.zarr", "o.zarr"])
def test_workers_0_leaves_no_run_folder(tmp_path, command, out):
    # before: the refusal came after the resumable run folder (.o.ome.zarr.mire-run / .stitch) was made
    path = tmp_path / "v.tif"
    imwrite(path, np.random.default_rng(0).random((8, 32, 32)).astype(np.float32), axes="ZYX")
    mode = ["--method", "wiener"] if command == "restore" else ["--boundaries"]
    result = runner.invoke(app, [command, str(path), str(tmp_path / out), *mode, "--block-size", "4,16,16",
                                 "--workers", "0"])
    assert "workers must be >= 1, got 0" in _one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.tif"]


@pytest.mark.parametrize("option,value,message", [("--steps", "0", "steps_per_epoch must be a positive integer, got 0"),
                                                  ("--batch-size", "0", "batch_size must be a positive integer, got 0"),
                                                  ("--epochs", "0", "epochs must be a positive integer, got 0"),
                                                  ("--lr", "-1", "lr (learning rate) must be a positive number")])
def test_training_with_nothing_to_do_is_refused_and_saves_no_model(inputs, option, value, message):
    # before: --steps 0 saved an untrained model, then failed with "IndexError: list index out of
    # range"; --batch-size 0 gave the same IndexError
    d, img2, _, _ = inputs
    argv = ["train-restore", "--noisy", img2, "--noise2void", "--out", str(d / "m"), "--epochs", "1", "--steps", "1",
            "--ndim", "2", "--patch", "16,16", "--batch-size", "2", "--lr", "1e-3"]
    argv[argv.index(option) + 1] = value
    assert message in _one_error_line(runner.invoke(app, argv))
    assert not (d / "m.json").exists() and not (d / "m.safetensors").exists()


@pytest.mark.parametrize("factor", ["0", "100"])
def test_sample_frames_factor_is_checked(tmp_path, factor):
    # before: "ZeroDivisionError: integer division or modulo by zero" / "image is empty (shape (0, 0))"
    result = runner.invoke(app, ["sample", "frames", str(tmp_path / "f.tif"), "--shape", "64,64", "--factor", factor])
    line = _one_error_line(result)
    assert f"--factor must be an integer from 1 to the --shape's smallest size (64)" in line and factor in line
    assert list(tmp_path.iterdir()) == []


def test_error_lines_show_numbers_as_typed_not_numpy_reprs(tmp_path):
    # before: "spacing must hold positive numbers, got (np.float64(0.0), np.float64(1.0), ...)"
    from mire.cli._common import one_line

    assert one_line(ValueError("got (np.float64(0.5), np.int64(-3), np.float32(nan), np.float64(1e-05)); "
                               "use x.astype(np.float32)")) == "got (0.5, -3, nan, 1e-05); use x.astype(np.float32)"
    path = tmp_path / "v.tif"
    imwrite(path, np.random.default_rng(0).random((8, 32, 32)).astype(np.float32), axes="ZYX")
    line = _one_error_line(runner.invoke(app, ["trace", str(path), str(tmp_path / "t.swc"), "--spacing", "0,1,1"]))
    assert line == "error: spacing must hold positive numbers, got [0.0, 1.0, 1.0]"
    line = _one_error_line(runner.invoke(app, ["trace", str(path), str(tmp_path / "t.swc"), "--seed", "100,1,1"]))
    assert "seed [100.0, 1.0, 1.0] lies outside the image of shape (8, 32, 32)" in line and "np." not in line


@pytest.mark.parametrize("command", ["restore", "segment", "trace"])
def test_an_rgb_file_is_refused_by_commands_that_take_one_image(tmp_path, command):
    # before: restore said "--axes 'YXC': ..." though no --axes was given; segment and trace took
    # the 3 colour channels for a 3-slice Z stack and wrote a result
    import tifffile

    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8), photometric="rgb")
    out = tmp_path / ("o.swc" if command == "trace" else "o.tif")
    extra = {"restore": ["--method", "wiener"], "segment": ["--boundaries"], "trace": []}[command]
    line = _one_error_line(runner.invoke(app, [command, str(rgb), str(out), *extra]))
    assert line == (f"error: {rgb}: {command} works on one 2D/3D image, but the file has axes YXC (shape (32, 32, 3)); "
                    "split the channels / time points first")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.tif"]


@pytest.mark.parametrize("name,vendor", [("scan.czi", "Zeiss"), ("stack.ND2", "Nikon"), ("run.lif", "Leica")])
def test_a_microscope_vendor_file_says_how_to_convert_it(tmp_path, name, vendor):
    # before: only "unknown image format '.czi'; mire reads ..." with no way forward
    path = tmp_path / name
    path.write_bytes(b"\x00" * 64)
    line = _one_error_line(runner.invoke(app, ["info", str(path)]))
    suffix = path.suffix.lower()
    assert f"unknown image format {suffix!r}" in line
    assert f"{suffix} is {vendor}'s own format: export it as OME-TIFF first" in line
    line = _one_error_line(runner.invoke(app, ["info", str(tmp_path)]))  # an empty folder: no vendor hint
    assert "own format" not in line


@pytest.mark.parametrize("option, name", [("--max-gap", "max_gap"), ("--min-branch", "min_branch_length")])
def test_trace_refuses_negative_lengths(tmp_path, option, name):
    # before: a negative length was taken as "no bridging" / "no pruning" without a word
    img = np.zeros((8, 32, 32), np.uint8)
    img[4, 16, 4:28] = 200
    path = tmp_path / "line.tif"
    imwrite(path, img, axes="ZYX")
    line = _one_error_line(runner.invoke(app, ["trace", str(path), str(tmp_path / "t.swc"), option, "-1"]))
    assert f"{name} must be a length >= 0 in pixels, got -1" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.tif"]


def test_superres_refuses_zero_iterations(tmp_path):
    # before: --n-iter 0 ran the method's default iteration count
    frames = tmp_path / "frames.tif"
    imwrite(frames, np.random.default_rng(0).random((4, 8, 8)).astype(np.float32), axes="TYX")
    line = _one_error_line(runner.invoke(app, ["superres", str(frames), str(tmp_path / "sr.tif"), "--factor", "2",
                                               "--n-iter", "0"]))
    assert "n_iter must be a whole number >= 1" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.tif"]


@pytest.mark.parametrize("command", [
    ["restore", "{img}", "{img}", "--method", "wiener", "--weight", "0.01"],
    ["restore", "{img}", "{img}", "--block-size", "8,16,16"],
    ["simulate", "{img}", "{img}"],
    ["segment", "{img}", "{img}", "--boundaries"],
])
def test_commands_refuse_to_overwrite_their_input(tmp_path, command):
    # before: the input was replaced by the result (a blockwise run reads blocks it has already replaced)
    path = tmp_path / "in.tif"
    data = np.random.default_rng(0).integers(0, 200, (8, 32, 32)).astype(np.uint8)
    imwrite(path, data, axes="ZYX")
    before = path.read_bytes()
    line = _one_error_line(runner.invoke(app, [c.format(img=path) for c in command]))
    assert f"output {path} is the input" in line and "another name" in line
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_segment_refuses_out_of_range_threshold_and_seed_spacing(tmp_path):
    # before: --threshold 2 ran (every voxel "inside", one segment) and --min-distance -1 ran as 1 voxel
    path = tmp_path / "b.tif"
    imwrite(path, np.random.default_rng(0).random((8, 32, 32)).astype(np.float32), axes="ZYX")
    out = str(tmp_path / "s.tif")
    line = _one_error_line(runner.invoke(app, ["segment", str(path), out, "--boundaries", "--threshold", "0.5,2"]))
    assert "--threshold values must lie in [0, 1] (a probability), got 2.0" in line
    line = _one_error_line(runner.invoke(app, ["segment", str(path), out, "--boundaries", "--min-distance", "-1"]))
    assert "min_distance must be a distance >= 0 in voxels, got -1" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tif"]


def test_distance_seeds_refuses_out_of_range_options():
    from mire.segment.watershed import distance_seeds, seeded_watershed

    b = np.random.default_rng(0).random((16, 16))
    for kw, msg in (({"min_distance": -1}, "min_distance must be"), ({"sigma": float("nan")}, "sigma must be"),
                    ({"threshold": 1.5}, "threshold must be a boundary probability")):
        with pytest.raises(ValueError, match=msg):
            distance_seeds(b, **kw)
        with pytest.raises(ValueError, match=msg):
            seeded_watershed(b, **kw)


def test_version_option_prints_the_package_metadata_version():
    from importlib.metadata import version

    import mire

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"mire {version('mire')}"
    assert mire.__version__ == version("mire")


def test_superres_refuses_a_z_stack_as_frames(tmp_path):
    # before: a ZYX file's slices were registered as if they were shifted frames of one image
    stack = tmp_path / "zstack.tif"
    imwrite(stack, np.random.default_rng(0).random((4, 8, 8)).astype(np.float32), axes="ZYX")
    result = runner.invoke(app, ["superres", str(stack), str(tmp_path / "sr.tif"), "--factor", "2"])
    line = _one_error_line(result)
    assert "has axes ZYX (shape (4, 8, 8)), a Z stack, not frames" in line and "axes TYX" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zstack.tif"]


def test_in_memory_affinities_read_the_channel_axis_from_the_file(tmp_path):
    # before: without --block-size a file labelled ZYX was segmented as 8 channels of a 2D map (exit 0);
    # the blockwise path already refused it. Both now share one check.
    from mire.segment import affinities

    lab = np.zeros((8, 32, 32), np.uint32)
    lab[:, :, :16], lab[:, :, 16:] = 1, 2
    affs, _ = affinities(lab)  # (3, 8, 32, 32), channels first
    zyx = tmp_path / "zyx.tif"
    imwrite(zyx, affs[0], axes="ZYX")
    out = tmp_path / "seg.tif"
    line = _one_error_line(runner.invoke(app, ["segment", str(zyx), str(out), "--affinities", "-t", "0.5"]))
    assert "has axes ZYX: --affinities needs a channel axis" in line
    assert not out.exists()
    # a file that names its channel axis last is moved channel-first and segmented into the two halves
    zyxc = tmp_path / "zyxc.tif"
    imwrite(zyxc, np.moveaxis(affs, 0, -1), axes="ZYXC")
    res = runner.invoke(app, ["segment", str(zyxc), str(out), "--affinities", "-t", "0.5"])
    assert res.exit_code == 0, res.output
    from mire.io import imread

    seg = imread(out)
    assert seg.shape == (8, 32, 32)
    assert len(np.unique(seg[:, :, :15])) == 1 and len(np.unique(seg[:, :, 17:])) == 1
    assert seg[0, 0, 0] != seg[0, 0, 31]


def test_superres_axes_names_an_unlabelled_stack(tmp_path):
    # before: superres had no --axes, so a plain TIFF was always read time-first: frames saved
    # time-last ran as 16 "frames" of 16 x 4 (exit 0, wrong image), and a plain Z stack could not be told apart
    import tifffile

    from mire.io import imread

    frames = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "tyx.tif", frames, photometric="minisblack", metadata=None)
    tifffile.imwrite(tmp_path / "yxt.tif", np.moveaxis(frames, 0, -1).copy(), photometric="minisblack",
                     metadata=None)
    opts = ["--factor", "2", "--method", "ml", "--n-iter", "3"]
    res = runner.invoke(app, ["superres", str(tmp_path / "tyx.tif"), str(tmp_path / "a.tif"), *opts])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["superres", str(tmp_path / "yxt.tif"), str(tmp_path / "b.tif"), "--axes", "YXT", *opts])
    assert res.exit_code == 0, res.output
    a, b = imread(tmp_path / "a.tif"), imread(tmp_path / "b.tif")
    assert a.shape == b.shape == (32, 32)
    np.testing.assert_array_equal(a, b)

    before = sorted(p.name for p in tmp_path.iterdir())
    out = str(tmp_path / "c.tif")
    line = _one_error_line(runner.invoke(app, ["superres", str(tmp_path / "tyx.tif"), out, "--axes", "ZYX", *opts]))
    assert "--axes ZYX: superres needs frames along a T axis" in line
    line = _one_error_line(runner.invoke(app, ["superres", str(tmp_path / "tyx.tif"), out, "--axes", "TZYX", *opts]))
    assert "tyx.tif" in line and "has 4 letters but the data has 3 dimensions" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("blockwise", [False, True])
def test_unlabelled_affinities_are_read_channel_first_and_a_note_says_so(tmp_path, blockwise):
    # the convention is kept (other tools write (C, Z, Y, X) arrays without axes metadata), but a plain
    # Z stack fits it too: before, it was segmented as Z channels of a 2D map with no word on how it was read
    import tifffile

    from mire.io import imread
    from mire.segment import affinities

    lab = np.zeros((32, 32), np.uint32)
    lab[:, :16], lab[:, 16:] = 1, 2
    affs, _ = affinities(lab)  # (2, 32, 32)
    path = tmp_path / "affs.tif"
    tifffile.imwrite(path, affs.astype(np.float32), photometric="minisblack", metadata=None)
    out = tmp_path / ("seg.ome.zarr" if blockwise else "seg.tif")
    argv = ["segment", str(path), str(out), "--affinities", "-t", "0.5"] + (["--block-size", "16"] if blockwise else [])
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert "note: " + str(path) + " has no axes metadata; read as (C, Y, X) affinities, 2 channels over (32, 32)" \
        in res.stderr
    seg = np.asarray(imread(out))
    assert seg.shape == (32, 32)
    assert len(np.unique(seg[:, :15])) == 1 and len(np.unique(seg[:, 17:])) == 1 and seg[0, 0] != seg[0, 31]


def test_superres_refuses_a_nan_or_infinite_weight(tmp_path):
    # before: `--weight nan` passed the `weight < 0` check, and an all-NaN image was written (exit 0)
    from mire.superres import superresolve

    frames = np.random.default_rng(0).random((4, 8, 8))
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
            superresolve(frames, factor=2, method="map", weight=bad)
    with pytest.raises(ValueError, match="nu must be > 0"):
        superresolve(frames, factor=2, method="map", robust=True, nu=float("nan"))
    path = tmp_path / "fr.tif"
    imwrite(path, frames.astype(np.float32), axes="TYX")
    line = _one_error_line(runner.invoke(app, ["superres", str(path), str(tmp_path / "o.tif"), "--weight", "nan"]))
    assert "weight must be a finite number >= 0" in line and "nan" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fr.tif"]


def test_sample_em_refuses_labels_written_over_the_image(tmp_path):
    # before: exit 0; the labels were written over the image just written, so the EM volume was lost
    out = tmp_path / "em.tif"
    line = _one_error_line(runner.invoke(app, ["sample", "em", str(out), "--shape", "8,32,32", "--labels", str(out)]))
    assert f"--labels {out} is the image output {out}" in line
    assert list(tmp_path.iterdir()) == []


def test_evaluate_trace_refuses_a_nan_threshold(tmp_path):
    # before: exit 0 with precision = recall = 0: NaN compares False with every voxel, so both regions were empty
    from mire.trace import region_grow

    img = np.zeros((8, 32, 32), np.float32)
    img[4, 5, 4:12] = 1.0
    swc = np.array([[1, 1, 5, 5, 4, 1, -1], [2, 1, 10, 5, 4, 1, 1]], float)
    with pytest.raises(ValueError, match="threshold must be a finite intensity, got nan"):
        region_grow(img, swc, threshold=float("nan"))
    path, gold = tmp_path / "img.tif", tmp_path / "gold.swc"
    imwrite(path, img, axes="ZYX")
    gold.write_text("1 1 5 5 4 1 -1\n2 1 10 5 4 1 1\n")
    line = _one_error_line(runner.invoke(app, ["evaluate-trace", str(path), str(gold), str(gold),
                                               "--threshold", "nan"]))
    assert "threshold must be a finite intensity, got nan" in line
    res = runner.invoke(app, ["evaluate-trace", str(path), str(gold), str(gold), "--threshold", "0.5"])
    assert res.exit_code == 0 and "recall          1.0000" in res.output, res.output


def test_train_restore_refuses_pairs_of_different_shapes(inputs):
    # before: "error: operands could not be broadcast together with shapes (1024,) (8192,)"
    from mire.learn.examples import pairs_sampler

    d, img2, raw3, lab2 = inputs
    with pytest.raises(ValueError, match=r"noisy image 0 has shape \(32, 32\) but its clean partner \(16, 64, 64\)"):
        pairs_sampler(img2, raw3, patch=(8, 8), align=True)
    before = sorted(p.name for p in d.iterdir())
    line = _one_error_line(runner.invoke(app, ["train-restore", "--noisy", img2, "--clean", raw3, "--out",
                                               str(d / "m"), *TRAIN]))
    assert "noisy image 0 has shape (32, 32) but its clean partner (16, 64, 64)" in line
    assert sorted(p.name for p in d.iterdir()) == before


@pytest.mark.parametrize("mode", ["--boundaries", "--affinities"])
def test_blockwise_segment_of_a_refused_input_leaves_no_scratch_folder(tmp_path, mode):
    # before: the refusal (a NaN, or affinities outside [0, 1]) came from a block, after the resumable
    # scratch folder (.o.ome.zarr.stitch / .o.ome.zarr.boundary) was made, and the folder stayed
    rng = np.random.default_rng(0)
    if mode == "--boundaries":
        data, axes, message = rng.random((8, 32, 32)).astype(np.float32), "ZYX", "contains 1 NaN or infinite values"
        data[3, 20, 20] = np.nan
    else:
        data, axes, message = rng.random((3, 8, 32, 32)).astype(np.float32), "CZYX", "affinities must be in [0, 1]"
        data[0, 3, 20, 20] = 3.0
    path = tmp_path / "in.tif"
    imwrite(path, data, axes=axes)
    line = _one_error_line(runner.invoke(app, ["segment", str(path), str(tmp_path / "o.ome.zarr"), mode,
                                               "--block-size", "16"]))
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_train_segment_refuses_a_threshold_outside_0_1_and_labels_that_are_all_0(inputs):
    # before: both trained and saved a model (exit 0): --threshold 2 was stored with it, and all-zero
    # dense labels gave a model that had seen no segment
    d, img2, _, lab2 = inputs
    opts = ["-o", str(d / "s"), "--epochs", "1", "--steps", "1", "--ndim", "2", "--patch", "16,16", "--batch-size", "1"]
    before = sorted(p.name for p in d.iterdir())
    for bad in ("2", "nan", "-0.1"):
        line = _one_error_line(runner.invoke(app, ["train-segment", "-i", img2, "-l", lab2, *opts, "--threshold", bad]))
        assert "--threshold must lie in [0, 1] (a boundary probability)" in line
    zero = d / "zero.tif"
    imwrite(zero, np.zeros((32, 32), np.uint16), axes="YX", labels=True)
    before.append("zero.tif")
    line = _one_error_line(runner.invoke(app, ["train-segment", "-i", img2, "-l", str(zero), *opts]))
    assert "labels: every label is 0, so there is no segment to learn" in line
    assert sorted(p.name for p in d.iterdir()) == sorted(before)


def test_demo_refuses_a_file_or_a_missing_parent_as_its_folder(inputs):
    # before: a missing parent was created (nested folders, exit 0), and a file gave "[Errno 17] File exists"
    d, img2, _, _ = inputs
    before = sorted(p.name for p in d.iterdir())
    line = _one_error_line(runner.invoke(app, ["demo", "--out", img2, "--shape", "8,32,32"]))
    assert f"--out {img2} is a file; the demo writes a folder of images" in line
    line = _one_error_line(runner.invoke(app, ["demo", "--out", str(d / "nof" / "demo"), "--shape", "8,32,32"]))
    assert f"folder {d / 'nof'} does not exist" in line
    assert sorted(p.name for p in d.iterdir()) == before


def test_simulate_names_the_seed_option_when_it_is_negative(inputs):
    # before: "error: expected non-negative integer" (numpy's words, no option named)
    d, img2, _, _ = inputs
    line = _one_error_line(runner.invoke(app, ["simulate", img2, str(d / "o.tif"), "--seed", "-1"]))
    assert "Invalid value for '--seed': Input should be greater than or equal to 0" in line
    assert not (d / "o.tif").exists()


def test_simulate_frames_of_an_image_smaller_than_the_factor_says_so():
    # before: "... not divisible by the downsampling factor (2, 2); crop it to (0, 2) first", an empty crop
    from mire.optics import simulate_frames

    with pytest.raises(ValueError, match=r"image shape \(1, 4\) is smaller than the downsampling factor \(2, 2\)"):
        simulate_frames(np.ones((1, 4)), n_frames=3, factor=2)
    with pytest.raises(ValueError, match=r"crop it to \(4, 4\) first"):
        simulate_frames(np.ones((5, 4)), n_frames=3, factor=2)


def test_napari_save_trace_refuses_a_name_that_is_not_swc(tmp_path):
    # before: the SWC text was written to "tree.txt" (or "tree") without a word; `mire trace` refuses it
    pytest.importorskip("napari")
    from mire._napari import _actions

    img = np.zeros((8, 32, 32), np.float32)
    img[4, 16, 4:28] = 1.0
    (lines, kwargs, _), = _actions.trace_layer_data(img)

    class Layer:  # what save_trace reads of a traced Shapes layer
        metadata = kwargs["metadata"]

    for name in ("tree.txt", "tree"):
        with pytest.raises(ValueError, match="give a file name ending in .swc"):
            _actions.save_trace(Layer(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []
    assert _actions.save_trace(Layer(), tmp_path / "tree.swc").stat().st_size > 0
