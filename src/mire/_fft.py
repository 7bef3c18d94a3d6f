"""Real FFTs of torch tensors, on the fastest backend for where the tensor lives.

The FFTs are most of the time of Richardson-Lucy, TV-ADMM and Wiener, and on the CPU neither
library is fastest at everything (float32, one thread, ms for 144x140x140 / 140x135x135 / 128^3):

========================  ====================  ====================
transform                  torch.fft             scipy.fft
========================  ====================  ====================
r2c (rfftn)               15.2 / 20.3 / 7.5     20.6 / 16.3 / 12.3
c2r (irfftn)              23.2 / 27.5 / 18.2    21.2 / 18.7 / 14.2
========================  ====================  ====================

So on the CPU the inverse always goes through SciPy's pocketfft, and the forward too when the
last axis is odd (a pair 1.3-1.4x faster than torch alone at these sizes), on zero-copy numpy
views with as many workers as torch has threads. ``rfftn(..., exact=True)`` keeps the forward on pocketfft too
(Richardson-Lucy uses it: MKL's last bits vary with buffer alignment and threads, which the Biggs
extrapolation amplified to 0.09-0.37 between runs; pocketfft repeats bit for bit). GPU tensors and tensors in an autograd graph (the
super-resolution registration differentiates through the blur) use ``torch.fft``.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import torch


def _scipy_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and not (x.requires_grad and torch.is_grad_enabled())


def _dims(x: torch.Tensor, dim) -> tuple:
    return tuple(range(x.ndim)) if dim is None else tuple(int(d) for d in dim)


def rfftn(x: torch.Tensor, *, dim=None, exact: bool = False) -> torch.Tensor:
    """``torch.fft.rfftn(x, dim=dim)`` (last axis of ``dim`` halved).

    ``exact=True`` keeps a CPU tensor on pocketfft whatever its shape: MKL's result depends on the
    buffer's alignment and the thread count in the last bits, pocketfft's on neither (each 1D
    transform is computed the same way on whichever worker), so a run repeats bit for bit.
    """
    if not _scipy_ok(x) or (not exact and x.shape[_dims(x, dim)[-1]] % 2 == 0):
        return torch.fft.rfftn(x, dim=dim)
    arr = x.detach().contiguous().numpy()
    return torch.from_numpy(scipy.fft.rfftn(arr, axes=_dims(x, dim), workers=torch.get_num_threads()))


def irfftn(x: torch.Tensor, *, s, dim=None, overwrite: bool = False, crop=None) -> torch.Tensor:
    """``torch.fft.irfftn(x, s=s, dim=dim)``; ``overwrite=True`` lets the CPU path reuse ``x``'s memory.

    ``crop`` (one slice per axis of ``dim``) returns only that region of the result (a view); the
    CPU path then skips the 1D transforms whose outputs all fall outside it.
    """
    if not _scipy_ok(x):
        out = torch.fft.irfftn(x, s=s, dim=dim)
        return out if crop is None else out[_region(out, _dims(x, dim), crop)]
    arr = x.detach().resolve_conj().contiguous().numpy()
    s, axes, workers = tuple(int(n) for n in s), _dims(x, dim), torch.get_num_threads()
    if len(axes) > 1 and (overwrite or crop is not None) \
            and all(arr.shape[a] == n for a, n in zip(axes[:-1], s[:-1])) and arr.shape[axes[-1]] == s[-1] // 2 + 1:
        # in place or cropped: pocketfft's two stages called apart (c2c over the leading axes, in
        # place, then the 1D c2r), the 1/N it applies in its last pass applied here as the same single
        # float multiply, so the bits agree with its n-D c2r. Neither in place nor cropped, the n-D
        # c2r is the faster (its copy is the one the first stage makes anyway): one thread, float32,
        # 0.82 vs 0.93 ms at 64^3, 0.24 vs 0.28 at 35x48x48 (the weight search's tiles), 20 vs 22 at
        # 144x140x140, equal at 84x140x140 (2026-12-07, SciPy's pocketfft).
        # Each axis's lines are transformed one by one, so cropping after each axis leaves the
        # kept outputs' bits as they were
        tmp = arr
        for i, a in enumerate(axes[:-1]):
            tmp = scipy.fft.ifft(tmp, axis=a, norm="forward", overwrite_x=overwrite or tmp is not arr,
                                 workers=workers)
            if crop is not None:
                tmp = tmp[(slice(None),) * a + (crop[i],)]
        out = scipy.fft.irfft(tmp, n=s[-1], axis=axes[-1], norm="forward", overwrite_x=True, workers=workers)
        if crop is not None:
            out = out[(slice(None),) * axes[-1] + (crop[-1],)]
        out *= np.asarray(1 / np.longdouble(np.prod(s, dtype=np.int64)), dtype=out.dtype)
        return torch.from_numpy(out if crop is not None else np.ascontiguousarray(out))
    out = torch.from_numpy(np.ascontiguousarray(
        scipy.fft.irfftn(arr, s=s, axes=axes, overwrite_x=overwrite, workers=workers)))
    return out if crop is None else out[_region(out, axes, crop)]


def _region(x: torch.Tensor, axes, crop) -> tuple:
    keep = [slice(None)] * x.ndim
    for a, c in zip(axes, crop):
        keep[a] = c
    return tuple(keep)


def fast_len(n: int) -> int:
    """Smallest FFT length ``>= n`` whose prime factors are 2, 3, 5 and 7.

    pocketfft (SciPy's and torch's), MKL and cuFFT all have radix-7 kernels, so a 7-smooth size is
    as fast per point as a 5-smooth one and often closer to ``n``: 140 instead of 144 for 138.
    """
    n = int(n)
    best = 1
    while best < n:
        best *= 2
    p7 = 1
    while p7 < 2 * n:
        p5 = p7
        while p5 < 2 * n:
            p3 = p5
            while p3 < 2 * n:
                m = p3
                while m < n:
                    m *= 2
                best = min(best, m)
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best
