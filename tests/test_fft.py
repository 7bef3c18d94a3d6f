import numpy as np
import pytest
import torch

from mire._fft import fast_len, irfftn, rfftn


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_path_matches_torch_fft(dtype):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 10, 9))).to(dtype)
    for dim in [None, (1, 2), (0, 1, 2)]:
        ref = torch.fft.rfftn(x, dim=dim)
        got = rfftn(x, dim=dim)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        tol = 1e-4 if dtype == torch.float32 else 1e-12
        assert torch.allclose(got, ref, atol=tol, rtol=tol)
        s = x.shape if dim is None else [x.shape[d] for d in dim]
        back = irfftn(got, s=s, dim=dim)
        assert torch.allclose(back, torch.fft.irfftn(ref, s=s, dim=dim), atol=tol, rtol=tol)
        assert torch.allclose(back, x, atol=tol, rtol=tol)


def test_conjugate_views_and_non_contiguous_inputs():
    x = torch.randn(8, 12, generator=torch.Generator().manual_seed(1))
    f = torch.fft.rfftn(x)
    assert torch.allclose(irfftn(f.conj(), s=x.shape), torch.fft.irfftn(f.conj(), s=x.shape), atol=1e-5)
    xt = x.t()  # non-contiguous
    assert torch.allclose(rfftn(xt), torch.fft.rfftn(xt), atol=1e-4)


def test_overwrite_does_not_change_the_result():
    x = torch.randn(16, 15, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    f = rfftn(x)
    assert torch.allclose(irfftn(f.clone(), s=x.shape, overwrite=True), x, atol=1e-12)


def test_autograd_goes_through_torch():
    x = torch.randn(8, 8, dtype=torch.float64, requires_grad=True)
    k = torch.fft.rfftn(torch.rand(8, 8, dtype=torch.float64))
    y = irfftn(rfftn(x) * k, s=x.shape)
    assert y.requires_grad
    y.sum().backward()
    # d/dx sum(circular conv(x, kernel)) = sum of the kernel at every pixel
    assert torch.allclose(x.grad, torch.full_like(x, float(k[0, 0].real)))


def test_fast_len_is_the_smallest_7_smooth_length():
    def smooth(m):
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 400):
        m = fast_len(n)
        assert m >= n and smooth(m)
        assert not any(smooth(j) for j in range(n, m))  # nothing smaller qualifies
    assert fast_len(138) == 140  # scipy's real-FFT rule (2, 3, 5 only) gives 144


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_c2r_bits_match_scipys_nd_transform_and_crop_keeps_them(dtype):
    # the two-stage c2r must give scipy.fft.irfftn's bits (Richardson-Lucy's runs repeat bit for bit
    # across versions), and a crop the same bits as cropping the full result
    import scipy.fft

    x = np.random.default_rng(3).standard_normal((12, 14, 10)).astype(np.float32 if dtype == torch.float32 else None)
    f = scipy.fft.rfftn(x)
    ref = scipy.fft.irfftn(f, s=x.shape)
    got = irfftn(torch.from_numpy(f.copy()), s=x.shape).numpy()  # the n-D transform itself
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    staged = irfftn(torch.from_numpy(f.copy()), s=x.shape, overwrite=True).numpy()  # the two stages
    assert staged.dtype == ref.dtype and np.array_equal(staged, ref)
    crop = (slice(2, 9), slice(1, 14), slice(3, 7))
    part = irfftn(torch.from_numpy(f.copy()), s=x.shape, overwrite=True, crop=crop)
    assert part.shape == (7, 13, 4) and np.array_equal(part.numpy(), ref[crop])
    # the torch path (autograd) crops the same region
    t = irfftn(torch.from_numpy(f).requires_grad_(True), s=x.shape, crop=crop)
    assert torch.allclose(t.detach(), torch.from_numpy(ref[crop]), atol=1e-5)
