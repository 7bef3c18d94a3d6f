"""Every operator's adjoint passes the dot-product test in float64; shapes and errors are checked."""

import numpy as np
import pytest
import torch

from mire.optics import Blur, Compose, Downsample, Warp, frame_operator, gaussian_psf

F64 = torch.float64


def dot_test(op, *, batch=(), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch + tuple(op.in_shape), generator=g, dtype=F64)
    y = torch.randn(batch + tuple(op.out_shape), generator=g, dtype=F64)
    lhs = float((op.forward(x) * y).sum())
    rhs = float((x * op.adjoint(y)).sum())
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


@pytest.mark.parametrize("boundary", ["circular", "zero", "valid"])
@pytest.mark.parametrize("shape,sigma", [((31, 40), (1.5, 0.7)), ((12, 16, 13), (1.2, 0.8, 0.8))])
def test_blur_adjoint(boundary, shape, sigma):
    psf = gaussian_psf(sigma, ndim=len(shape))
    # an asymmetric PSF too, so a flipped kernel would fail the test
    psf = psf * np.linspace(0.5, 1.5, psf.shape[-1])
    op = Blur(psf / psf.sum(), shape, boundary=boundary, dtype=F64, device="cpu")
    assert op.out_shape == shape
    assert dot_test(op) < 1e-10
    assert dot_test(op, batch=(3,)) < 1e-10


def test_blur_matches_scipy_convolution():
    from scipy import ndimage

    rng = np.random.default_rng(1)
    x = rng.random((20, 24))
    psf = rng.random((5, 3))
    psf /= psf.sum()
    zero = Blur(psf, x.shape, boundary="zero", dtype=F64, device="cpu")
    ref = ndimage.convolve(x, psf, mode="constant", cval=0.0)
    np.testing.assert_allclose(zero(torch.as_tensor(x)).numpy(), ref, atol=1e-12)
    circ = Blur(psf, x.shape, boundary="circular", dtype=F64, device="cpu")
    np.testing.assert_allclose(circ(torch.as_tensor(x)).numpy(), ndimage.convolve(x, psf, mode="wrap"), atol=1e-12)
    # "valid": the output is the part of the full convolution that sees no padding
    valid = Blur(psf, (16, 22), boundary="valid", dtype=F64, device="cpu")
    assert valid.in_shape == (20, 24)
    np.testing.assert_allclose(valid(torch.as_tensor(x)).numpy(), ref[2:-2, 1:-1], atol=1e-12)


@pytest.mark.parametrize("shape,factor", [((12, 16), 4), ((6, 12, 8), (2, 3, 4))])
def test_downsample(shape, factor):
    op = Downsample(factor, shape)
    assert dot_test(op) < 1e-12
    x = torch.arange(np.prod(shape), dtype=F64).reshape(shape)
    f = np.broadcast_to(factor, len(shape))
    blocks = x.numpy().reshape(sum(([n // v, v] for n, v in zip(shape, f)), []))
    ref = blocks.mean(axis=tuple(range(1, 2 * len(shape), 2)))
    np.testing.assert_allclose(op(x).numpy(), ref)


def test_downsample_rejects_indivisible_shape():
    with pytest.raises(ValueError, match="not divisible"):
        Downsample(4, (10, 12))


@pytest.mark.parametrize("shape,rot", [((23, 30), 0.3), ((7, 12, 11), 0.2), ((8, 9, 10), "matrix")])
def test_warp_adjoint(shape, rot):
    if rot == "matrix":
        from scipy.spatial.transform import Rotation

        rot = Rotation.from_euler("zyx", [0.1, -0.2, 0.3]).as_matrix()
    op = Warp(shape, shift=np.linspace(-1.3, 2.7, len(shape)), rotation=rot, dtype=F64, device="cpu")
    assert dot_test(op) < 1e-10
    assert dot_test(op, batch=(2,)) < 1e-10
    op2 = Warp(shape, shift=[0.5] * len(shape), rotation=0.0, out_shape=tuple(n - 2 for n in shape),
               dtype=F64, device="cpu")
    assert dot_test(op2) < 1e-10


def test_warp_integer_shift_is_exact_and_matches_scipy():
    from scipy import ndimage

    rng = np.random.default_rng(2)
    x = rng.random((20, 25))
    op = Warp(x.shape, shift=[2, -3], dtype=F64, device="cpu")
    y = op(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(y[2:, :-3], x[:-2, 3:])
    # sub-pixel shift + rotation equals scipy's order-1 affine transform with the same convention
    ang, t = 0.25, np.array([0.4, -1.3])
    op = Warp(x.shape, shift=t, rotation=ang, dtype=F64, device="cpu")
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    c = (np.array(x.shape) - 1) / 2
    ref = ndimage.affine_transform(x, r.T, offset=c - r.T @ (c + t), order=1, mode="constant", cval=0.0)
    inner = (slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(op(torch.as_tensor(x)).numpy()[inner], ref[inner], atol=1e-10)


def test_warp_gradient_wrt_shift():
    x = torch.as_tensor(gaussian_psf(3.0, ndim=2, size=31), dtype=F64)
    shift = torch.tensor([0.3, -0.2], dtype=F64, requires_grad=True)
    y = Warp(x.shape, shift=shift, dtype=F64, device="cpu")(x)
    (y * torch.arange(31, dtype=F64)[:, None]).sum().backward()
    assert shift.grad is not None and shift.grad[0] > 0  # moving the blob down raises its row moment


def test_compose_and_frame_operator():
    hr = (32, 32)
    op = frame_operator(hr, psf=gaussian_psf(1.0, ndim=2), factor=4, shift=[0.5, -0.25], rotation=0.1,
                        dtype=F64, device="cpu")
    assert isinstance(op, Compose) and op.in_shape == hr and op.out_shape == (8, 8)
    assert dot_test(op) < 1e-10
    assert dot_test(op.T) < 1e-10
    with pytest.raises(ValueError, match="cannot compose"):
        Downsample(2, (10, 10)) @ Downsample(2, (8, 8))


def test_blur_rejects_bad_psf():
    with pytest.raises(ValueError, match="NaN"):
        Blur(np.full((3, 3), np.nan), (10, 10))
    with pytest.raises(ValueError, match="2D"):
        Blur(np.ones((3, 3, 3)), (10, 10))
    with pytest.raises(ValueError, match="larger than the image"):
        Blur(np.ones((15, 15)), (10, 10))


def test_gaussian_psf():
    psf = gaussian_psf((2.0, 0.5, 0.5), ndim=3)
    assert psf.shape == (17, 5, 5)
    assert abs(psf.sum() - 1) < 1e-12
    assert np.unravel_index(psf.argmax(), psf.shape) == (8, 2, 2)
    zz = np.arange(17) - 8
    prof = psf[:, 2, 2] / psf[8, 2, 2]
    np.testing.assert_allclose(prof, np.exp(-0.5 * (zz / 2.0) ** 2))
    with pytest.raises(ValueError, match="ndim"):
        gaussian_psf(1.0)


def test_zero_boundary_grid_is_minimal_and_exact():
    # even PSF sides reach further one way (c = k // 2 before, k - 1 - c after); image sides chosen
    # so that n + the longer reach is already an FFT-friendly length: a grid one voxel too small
    # would wrap the image's far end into the output and fail the comparison
    from scipy import signal

    rng = np.random.default_rng(3)
    x = rng.random((18, 25))
    psf = rng.random((4, 6))
    psf /= psf.sum()
    op = Blur(psf, x.shape, boundary="zero", dtype=F64, device="cpu")
    assert op.fft_shape == (20, 28)  # 18 + 2, 25 + 3: not n + k - 1
    ref = signal.convolve(x, psf, mode="full")[2:20, 3:28]
    np.testing.assert_allclose(op(torch.as_tensor(x)).numpy(), ref, atol=1e-12)
    assert dot_test(op) < 1e-10
