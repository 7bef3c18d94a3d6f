"""Faults, in real subprocesses: kill -9 in a blockwise run, kill -9 in an overwrite, SIGINT in training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")  # tests/faults -> repo root
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def _env():
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    return env


def _mire(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "mire", *map(str, args)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True, **kw)


def _wait_for(cond, proc, timeout=120.0):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"process ended (rc {proc.returncode}) before the fault: {err.decode()[-800:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the process")
        time.sleep(0.02)


def _kill9(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _read_levels(path):
    import zarr

    g = zarr.open_group(str(path), mode="r")
    return {k: np.asarray(a[...]) for k, a in sorted(g.arrays())}, dict(g.attrs)


def test_kill9_in_blockwise_restore_then_rerun_is_identical(tmp_path):
    from mire.cli.restore import restore_file
    from mire.io import imwrite

    rng = np.random.default_rng(3)
    imwrite(tmp_path / "in.tif", rng.random((8, 64, 64)).astype(np.float32), axes="ZYX",
            pixel_size={"Z": 1.0, "Y": 0.3, "X": 0.3})
    args = ["restore", tmp_path / "in.tif", tmp_path / "out.ome.zarr", "--method", "rl", "--iterations", "20",
            "--block-size", "8,16,16", "--workers", "1"]
    done = tmp_path / ".out.ome.zarr.mire-run" / "done"
    proc = _mire(*args)
    _wait_for(lambda: done.is_dir() and len(os.listdir(done)) >= 2, proc)
    _kill9(proc)
    n_done = len(os.listdir(done))
    assert 2 <= n_done < 16 and not (tmp_path / "out.ome.zarr").exists()  # killed mid-run, nothing in place
    again = _mire(*args)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()
    assert not (tmp_path / ".out.ome.zarr.mire-run").exists()
    # the uninterrupted reference, in this process
    restore_file(tmp_path / "in.tif", tmp_path / "ref.ome.zarr", method="rl", iterations=20, block="8,16,16",
                 workers=1, progress=False)
    got, got_attrs = _read_levels(tmp_path / "out.ome.zarr")
    ref, ref_attrs = _read_levels(tmp_path / "ref.ome.zarr")
    assert got.keys() == ref.keys() and len(got) >= 1
    # Blockwise Richardson-Lucy repeats bit for bit between processes (pocketfft transforms, float64
    # pairwise Biggs factors: tests/restore/test_rl_accelerated.py), so the resumed run equals the reference
    for k in ref:
        assert np.array_equal(got[k], ref[k]), k
    assert got_attrs == ref_attrs


_SLOW_OVERWRITE = textwrap.dedent("""
    import sys, time
    import numpy as np
    import tifffile
    from mire.io import imwrite

    real = tifffile.imwrite
    def slow(path, data, **kw):
        real(path, data[: len(data) // 2], **kw)     # half the new file is on disk ...
        open(sys.argv[2], "w").close()                # ... tell the parent, then hang until killed
        time.sleep(600)
    tifffile.imwrite = slow
    imwrite(sys.argv[1], np.full((64, 64), 7, np.uint16), axes="YX")
""")


def test_kill9_during_overwrite_keeps_the_old_file(tmp_path):
    from mire.io import imread, imwrite

    target = tmp_path / "out.tif"
    imwrite(target, np.full((32, 32), 3, np.uint16), axes="YX")
    old = target.read_bytes()
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_OVERWRITE, str(target), str(ready)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(ready.exists, proc)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out.tif.tmp")]
    assert len(leftovers) == 1  # the new file is being written beside the target, not over it
    _kill9(proc)
    assert target.read_bytes() == old and imread(target).tolist() == np.full((32, 32), 3).tolist()
    # the next write of that target clears the dead writer's temporary file
    imwrite(target, np.full((8, 8), 5, np.uint16), axes="YX")
    assert imread(target).tolist() == np.full((8, 8), 5).tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif", "ready"]


def test_sigint_in_training_leaves_a_checkpoint_that_resumes(tmp_path):
    from mire.io import imwrite
    from mire.learn import load_tensors

    rng = np.random.default_rng(0)
    imwrite(tmp_path / "noisy.tif", rng.random((64, 64)).astype(np.float32), axes="YX")
    common = ["train-restore", "--noisy", tmp_path / "noisy.tif", "--noise2void", "--preset", "tiny", "--ndim", "2",
              "--patch", "32,32", "--batch-size", "2", "--epochs", "3", "--steps", "15", "--seed", "1"]
    ck = tmp_path / "ck"
    proc = _mire(*common, "--out", tmp_path / "m", "--checkpoints", ck)
    _wait_for(lambda: (ck / "last.json").exists(), proc)  # after the first epoch
    # now: inside the second epoch (it writes last.* again only at its end)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-800:]
    assert err.decode().strip().splitlines()[-1].endswith("interrupted")
    assert not (tmp_path / "m.json").exists()
    import json

    info = json.loads((ck / "last.json").read_text())
    stopped_at = info["history"]["step"]
    assert 15 <= stopped_at < 45
    again = _mire(*common, "--out", tmp_path / "m", "--checkpoints", ck)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()[-800:]
    assert "trained 45 steps" in err.decode()
    # an uninterrupted run with the same seed ends with the same weights
    ref = _mire(*common, "--out", tmp_path / "ref")
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err.decode()[-800:]
    a, b = load_tensors(tmp_path / "m.safetensors"), load_tensors(tmp_path / "ref.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k].numpy(), b[k].numpy(), rtol=1e-5, atol=1e-6), k
