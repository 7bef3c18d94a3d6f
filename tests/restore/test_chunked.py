"""restore_blockwise: every method block by block equals the whole-volume run within stated tolerances."""

import numpy as np
import pytest

from mire.data import neurites
from mire.optics import gaussian_psf, simulate
from mire.restore import restore_blockwise, richardson_lucy, tv_deconvolve, wiener


@pytest.fixture(scope="module")
def degraded():
    return simulate(neurites((16, 64, 64), seed=3), condition="N2-B2", seed=1).astype(np.float32)


def test_wiener_blockwise_equals_whole_with_the_same_balance(degraded):
    psf = gaussian_psf(0.8, ndim=3)
    res = restore_blockwise(degraded, "wiener", psf=psf, block_shape=(16, 32, 32), crop_shape=(16, 64, 64))
    # the crop is the whole volume here, so the GCV balance is the whole-volume one
    whole, balance = wiener(degraded, psf, balance="gcv", return_balance=True)
    assert balance > 0
    inner = (slice(None), slice(8, -8), slice(8, -8))
    # Wiener's reflection padding differs at block borders: compare away from the volume border
    err = np.abs(res - whole)[inner].max() / np.abs(whole).max()
    assert err < 0.02, err


def test_tv_blockwise_uses_one_weight_and_scale(degraded):
    psf = gaussian_psf(0.8, ndim=3)
    res = restore_blockwise(degraded, "tv", psf=psf, weight=0.02, n_iter=30, block_shape=(16, 32, 32), halo=6)
    whole = tv_deconvolve(degraded, psf, weight=0.02, n_iter=30)
    # blocks stop at a different ADMM iterate than the whole volume (see mire.blockwise)
    err = np.abs(res - whole).max() / np.abs(whole).max()
    assert err < 0.1, err
    assert np.abs(res - whole).mean() / np.abs(whole).mean() < 0.02


def test_rl_to_ome_zarr_with_a_local_cluster(tmp_path, degraded):
    distributed = pytest.importorskip("distributed")
    import zarr

    from mire.io import iminfo

    src = zarr.create_array(store=str(tmp_path / "in.zarr"), shape=degraded.shape, chunks=(8, 32, 32),
                            dtype="float32")
    src[:] = np.clip(degraded, 0, None)
    psf = gaussian_psf(0.8, ndim=3)
    whole = richardson_lucy(np.clip(degraded, 0, None), psf, n_iter=10)
    # in-process workers (tests/blockwise covers worker processes): torch is not imported twice more
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        res = restore_blockwise(src, "rl", psf=psf, n_iter=10, block_shape=(8, 32, 32), halo=12,
                                out=tmp_path / "out.ome.zarr", scheduler=client, pixel_size={"Z": 1, "Y": .3, "X": .3})
    info = iminfo(tmp_path / "out.ome.zarr")
    assert info["axes"] == "ZYX" and info["shape"] == degraded.shape
    # RL with halo 12 (see mire.blockwise); the blocks replay the crop's Biggs factors and start level
    assert np.abs(res[:] - whole).max() / whole.max() < 1e-3


def test_model_blockwise_shares_the_normalization(tmp_path):
    from mire.restore.learned import Restorer

    rng = np.random.default_rng(0)
    img = (rng.random((8, 48, 48)) * 100 + 50).astype(np.float32)
    img[:, :24] *= 3  # halves with different intensities: per-block percentiles would differ
    model = Restorer("tiny", ndim=3)
    whole = model.predict(img, axes="ZYX")
    res = restore_blockwise(img, "model", model=model, block_shape=(8, 24, 24), halo=16)
    # halo 16 covers most of the tiny U-Net's receptive field: blockwise ~ the whole run
    np.testing.assert_allclose(res, whole, rtol=1e-4, atol=1e-3 * np.abs(whole).max())


def test_errors(degraded):
    with pytest.raises(ValueError, match="method"):
        restore_blockwise(degraded, "magic", psf="gaussian:1", block_shape=16)
    with pytest.raises(ValueError, match="psf"):
        restore_blockwise(degraded, "rl", block_shape=16)
    bad = degraded.copy()
    bad[8, 32, 32] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        restore_blockwise(bad, "rl", psf="gaussian:1", block_shape=16)
