"""Tiled prediction: exact blending, agreement with untiled prediction, padding, zarr output."""

import numpy as np
import pytest
import torch

from mire.learn import predict_tiled
from mire.nets import build_model


def test_pointwise_model_tiled_equals_untiled_exactly():
    # a 1x1 conv sees no neighbours, so any error could only come from the blending weights
    net = torch.nn.Conv3d(1, 2, 1)
    img = np.random.default_rng(0).random((1, 13, 37, 29)).astype(np.float32)
    full = predict_tiled(net, img, out_channels=2)
    tiled = predict_tiled(net, img, tile=(8, 16, 16), overlap=(2, 6, 6), batch_size=3, out_channels=2)
    np.testing.assert_allclose(tiled, full, atol=1e-5)


def test_unet_tiled_matches_untiled_within_tolerance():
    torch.manual_seed(0)
    net = build_model("tiny", ndim=2, residual=False).eval()
    img = np.random.default_rng(1).random((1, 100, 120)).astype(np.float32)
    full = predict_tiled(net, img)
    tiled = predict_tiled(net, img, tile=48, overlap=16)
    # stated tolerance: 1% of the output range (measured ~1e-3: the cosine weights vanish at tile
    # edges, where zero padding makes a tile's prediction wrong)
    err = np.abs(tiled - full).max() / np.ptp(full)
    assert err < 0.01
    # without blending (hard seams at the same cut) the error is larger
    assert err < np.abs(predict_tiled(net, img, tile=48, overlap=0) - full).max() / np.ptp(full)


def test_odd_sizes_are_padded_to_the_size_multiple():
    net = build_model("fast", ndim=2, base_channels=4, residual=False).eval()  # size multiple (8, 8)
    img = np.random.default_rng(2).random((1, 21, 13)).astype(np.float32)
    out = predict_tiled(net, img, tile=16, overlap=4)
    assert out.shape == (1, 21, 13) and np.isfinite(out).all()


def test_output_into_zarr_array():
    zarr = pytest.importorskip("zarr")
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    img = np.random.default_rng(3).random((1, 40, 40)).astype(np.float32)
    z = zarr.zeros((1, 40, 40), chunks=(1, 16, 16), dtype="f4")
    predict_tiled(net, img, tile=16, overlap=4, out=z)
    np.testing.assert_allclose(z[:], predict_tiled(net, img, tile=16, overlap=4), atol=1e-6)


def test_default_tiling_cuts_each_axis_into_as_few_equal_tiles_as_needed():
    from mire.learn.tiling import _starts, default_tiling

    tile, overlap = default_tiling((64, 512, 512))
    assert tile == (38, 264, 264) and overlap == (12, 16, 16)
    computed = 1
    for s, t, o in zip((64, 512, 512), tile, overlap):
        starts = _starts(s, t, t - o)
        assert len(starts) == 2 and starts[-1] + t == s  # covered by two tiles, the last flush
        computed *= len(starts) * t
    assert computed / (64 * 512 * 512) < 1.35  # was 3.4x with 48x256x256 tiles (2x3x3 of them)
    assert default_tiling((32, 64, 64)) == ((32, 64, 64), (0, 0, 0))  # small: one tile
    assert default_tiling((64, 512, 512), tile=16) == ((16, 16, 16), (4, 4, 4))  # given tile kept


def test_explicit_tile_is_shrunk_to_balanced_tiles_not_one_extra():
    # 100 px in 32-px tiles overlapping by 8 needs 4 tiles; 31 px tiles suffice for 4, and the
    # prediction of a pointwise model is unchanged
    net = torch.nn.Conv2d(1, 1, 1)
    img = np.random.default_rng(4).random((1, 100, 100)).astype(np.float32)
    from mire.learn.tiling import _balanced

    assert _balanced(100, 32, 8, 1) == 31 and _balanced(512, 256, 16, 8) == 184 and _balanced(20, 32, 8, 1) == 32
    np.testing.assert_allclose(predict_tiled(net, img, tile=32, overlap=8), predict_tiled(net, img), atol=1e-5)
