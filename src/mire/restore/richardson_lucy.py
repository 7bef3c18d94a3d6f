"""Richardson-Lucy deconvolution (Poisson maximum likelihood), optionally with a TV prior (RL-TV).

The blur is the shared :class:`mire.optics.Blur`, built once per call so its OTF is cached
across iterations. The default ``boundary="valid"`` estimates the object on a domain larger than the
image by the PSF support and normalizes the multiplicative update by ``H^T 1`` (Bertero & Boccacci
2005, "A simple method for the reduction of boundary effects in the Richardson-Lucy approach to image
deconvolution", A&A 437): no wrap-around and no dark-border ringing.

Three things make the default call need no tuning:

- **Noise model.** Camera data are ``y = a Poisson(Hx / a) + b + N(0, s_r^2)``. The variance line
  ``var(y) = a E[y] + k`` is estimated from the image (:func:`mire.restore._common.estimate_noise_curve`),
  and RL runs on the shifted-Poisson data ``z = y - b + s``, ``s = s_r^2 / a``, with ``H x + s`` as
  the model (Snyder et al. 1993, "Image recovery from data acquired with a charge-coupled-device
  camera", JOSA A 10): the read noise and the offset are in the model, not clipped away.
- **Acceleration.** Biggs & Andrews (1997, "Acceleration of iterative image restoration algorithms",
  Appl. Opt. 36) vector extrapolation: each RL step starts from ``x_k + alpha (x_k - x_{k-1})``,
  ``alpha = <g_{k-1}, g_{k-2}> / <g_{k-2}, g_{k-2}>`` clipped to [0, 1), ``g`` the change the
  RL step made; the same PSNR in several times fewer iterations. Biggs needs two steps before it
  can extrapolate, so the first step is over-relaxed instead (Lewitt & Muehllehner 1986,
  "Accelerated iterative reconstruction for positron emission tomography based on the EM
  algorithm for maximum likelihood estimation", IEEE TMI 5): ``x <- x c^2`` (``c`` the RL
  correction). Why 2, for any stack: near the flat start RL
  is a Landweber step in the relative contrast, which multiplies the error along each
  eigenvector of ``H^T H`` (eigenvalue ``a`` in [0, 1] for any normalized non-negative PSF) by
  ``1 - a``; steps of length 2 then 1 multiply it by ``(1 - 2a)(1 - a)``, which stays within
  [-1/8, 1] on [0, 1] (no component grows) and equals three plain steps, ``1 - 3a``, to first
  order in the small eigenvalues that deblurring is slow on. So two iterations do what three did.
  The step is voxel by voxel (blocks of a volume take the same one); the total intensity
  (``a = 1``) is off after it and exact again after the next, plain step.
- **Stop.** RL fits the noise as it converges, so it must be stopped. The automatic stop is
  cross-validation on held-back voxels: a fixed random tenth of the voxels is left out of the
  fit (the update is normalized by ``H^T w`` of the fitted voxels, as the valid boundary is), and
  the Poisson deviance of the model ``H x + s`` against the held-out data, whose noise the fit
  never saw, estimates the prediction error up to a constant. The iterate at its minimum is
  returned (the run ends ``PATIENCE`` iterations past it). It needs no noise level, no ground
  truth and no constant tuned on a stack, and it is invariant to the intensity scale and offset.
  On DIADEM crops the prediction error's minimum and the PSNR's fall on the same iteration (+-1).
  (The discrepancy principle for Poisson data, Bertero et al. 2010, was tried first: near the
  optimum the deviance moves by < 1 % per iteration, so a 2-5 % error of the estimated noise
  level moved its stop by many iterations, and on some stacks it never stopped.)

``HALF_RES_FIRST_STEP`` (off) takes the first, over-relaxed step's back-projection ``H^T z`` from the
2^ndim block means of the data on a half-resolution grid (:func:`_half_res_backprojection`), normalized
by the same approximation of ``H^T 1`` (:func:`_half_res_box_scale`): one 1/2^ndim-size transform
pair instead of a full one. It is exact for block-constant data only; the block means and the linear
interpolation blur the step, which cost up to 0.73 dB on the design stacks, so its gate failed
(``benchmarks/results/rl_half_res_gate.md``) and main's exact step is the default.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mire._torch import default_device, to_numpy, to_tensor
from mire._fft import fast_len, irfftn, rfftn
from mire._progress import progress_bar
from mire.restore._common import check_inputs, compute_dtype, grad, grad_adjoint, normalize_spacing

BOUNDARIES = ("valid", "zero", "circular")
ACCELERATIONS = (None, "biggs")
HOLDOUT = 0.1  # fraction of the voxels the automatic stop holds out
PATIENCE = 3  # iterations past the hold-out loss's minimum before the automatic stop ends
FIRST_STEP = 2.0  # exponent of the accelerated run's first RL step (module docstring)
HALF_RES_FIRST_STEP = False  # the accelerated run's first step on 2^ndim block means (module docstring)


def poisson_model(image: np.ndarray, *, background=None, read_noise=None, gain=None) -> dict:
    """The shifted-Poisson model of ``image``: offset ``b``, shift ``s``, gain ``a`` (image units per photon).

    ``None`` for any of them estimates it: ``b`` is the darkest local mean (over 6^ndim voxels,
    so a low estimate by noise is a few tenths of an SD; a low ``b`` is harmless, since a
    non-negative object absorbs a constant, a high one would not be); the variance line
    ``var = a E[y] + k`` gives ``s = k / a + b`` (the read variance in photon-scaled units,
    ``s_r^2 / a``), capped to the data's range: pure Gaussian noise would make it infinite,
    and a shift beyond the range changes the weights by less than 2x while slowing RL. The
    gain is then refitted to the capped model, ``var = a (E[y] - b + s)``.
    """
    from scipy import ndimage

    from mire.restore._common import _haar_mean_detail, _noise_curve

    mean, detail = _haar_mean_detail(image)
    local = ndimage.uniform_filter(mean, 3, mode="nearest")  # means over 6^ndim voxels
    a = k = None
    bins = None
    if gain is None or read_noise is None:
        a, k, bins = _noise_curve(mean, detail, n_bins=24, min_count=None, return_bins=True, m_loc=local)
    b = float(local.min()) if background is None else float(background)
    top = float(local.max()) - b
    span = top if top > 0 else float(np.ptp(np.asarray(image, dtype=np.float64))) or 1.0
    if gain is not None:
        a_fit = float(gain)
    else:
        a_fit = a
    if read_noise is not None:
        if float(read_noise) == 0:
            shift = 0.0
        elif not a_fit or a_fit <= 0:
            raise ValueError("read_noise needs a gain: give gain=, or let it be estimated from a Poisson-like image")
        else:
            shift = float(read_noise) ** 2 / a_fit
    else:
        shift = (k / a + b) if a and a > 0 else math.inf
        shift = float(min(max(shift, 0.0), span))
    if gain is not None:
        a_eff = float(gain)
    else:
        ms, vs, ns = bins
        u = ms - b + shift
        ok = (u > 0) & (vs > 0)
        if np.any(ok):
            w = ns[ok] / vs[ok] ** 2
            a_eff = float(np.sum(w * vs[ok] * u[ok]) / np.sum(w * u[ok] ** 2))
        else:
            a_eff = 0.0
        if not a_eff > 0:
            a_eff = max(k or 0.0, 1e-12 * span**2) / max(shift, 1e-12 * span)
    return {"background": b, "shift": shift, "gain": a_eff}


def richardson_lucy(image, psf, *, n_iter="auto", acceleration="biggs", tv_weight: float = 0.0,
                    background=None, read_noise=None, gain=None, max_iter: int = 200, boundary: str = "valid",
                    eps: float = 1e-12, spacing=None, block_shape=None, halo=None, progress: bool = False,
                    refit: bool = True, device=None, return_info: bool = False, callback=None, noise_model=None,
                    acceleration_factors=None, _point: bool = False, _op=None):
    """Richardson-Lucy deconvolution of a 2D or 3D image, with optional TV regularization.

    Each iteration multiplies the estimate by ``H^T (z / (H x + s)) / (H^T 1 + tv_weight * div(...))``
    (RL-TV of Dey et al. 2006, "Richardson-Lucy algorithm with total variation regularization for
    3D confocal microscope deconvolution", Microsc. Res. Tech. 69), ``z = y - b + s`` the
    shifted-Poisson data (module docstring). It is the maximum-likelihood (or MAP) estimate under
    Poisson-Gaussian noise, and keeps the estimate non-negative. With ``acceleration=None``,
    ``background=0`` and ``read_noise=0`` it is the classic RL, bit for bit.

    Parameters
    ----------
    image : array_like
        2D or 3D intensities, any scale and offset. Negative values (read noise around a dark
        background) are part of the model.
    psf : array_like or str
        Kernel (normalized inside) or a spec such as ``"gaussian:1.2"`` (see
        :func:`mire.optics.parse_psf`).
    n_iter : int or "auto"
        Number of iterations, or ``"auto"`` (also ``None``): the iterate that minimizes the
        hold-out prediction error (module docstring; at most ``max_iter`` iterations). The
        estimate is then fitted to 90 % of the voxels.
    acceleration : {"biggs", None}
        Biggs-Andrews vector extrapolation after an over-relaxed first step (default; module
        docstring), or plain RL.
    tv_weight : float or "auto"
        RL-TV regularization (0: plain RL). It is relative to ``H^T 1 = 1`` and so does not depend
        on the intensity scale; 0.005-0.04 is typical. ``"auto"``: chosen by the same hold-out
        loss as the automatic stop (six RL-TV runs, see :func:`_choose_tv_weight`). Values that
        make the denominator vanish are clipped (Dey et al. note the weight must stay small).
    background : float, optional
        Constant offset of the data (camera baseline plus uniform background); estimated when None.
        The result keeps it (it is the restored intensity on the input's scale).
    read_noise : float, optional
        SD of the Gaussian read noise, in image units; estimated when None (0: pure Poisson).
    gain : float, optional
        Image units per detected photon; estimated when None.
    noise_model : dict, optional
        ``background``, ``shift``, ``gain`` as :func:`poisson_model` returns them (or ``info``
        does): replaces the three options above, e.g. to use one model for every block.
    acceleration_factors : sequence of float, optional
        Biggs factors to replay, one per iteration (``info["acceleration_factors"]``), instead of
        computing them from this image's inner products: blocks of a volume then take the same
        steps (per-block factors differ by block and the blocks disagree by several %).
    max_iter : int
        Most iterations of the automatic stop.
    refit : bool
        After the automatic stop, run the chosen number of iterations again on all the voxels
        (default; about 1.5x the time, and the 0.2-0.3 dB the held-out tenth costs on DIADEM
        crops come back). ``False`` returns the hold-out run's estimate.
    boundary : {"valid", "zero", "circular"}
        ``"valid"`` (default): extended domain with ``H^T 1`` normalization, no boundary
        artifacts. ``"zero"``: zero padding; with ``acceleration=None, background=0,
        read_noise=0`` identical to ``skimage.restoration.richardson_lucy(image, psf, n_iter,
        clip=False)`` (for odd PSF sizes). ``"circular"``: periodic.
    eps : float
        Added to ``H x`` before the division (as in scikit-image).
    spacing : sequence of float, optional
        Voxel size per axis for the TV term.
    block_shape, halo : tuple of int, optional
        Blockwise processing with halos (see :func:`mire.blockwise.map_blocks`). The noise model
        is estimated on the whole image, the automatic iteration count on its central block.
    progress : bool
        Show a progress bar.
    device : torch device, optional
    return_info : bool
        Also return a dict: ``n_iter`` (iterations of the returned estimate), ``iterations_run``,
        ``stopped`` (the automatic stop found its minimum before ``max_iter``),
        ``holdout_loss`` (mean hold-out deviance of the point each iteration started from,
        automatic stop only), and the noise model ``background``, ``shift``, ``gain``.
    callback : callable, optional
        Called as ``callback(k, estimate)`` after the k-th iteration with the estimate (a numpy
        array like the result; a copy per call, so it costs time), e.g. to follow a quality score.

    Returns
    -------
    restored : ndarray
        Same shape as ``image`` (float64 for float64 input, else float32); and ``info`` if asked.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> from mire.restore import richardson_lucy
    >>> from mire.optics import gaussian_psf
    >>> truth = np.zeros((32, 32)); truth[16, 16] = 1.0
    >>> blurred = ndimage.gaussian_filter(truth, 1.5, mode="constant")
    >>> sharp = richardson_lucy(blurred, gaussian_psf(1.5, ndim=2), n_iter=50, background=0, read_noise=0)
    >>> bool(sharp[16, 16] > 5 * blurred[16, 16])
    True
    """
    from mire.optics.operators import Blur

    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    if acceleration not in ACCELERATIONS:
        raise ValueError(f"acceleration must be one of {ACCELERATIONS}, got {acceleration!r}")
    img, kernel = check_inputs(image, psf)
    auto = n_iter is None or (isinstance(n_iter, str) and n_iter == "auto")
    if isinstance(n_iter, str) and not auto:
        raise ValueError(f"n_iter must be a positive integer or 'auto', got {n_iter!r}")
    if not auto and int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    auto_tv = isinstance(tv_weight, str)
    if auto_tv and tv_weight != "auto":
        raise ValueError(f"tv_weight must be a number >= 0 or 'auto', got {tv_weight!r}")
    if not auto_tv and not (np.isfinite(tv_weight) and tv_weight >= 0):
        raise ValueError(f"tv_weight must be a finite number >= 0 or 'auto', got {tv_weight}")
    for name, v in (("background", background), ("read_noise", read_noise), ("gain", gain)):
        if v is not None and not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v}")
    if read_noise is not None and read_noise < 0:
        raise ValueError(f"read_noise must be >= 0, got {read_noise}")
    if gain is not None and not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    if not np.any(img) and not background and noise_model is None:
        # no photons at all: the maximum-likelihood object is zero, as tv_deconvolve and wiener
        # return; iterating would only leave the estimated noise floor's small constant
        out = np.zeros(img.shape, dtype=np.float64 if img.dtype == np.float64 else np.float32)
        info = dict(background=0.0, shift=0.0, gain=1.0, n_iter=0, iterations_run=0, stopped=False,
                    tv_weight=0.0 if auto_tv else float(tv_weight), acceleration_factors=[])
        return (out, info) if return_info else out
    plain_model = background is not None and read_noise is not None and float(read_noise) == 0
    start_value = None
    if noise_model is not None:  # e.g. a refit or a block: a model estimated before
        model = {k: float(noise_model[k]) for k in ("background", "shift", "gain")}
        start_value = noise_model.get("start")  # blocks of one volume start from the volume's level
    elif plain_model:
        model = {"background": float(background), "shift": 0.0, "gain": float(gain) if gain else 1.0}
    else:
        model = poisson_model(img, background=background, read_noise=read_noise, gain=gain)
    b, shift = model["background"], model["shift"]  # the gain scales data and estimate alike: RL needs only the offsets
    if b or shift:
        z_np = np.subtract(img, b)  # (img - b) + shift, in place: one array, not two
        z_np += shift
    else:
        z_np = img
    # one reduction decides whether any value is negative; they are counted only for the error below
    has_neg = z_np.size > 0 and bool(z_np.min() < 0)
    n_neg = int(np.count_nonzero(z_np < 0)) if has_neg and plain_model else 0
    if n_neg > 0.25 * img.size and plain_model:
        # the model's data must be non-negative; say so rather than return garbage
        raise ValueError(f"image has {n_neg} values ({100 * n_neg / img.size:.0f} %) below background - shift "
                         f"({b - shift:.4g}); Richardson-Lucy needs non-negative data (give a lower background, "
                         "a read_noise, or leave them to be estimated)")
    if has_neg:
        # a few negatives are read noise around a dark background; with an estimated model, more are
        # data already clipped at 0 (a zero is then the model's floor, not an error)
        z_np = np.clip(z_np, 0, None) if z_np is img else np.maximum(z_np, 0, out=z_np)
    tv_search = None
    if auto_tv:
        tv_weight, tv_search = _choose_tv_weight(img, kernel, model, acceleration=acceleration, boundary=boundary,
                                                 eps=eps, spacing=spacing, max_iter=max_iter, device=device)
    if block_shape is not None:
        from mire.blockwise import map_blocks

        if halo is None:
            halo = tuple(4 * (k // 2) + 2 for k in kernel.shape)
        common = dict(acceleration=acceleration, tv_weight=tv_weight, boundary=boundary, eps=eps, spacing=spacing,
                      device=device, noise_model=dict(model, start=float(np.mean(z_np)) - shift))
        # one iteration count and one set of Biggs factors for every block, from the central one
        # (per-block stops or factors would show as seams)
        centre = tuple(slice(max(0, (n - m) // 2), max(0, (n - m) // 2) + m) for n, m in zip(img.shape, block_shape))
        # (its stop and factors come from the hold-out run: no refit of a block that is not kept)
        _, cinfo = richardson_lucy(img[centre], kernel, n_iter="auto" if auto else n_iter, max_iter=max_iter,
                                   return_info=True, refit=False, **common)
        n_iter = max(cinfo["n_iter"], 1)
        if acceleration_factors is None:
            common["acceleration_factors"] = cinfo["acceleration_factors"]
        else:
            common["acceleration_factors"] = acceleration_factors
        dtype_out = np.float64 if img.dtype == np.float64 else np.float32
        out = np.asarray(map_blocks(
            lambda blk: richardson_lucy(blk, kernel, n_iter=int(n_iter), **common),
            img, block_shape=block_shape, halo=halo, dtype=dtype_out, progress=progress))
        return (out, dict(model, n_iter=int(n_iter), iterations_run=int(n_iter), stopped=auto)) if return_info else out

    device = torch.device(device) if device is not None else default_device()
    dtype = compute_dtype(img)
    y = to_tensor(z_np, dtype=dtype, device=device)
    # One FFT grid for the whole run, the shared Blur's, as small as the boundary allows (RL is
    # four FFTs per iteration and little else, so the grid size is the run time). x and the ratio
    # live in fixed regions of it (zero elsewhere), so an iteration has no padding copies or crops.
    # a refit reuses the hold-out run's operator (the same kernel, shape, boundary, dtype and device): its OTF
    op = _op if _op is not None else Blur(kernel, img.shape, boundary=boundary, dtype=dtype, device=device)
    grid, x_region, y_region = op.fft_shape, op.x_region, op.y_region
    dims = tuple(range(img.ndim))
    otf, otf_conj = op.otf, op.otf.conj().resolve_conj()
    offset = tuple(slice(y.start - x.start, y.stop - x.start) for x, y in zip(x_region, y_region))
    # the start value is written over all of x below: only a grid larger than x needs zeroing
    covers = all(r.start in (0, None) and r.stop == n for r, n in zip(x_region, grid))
    x_full = (torch.empty if covers else torch.zeros)(grid, dtype=dtype, device=device)
    # the ratio's region is written before every transform that reads it: only the rest needs zeros
    r_full = _zero_outside(torch.empty(grid, dtype=dtype, device=device), y_region)
    x = x_full[x_region]
    hold = fit = None
    if auto:
        # hold-out voxels: a fixed random tenth of the data, left out of the fit; the model's
        # prediction there is independent of their noise, so its deviance against them estimates
        # the prediction error up to a constant (cross-validation), with no noise level needed
        mask = np.random.default_rng(0).random(img.shape) < HOLDOUT
        hold = torch.as_tensor(mask, device=device)
        fit = (~hold).to(dtype)
        # the held-out voxels' flat indices, gathered with take: the same values in the same (row-major)
        # order as boolean indexing, at a sixth of its time on H x's cropped view
        hold_idx = torch.as_tensor(np.flatnonzero(mask), device=device)
        n_hold = max(int(hold_idx.numel()), 1)
        z_hold = torch.take(y, hold_idx)
    if boundary == "valid" or auto:
        # H^T w: how much of each unknown voxel's light reaches the fitted detector voxels (Bertero
        # & Boccacci; w = 1 on the image, or on its fitted voxels)
        if fit is None and boundary == "valid":
            # on the box's few distinct values (unknowns inside the image all take the same), then expanded
            small, index = _box_adjoint(kernel, img.shape, dtype)
            inv_norm = _BoxScale(_inverse_norm(small), index, device)
            norm = _expand(small, index, device) if tv_weight > 0 else None
        else:
            r_full[y_region] = 1 if fit is None else fit
            norm = irfftn(rfftn(r_full, dim=dims, exact=True) * otf_conj, s=grid, dim=dims)[x_region]
            inv_norm = _inverse_norm(norm)
    else:
        norm = inv_norm = None
    flat_hx = None  # H x of the flat start on the valid outputs, known without a transform
    if boundary == "valid":
        start = float(y.mean()) - shift if start_value is None else float(start_value)
        start = start if start > 0 else (0.5 if not (b or shift) else 1e-3 * max(shift, 1e-12))
        x.fill_(start)
        # every valid output sees the whole kernel (sum 1) over a constant unknown
        flat_x = float(torch.tensor(start, dtype=dtype))
        flat_hx = flat_x * float(kernel.sum())
    else:
        x.fill_(0.5)  # scikit-image's start
    sp = normalize_spacing(spacing, img.ndim)
    ratio = r_full[y_region]
    total = int(max_iter) if auto else int(n_iter)
    # Biggs-Andrews: the RL step is taken from the extrapolated point held in x (the FFT input);
    # `cur` is the last RL result, `prev` the one before, `g_prev`/`g_prev2` the steps' changes
    biggs = acceleration == "biggs"
    cur = prev = g_prev = g_prev2 = None
    # scratch for the Biggs factor's products (allocated, not touched, unless a factor is computed)
    buf_point = torch.empty(x.shape, dtype=dtype, device=device) if acceleration == "biggs" else None
    x_old = False  # x holds the point the last step started from, its result is in cur
    alphas = [0.0]  # the factor of each iteration (none at the first)
    losses, done, stopped = [], 0, False
    best_loss, best_it, best_x = math.inf, 0, None
    # the first step's back-projection from block means: the flat start's over-relaxed step of plain RL
    # (no hold-out weights, no TV term) on a stack with at least 2 blocks per axis
    half_first = (HALF_RES_FIRST_STEP and biggs and FIRST_STEP != 1 and flat_hx is not None and fit is None
                  and tv_weight == 0 and (_point or total > 1) and min(img.shape) >= 4)
    track0 = half_first and (total + (1 if _point else 0) > 2 or acceleration_factors is not None)
    with progress_bar(progress, total, "Richardson-Lucy") as bar:
        # the automatic stop scores the point each step starts from, and `_point` (its refit)
        # returns that point: one more pass through the loop's head
        n_heads = total + 1 if auto or _point else total
        for it in range(n_heads):
            if biggs and it > 0:
                alpha = 0.0
                if acceleration_factors is not None:
                    alpha = float(acceleration_factors[it]) if it < len(acceleration_factors) else 0.0
                elif g_prev2 is not None:
                    alpha = _biggs_factor(g_prev, g_prev2, scratch=buf_point)
                alphas.append(alpha)
                if alpha > 0:
                    torch.sub(cur, prev, out=x).mul_(alpha).add_(cur).clamp_(min=0)
                elif x_old:  # a tracked step left its result in cur and x at the point it started from
                    x.copy_(cur)
            if _point and it == total:
                break
            if it == 0 and half_first:
                # the over-relaxed first step from the flat start, its back-projection at half resolution
                # (module docstring): no full-size transform
                dst = torch.empty(x.shape, dtype=dtype, device=device) if track0 else x
                _half_res_backprojection(y, kernel, y_region, out=dst, scale=1 / (flat_hx + shift + eps))
                # normalized by the same approximation of H^T 1: its border error cancels (see the helper)
                half_inv = _half_res_box_scale(kernel, img.shape, y_region, x.shape, dtype, device)
                _scale_(dst, half_inv).clamp_min_(0).pow_(FIRST_STEP).mul_(flat_x)
                if track0:
                    g_prev = torch.sub(dst, x)
                    prev, cur = cur, dst
                x_old = track0
                done = 1
                bar.advance(1)
                if callback is not None:
                    callback(done, _result(dst, offset, b, dtype))
                continue
            if it == 0 and flat_hx is not None:
                # one value broadcast (stride 0): the ratio's pass reads no full-size array
                hx = torch.full((), flat_hx + shift + eps, dtype=dtype, device=device).expand(y.shape)
            else:
                hx = irfftn(rfftn(x_full, dim=dims, exact=True).mul_(otf), s=grid, dim=dims, overwrite=True,
                            crop=y_region)
                hx.add_(shift + eps)
            if auto:
                loss = _deviance(z_hold, torch.take(hx, hold_idx)) / n_hold
                losses.append(loss)
                if loss < best_loss:
                    best_loss, best_it = loss, it
                    if it == 0 or not refit:  # a refit recomputes any later point: only the flat start is kept
                        best_x = x.clone()  # the point evaluated, the estimate returned if it stays best
                elif it - best_it >= PATIENCE or it == total:
                    stopped = it - best_it >= PATIENCE
                    break
                if it == total:
                    break
            torch.div(y, hx, out=ratio)
            if fit is not None:
                ratio.mul_(fit)
            corr = irfftn(rfftn(r_full, dim=dims, exact=True).mul_(otf_conj), s=grid, dim=dims, overwrite=True)[x_region]
            # the buffers serve the next heads: none after the last step, and none after the first
            # when only one head follows (its factor needs two changes, so it is 0 unless given)
            track = biggs and it + 1 < n_heads and (it > 0 or n_heads > 2 or acceleration_factors is not None)
            # a tracked step writes its result into a spare buffer (the next cur) and keeps x, the point it
            # started from, for the change g: no copies (the next head overwrites x with its extrapolation)
            dst = x
            if track:
                dst = prev if prev is not None else torch.empty(x.shape, dtype=dtype, device=device)
            if tv_weight > 0:
                g = grad(x.contiguous(), sp)
                unit = g / torch.sqrt((g * g).sum(0) + 1e-12)
                # d TV / dx = grad^T (grad x / |grad x|); RL-TV divides by (H^T 1 + w dTV/dx)
                tv_term = tv_weight * grad_adjoint(unit, sp)
                denom = (1.0 if norm is None else norm) + tv_term
                denom = denom.clamp_min(1e-2 * (1.0 if norm is None else float(norm.max())))
                torch.mul(x, corr, out=dst).div_(denom)
                if norm is not None:
                    dst.mul_(norm > 1e-6)
            elif biggs and it == 0 and FIRST_STEP != 1 and (auto or _point or total > 1):
                # (a one-iteration run takes the plain step: the long step is only right with a second after it)
                # over-relaxed first step from the flat start: x u^p, u = c / H^T1 the RL factor.
                # Voxel by voxel (no global rescaling), so blocks of a volume take the same step; the
                # next, plain step restores the flux (its factor 1 - a vanishes at a = 1)
                u = corr if inv_norm is None else _scale_(corr, inv_norm)
                torch.mul(x, u.clamp_min_(0).pow_(FIRST_STEP), out=dst)
            else:
                torch.mul(x, corr, out=dst)
                if inv_norm is not None:
                    _scale_(dst, inv_norm)
            x_old = track
            if track:  # rotate the buffers: no allocation per iteration
                g_new = torch.sub(dst, x, out=g_prev2 if g_prev2 is not None else torch.empty_like(dst))
                g_prev2, g_prev = g_prev, g_new
                prev, cur = cur, dst
            done = it + 1
            bar.advance(1)
            if callback is not None:
                callback(done, _result(dst, offset, b, dtype))
    if auto and refit and best_it > 0:
        out = richardson_lucy(image, kernel, n_iter=best_it, acceleration=acceleration, tv_weight=tv_weight,
                              boundary=boundary, eps=eps, spacing=spacing, device=device, _point=True, _op=op,
                              noise_model=model)
    else:
        if auto:
            x.copy_(best_x)
        out = _result(x, offset, b, dtype)
    if return_info:
        info = dict(model, n_iter=best_it if auto else done, iterations_run=done, stopped=stopped,
                    tv_weight=float(tv_weight), acceleration_factors=alphas if biggs else [])
        if tv_search is not None:
            info["tv_search"] = tv_search
        if auto:
            info["holdout_loss"] = losses
        return out, info
    return out


def _choose_tv_weight(img, kernel, model, **kw) -> tuple[float, dict]:
    """RL-TV weight by the hold-out loss of the automatic stop (the same cross-validation).

    Each candidate runs RL-TV to its hold-out minimum; the weight whose minimum is lowest wins.
    A coarse grid (factor 2 steps over 0.005..0.04, the range Dey et al. report) then the two
    geometric midpoints next to its best, so six runs. The weight is dimensionless (it divides
    ``H^T 1``), so the choice does not depend on the intensity scale.
    """
    scores = {}

    def score(w):
        if w not in scores:
            _, info = richardson_lucy(img, kernel, n_iter="auto", tv_weight=w, refit=False, return_info=True,
                                      noise_model=model, **kw)
            scores[w] = min(info["holdout_loss"])
        return scores[w]

    grid = [0.005, 0.01, 0.02, 0.04]
    best = min(grid, key=score)
    for w in (best / math.sqrt(2), best * math.sqrt(2)):
        score(w)
    best = min(scores, key=scores.get)
    return best, {f"{w:.4g}": v for w, v in sorted(scores.items())}


def _biggs_factor(g1: torch.Tensor, g2: torch.Tensor, scratch: torch.Tensor | None = None) -> float:
    """Biggs-Andrews ``<g1, g2> / <g2, g2>`` clipped to [0, 1).

    The dot products are float64 sums in a fixed (pairwise) order of the float32 products, numpy's on
    the CPU: a threaded reduction rounds differently with the thread count, and a factor that moves in
    its last bits moves every later iterate (the extrapolation amplifies it), so runs would not repeat.
    ``scratch`` (contiguous, the size of ``g1``) takes the products in place of two new arrays.
    """
    if g1.device.type == "cpu":
        a, c = g1.detach().contiguous().numpy().ravel(), g2.detach().contiguous().numpy().ravel()
        if scratch is not None and scratch.is_contiguous() and scratch.numel() == a.size and scratch.dtype == g1.dtype:
            prod = scratch.detach().numpy().ravel()
            den = float(np.sum(np.multiply(c, c, out=prod), dtype=np.float64))
            num = float(np.sum(np.multiply(a, c, out=prod), dtype=np.float64))
        else:
            den, num = float(np.sum(c * c, dtype=np.float64)), float(np.sum(a * c, dtype=np.float64))
    else:
        a, c = g1.reshape(-1), g2.reshape(-1)
        den, num = float(torch.sum(c * c, dtype=torch.float64)), float(torch.sum(a * c, dtype=torch.float64))
    alpha = num / den if den > 0 else 0.0
    return min(max(alpha, 0.0), 1.0 - 1e-6)


def _box_adjoint(kernel: np.ndarray, shape, dtype) -> tuple[torch.Tensor, list]:
    """``H^T 1`` on the valid boundary's unknown (``shape + kernel.shape - 1``), exactly and without FFTs.

    The image's indicator is a product of 1D boxes, so ``H^T 1`` is the kernel contracted with one
    0/1 matrix per axis (``A[m, p] = 1`` when unknown voxel ``m`` reaches image voxel ``m + p - (K - 1)``):
    a few small tensor products, in float64. Unknowns whose row of ``A`` is the same (all those the
    whole kernel of which lands inside the image) take the same value, so the products run on the
    distinct rows only; returns those values (a small tensor of ``dtype``) and, per axis, the
    index of each unknown's row (:func:`_expand` makes the full array).
    """
    out = torch.as_tensor(np.asarray(kernel, dtype=np.float64))
    index = []
    for ax in reversed(range(len(shape))):
        n, kk = shape[ax], kernel.shape[ax]
        m = np.arange(n + kk - 1)[:, None]
        p = np.arange(kk)[None, :]
        t = m + p - (kk - 1)  # image index that kernel tap p of unknown voxel m lands on
        rows, inverse = np.unique((t >= 0) & (t < n), axis=0, return_inverse=True)
        index.insert(0, torch.as_tensor(inverse.ravel(), dtype=torch.int64))
        a = torch.as_tensor(rows.astype(np.float64))
        out = torch.movedim(torch.tensordot(a, out, dims=([1], [ax])), 0, ax)
    return out.to(dtype=dtype).contiguous(), index


def _half_res_backprojection(r: torch.Tensor, kernel: np.ndarray, y_region, *, out: torch.Tensor,
                             scale: float = 1.0) -> torch.Tensor:
    """``H^T (scale r)`` of the valid boundary (``out``: the unknown's shape) from the 2^ndim block means of ``r``.

    ``r`` is taken as constant on each block (an odd axis's last voxel makes a block with itself), so
    ``H^T`` of it, averaged over the unknown's blocks (aligned with the image's), is a correlation of
    the block means with a half-resolution kernel: ``k_h[d] = 2^-ndim sum_{e in {0,1}^ndim}
    sum_{j: floor((e + j - c) / 2) = d} k[j]``, one 0/1 matrix per axis as the sum over ``e`` factors.
    It runs on a grid 2^ndim times smaller; the result is interpolated linearly between block centres
    (weights 3/4, 1/4, the last axis first, so the largest pass writes whole planes into ``out``).
    """
    nd = r.ndim
    dims = tuple(range(nd))
    half = r
    for ax in range(nd):  # block sums, pairwise along each axis
        n = half.shape[ax]
        a = half[(slice(None),) * ax + (slice(0, None, 2),)]
        b = half[(slice(None),) * ax + (slice(1, None, 2),)]
        if n % 2:
            b = torch.cat([b, half.narrow(ax, n - 1, 1)], ax)
        half = a + b
    half = half.mul_(0.5 ** nd * scale)
    kh_np, lo_d = _half_kernel(kernel)
    kh = torch.as_tensor(kh_np)
    # v[P] = sum_d k_h[d] r_h[P + d] for the block indices P the interpolation reads: image coordinate
    # p = (unknown index) - y_region start, p in [-s, X - s); block P is centred at 2 P + 1/2
    s0 = [int(reg.start) for reg in y_region]
    need = [_half_blocks_needed(s, x) for s, x in zip(s0, out.shape)]
    grid = [fast_len(max(nh + kh.shape[a], hi - lo + 1)) for a, (nh, (lo, hi)) in enumerate(zip(half.shape, need))]
    kpad = torch.zeros(grid, dtype=torch.float64)
    where = [torch.as_tensor((np.arange(kh.shape[a]) + lo_d[a]) % grid[a]) for a in range(nd)]
    kpad[torch.meshgrid(*where, indexing="ij")] = kh
    rpad = torch.zeros(grid, dtype=r.dtype, device=r.device)
    rpad[tuple(slice(0, n) for n in half.shape)] = half
    kf = rfftn(kpad.to(r.dtype).to(r.device), dim=dims, exact=True).conj()
    v = irfftn(rfftn(rpad, dim=dims, exact=True).mul_(kf), s=grid, dim=dims)
    for a, (lo, hi) in enumerate(need):  # P = lo..hi (negative P wrap to the grid's far end)
        v = torch.index_select(v, a, torch.as_tensor(np.arange(lo, hi + 1) % grid[a], device=r.device))
    for a in reversed(range(nd)):
        s, x = s0[a], out.shape[a]
        dst = out if a == 0 else torch.empty(v.shape[:a] + (x,) + v.shape[a + 1:], dtype=r.dtype, device=r.device)
        lo = need[a][0]
        # output t <-> p = t - s; p = 2P (even): v[P] + 1/4 (v[P-1] - v[P]); p = 2P + 1: v[P] + 1/4 (v[P+1] - v[P])
        t_ev = s % 2  # first t with p even
        n_ev = (x - t_ev + 1) // 2
        p_ev = (t_ev - s) // 2 - lo  # local index of P for that t
        t_od = 1 - t_ev
        n_od = (x - t_od + 1) // 2
        p_od = (t_od - s - 1) // 2 - lo
        sl = lambda st, n: (slice(None),) * a + (slice(st, st + n),)  # noqa: E731
        ss = lambda st, n: (slice(None),) * a + (slice(st, st + 2 * n - 1, 2),)  # noqa: E731
        torch.lerp(v[sl(p_ev, n_ev)], v[sl(p_ev - 1, n_ev)], 0.25, out=dst[ss(t_ev, n_ev)])
        torch.lerp(v[sl(p_od, n_od)], v[sl(p_od + 1, n_od)], 0.25, out=dst[ss(t_od, n_od)])
        v = dst
    return out


def _half_kernel(kernel: np.ndarray) -> tuple[np.ndarray, list]:
    """The half-resolution kernel ``k_h`` of :func:`_half_res_backprojection` (float64) and its first index per axis."""
    k = np.asarray(kernel, dtype=np.float64)
    kh = k
    lo_d = []
    for ax in reversed(range(k.ndim)):
        kk, c = k.shape[ax], k.shape[ax] // 2
        j = np.arange(kk)
        d0 = (j - c) // 2  # e = 0
        d1 = (1 + j - c) // 2  # e = 1
        lo, hi = int(d0.min()), int(d1.max())
        mat = np.zeros((hi - lo + 1, kk))
        np.add.at(mat, (d0 - lo, j), 0.5)
        np.add.at(mat, (d1 - lo, j), 0.5)
        kh = np.moveaxis(np.tensordot(mat, kh, axes=([1], [ax])), 0, ax)
        lo_d.insert(0, lo)
    return kh, lo_d


def _half_blocks_needed(s: int, x: int) -> tuple[int, int]:
    """First and last block index ``P`` the interpolation onto ``x`` unknowns (image at offset ``s``) reads."""
    return -(s // 2 + s % 2) - 1, (x - s + 1) // 2 + 1


def _half_res_box_scale(kernel: np.ndarray, shape, y_region, x_shape, dtype, device) -> "_BoxScale":
    """``1 / A(H^T 1)``, ``A`` the half-resolution back-projection of :func:`_half_res_backprojection`.

    Dividing ``A(H^T r)`` by ``A(H^T 1)`` instead of the exact ``H^T 1`` cancels the approximation's
    error at the borders of the valid domain to first order: there the linear interpolation between a
    block inside the image and one outside it does not follow the edge of ``H^T r``, and ``A(H^T 1)``
    misses it the same way (31-37 % off at the last voxels, < 1 % in the quotient). The image's
    indicator is a product of 1D boxes, and ``A`` is, per axis, an interpolation matrix times a 0/1 box
    matrix, so ``A(H^T 1)`` is ``k_h`` contracted with one small matrix per axis on its distinct rows
    (as :func:`_box_adjoint`; no transform). Voxels the exact ``H^T 1`` gives (almost) nothing get 0,
    as :func:`_inverse_norm` does, so the same unknowns are updated as by the exact step.
    """
    k = np.asarray(kernel, dtype=np.float64)
    kh, lo_d = _half_kernel(k)
    exact, approx, index = k, kh, []
    for ax in reversed(range(len(shape))):
        n, kk, x, s = shape[ax], k.shape[ax], x_shape[ax], int(y_region[ax].start)
        m = np.arange(x)[:, None]
        t = m + np.arange(kk)[None, :] - (kk - 1)  # as in _box_adjoint
        rows_exact = ((t >= 0) & (t < n)).astype(np.float64)
        lo, hi = _half_blocks_needed(s, x)
        nh = (n + 1) // 2
        blocks = np.arange(lo, hi + 1)[:, None] + np.arange(kh.shape[ax])[None, :] + lo_d[ax]
        box = ((blocks >= 0) & (blocks < nh)).astype(np.float64)  # block P reads block P + d of the image
        p = np.arange(x) - s  # image coordinate of each unknown; its block P = p // 2, the other P -+ 1
        interp = np.zeros((x, hi - lo + 1))
        big = p // 2 - lo
        interp[np.arange(x), big] += 0.75
        interp[np.arange(x), big + np.where(p % 2, 1, -1)] += 0.25
        rows_approx = interp @ box
        rows, inverse = np.unique(np.hstack([rows_exact, rows_approx]), axis=0, return_inverse=True)
        index.insert(0, torch.as_tensor(inverse.ravel(), dtype=torch.int64))
        exact = np.moveaxis(np.tensordot(rows[:, :kk], exact, axes=([1], [ax])), 0, ax)
        approx = np.moveaxis(np.tensordot(rows[:, kk:], approx, axes=([1], [ax])), 0, ax)
    # (the float64 exact value, cast as _box_adjoint casts it, decides which voxels get 0)
    keep = torch.as_tensor(exact).to(dtype) > 1e-6
    inv = torch.as_tensor(1 / np.maximum(approx, 1e-12)).to(dtype).masked_fill_(~keep, 0)
    return _BoxScale(inv.contiguous(), index, device)


def _inverse_norm(norm: torch.Tensor) -> torch.Tensor:
    """``1 / H^T w``, 0 where the unknown reaches (almost) no data."""
    return norm.clamp_min(1e-6).reciprocal_().masked_fill_(norm <= 1e-6, 0)


class _BoxScale:
    """``1 / H^T 1`` of the valid boundary kept as its distinct values (:func:`_box_adjoint`), not a full array.

    Unknowns whose whole kernel lands inside the image (a box: the rows of ``A`` that are all ones, on
    every axis) share one value, so a multiply by it is a multiply of that box by one number (the same
    float product per voxel as by the full array) and of the slabs around it by their own values.
    """

    def __init__(self, small: torch.Tensor, index: list, device):
        self.box = []
        for ax, idx in enumerate(index):
            inner = np.flatnonzero(idx.numpy() == int(idx[idx.numel() // 2]))
            if inner.size == 0 or inner[-1] - inner[0] + 1 != inner.size:  # no one contiguous run: no box
                self.box = None
                break
            self.box.append((int(inner[0]), int(inner[-1]) + 1))
        if self.box is not None:
            self.value = small[tuple(int(index[ax][a]) for ax, (a, _) in enumerate(self.box))].to(device)
            self.slabs = []  # (region, multiplier) around the box, expanded once: every call reuses them
            for ax, (a, b) in enumerate(self.box):  # disjoint: inside the box on earlier axes
                for part in (slice(0, a), slice(b, len(index[ax]))):
                    if part.stop <= part.start:
                        continue
                    region = tuple(slice(*self.box[k]) if k < ax else (part if k == ax else slice(None))
                                   for k in range(len(index)))
                    sub = [index[k][region[k]] for k in range(len(index))]
                    self.slabs.append((region, _expand(small, sub, device)))
        else:
            self.full = _expand(small, index, device)

    def mul_(self, t: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            return t.mul_(self.full)
        t[tuple(slice(a, b) for a, b in self.box)].mul_(self.value)
        for region, scale in self.slabs:
            t[region].mul_(scale)
        return t


def _scale_(t: torch.Tensor, inv_norm) -> torch.Tensor:
    """``t *= inv_norm`` in place, for a full tensor or a :class:`_BoxScale`."""
    return inv_norm.mul_(t) if isinstance(inv_norm, _BoxScale) else t.mul_(inv_norm)


def _expand(small: torch.Tensor, index: list, device) -> torch.Tensor:
    """The full array whose voxel ``(m_0, m_1, ...)`` is ``small[index_0[m_0], index_1[m_1], ...]``."""
    out = small
    for ax in reversed(range(small.ndim)):  # the largest copy, along axis 0, is of whole planes
        out = torch.index_select(out, ax, index[ax])
    return out.to(device=device).contiguous()


def _zero_outside(t: torch.Tensor, region) -> torch.Tensor:
    """Zero ``t`` outside ``region`` (one slice per axis) in place: disjoint slabs, each voxel written once."""
    for ax, r in enumerate(region):
        for part in (slice(0, r.start or 0), slice(r.stop if r.stop is not None else t.shape[ax], t.shape[ax])):
            if part.stop > part.start:
                t[tuple(region[k] if k < ax else (part if k == ax else slice(None)) for k in range(t.ndim))] = 0
    return t


def _result(x, offset, b, dtype) -> np.ndarray:
    view = to_numpy(x[offset])
    out = np.empty(view.shape, dtype=np.float64 if dtype == torch.float64 else np.float32)
    if b:
        np.add(view, b, out=out)  # the restored intensity on the input's scale
    else:
        np.copyto(out, view)
    return out


def _deviance(z: torch.Tensor, mu: torch.Tensor) -> float:
    """Poisson deviance ``2 sum(z log(z / mu) - z + mu)`` in image units (``0 log 0 = 0``)."""
    t = torch.where(z > 0, z * torch.log(z / mu), torch.zeros_like(z))
    return 2.0 * float(torch.sum(t - z + mu))
