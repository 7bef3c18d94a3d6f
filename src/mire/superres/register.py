"""Frame registration: shift + rotation of each frame relative to a reference frame.

Results use the convention of :class:`mire.optics.Warp` on the high-resolution grid:
frame t sees the scene of the reference frame moved by ``shifts[t]`` (high-res pixels,
index order) and rotated by ``rotations[t]`` (radians, in the last two axes) about the
array centre, ``y_t(p) = x(R_t^T (p - c - s_t) + c)``.

The initial estimate (:func:`register_frames`) is a coarse rotation search followed by
sub-pixel phase correlation on the low-res frames. Solvers then refine it jointly with
the image (:func:`refine_registration`: Gauss-Newton on the data term, its Jacobian from
forward-mode differentiation through ``Warp``).
"""

from __future__ import annotations

import numpy as np
import torch

from mire.superres._model import DTYPE, FrameModel, check_frames


def _rotate_back(frame: np.ndarray, angle: float) -> np.ndarray:
    """Undo an in-plane rotation with the shared Warp (same convention as the forward model)."""
    from mire.optics import Warp

    w = Warp(frame.shape, rotation=-angle, dtype=DTYPE)
    return w.forward(torch.as_tensor(frame, dtype=DTYPE)).numpy()


def _window(shape) -> np.ndarray:
    # A Hann window stops the frame borders (and the zero corners after rotating) from
    # dominating the cross-power spectrum.
    win = np.ones(shape)
    for ax, n in enumerate(shape):
        if n > 2:
            w = np.hanning(n)
            win = win * w.reshape([-1 if a == ax else 1 for a in range(len(shape))])
    return win


def _phase_peak(ref_f: np.ndarray, mov: np.ndarray, upsample: int):
    from skimage.registration import phase_cross_correlation

    mov_f = np.fft.fftn(mov * _window(mov.shape))
    shift, _, _ = phase_cross_correlation(ref_f, mov_f, space="fourier", upsample_factor=upsample,
                                          normalization="phase")
    # correlation strength at that shift, to compare rotation candidates
    g = ref_f * np.conj(mov_f)
    g /= np.abs(g) + 1e-12
    return shift, float(np.abs(np.fft.ifftn(g)).max())


def _robust_integer_shift(ref: np.ndarray, mov: np.ndarray, max_shift: int) -> np.ndarray:
    """Integer shift ``d`` with ``mov(p) ~ ref(p - d)`` minimizing the median absolute difference.

    The median ignores up to half the overlap, so occluded patches in either frame (which
    make phase correlation lock onto junk-to-junk matches) do not move the optimum.
    """
    import itertools

    best, best_d = np.inf, np.zeros(ref.ndim, dtype=int)
    for dvec in itertools.product(range(-max_shift, max_shift + 1), repeat=ref.ndim):
        src = tuple(slice(max(0, -k), n - max(0, k)) for k, n in zip(dvec, ref.shape))
        dst = tuple(slice(max(0, k), n - max(0, -k)) for k, n in zip(dvec, ref.shape))
        cost = float(np.median(np.abs(mov[dst] - ref[src])))
        if cost < best:
            best, best_d = cost, np.array(dvec)
    return best_d


def register_frames(frames, *, factor=1, reference: int = 0, coarse: str = "robust", max_shift: int | None = None,
                    rotation: bool = False, max_rotation: float = 5.0, rotation_step: float = 1.0,
                    upsample: int = 20, refine: int = 8) -> dict:
    """Estimate each frame's shift and rotation relative to the reference frame.

    Parameters
    ----------
    frames : (T, Y, X) or (T, Z, Y, X) array
        Low-resolution frames.
    factor : int or tuple of int
        Super-resolution factor: shifts are returned in high-res pixels (low-res pixels
        times ``factor``), ready for the forward model.
    reference : int
        Index of the frame that defines the coordinate frame (its parameters are zero).
    coarse : {"robust", "phase"}
        First estimate: ``"robust"`` searches integer low-res shifts up to ``max_shift``
        (default a quarter of the frame) minimizing the median absolute difference, which
        occlusions do not fool; ``"phase"``: sub-pixel phase correlation (with the optional
        rotation search), faster for large motions but misled by occluding patches. Either
        is then refined by Gauss-Newton (robustly reweighted), which also finds rotations of
        a few degrees.
    rotation : bool
        Search rotations (in the last two axes) in ``[-max_rotation, max_rotation]``
        degrees by ``rotation_step``, refined by a parabola through the best three.
    upsample : int
        Sub-pixel precision of the phase correlation (1/upsample low-res px).
    refine : int
        Gauss-Newton steps that refine shift and rotation together against the
        (upsampled) reference frame; 0 keeps the phase-correlation result.

    Returns
    -------
    dict with ``shifts`` (T, ndim) in high-res pixels and ``rotations`` (T,) in radians.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> from scipy import ndimage
    >>> img = ndimage.gaussian_filter(rng.random((64, 64)), 2)
    >>> frames = np.stack([img, ndimage.shift(img, (1.5, -2.0), order=3)])
    >>> reg = register_frames(frames)
    >>> np.round(reg["shifts"][1], 1)
    array([ 1.5, -2. ])
    """
    arr, f = check_frames(frames, factor=factor)
    n_t, d = arr.shape[0], arr.ndim - 1
    if not -n_t <= reference < n_t:
        raise ValueError(f"reference={reference} is not a frame index for {n_t} frames")
    reference %= n_t
    from scipy import ndimage

    # a light blur keeps the structure the motion is measured on and removes most of the noise
    smooth = np.stack([ndimage.gaussian_filter(a, 0.5) for a in arr])
    ref = smooth[reference] - smooth[reference].mean()

    ref_f = np.fft.fftn(ref * _window(ref.shape))
    angles = np.deg2rad(np.arange(-max_rotation, max_rotation + 1e-9, rotation_step)) if rotation else np.zeros(1)
    shifts = np.zeros((n_t, d))
    rots = np.zeros(n_t)
    if coarse not in ("robust", "phase"):
        raise ValueError(f"coarse must be 'robust' or 'phase', got {coarse!r}")
    if max_shift is None:
        max_shift = max(1, min(arr.shape[1:]) // 4)
    for t in range(n_t):
        if t == reference:
            continue
        if coarse == "robust":
            shifts[t] = _robust_integer_shift(smooth[reference], smooth[t], int(max_shift)) * np.asarray(f)
            continue
        mov = smooth[t] - smooth[t].mean()
        scores, found = [], []
        for a in angles:
            s, score = _phase_peak(ref_f, _rotate_back(mov, a) if a else mov, upsample=4)
            scores.append(score)
            found.append(s)
        k = int(np.argmax(scores))
        angle = angles[k]
        if 0 < k < len(angles) - 1:  # parabola through the best three candidates
            s0, s1, s2 = scores[k - 1], scores[k], scores[k + 1]
            den = s0 - 2 * s1 + s2
            if den < 0:
                angle = angle + 0.5 * (s0 - s2) / den * (angles[1] - angles[0])
        s, _ = _phase_peak(ref_f, _rotate_back(mov, angle) if angle else mov, upsample=upsample)
        # phase_cross_correlation returns the shift that registers the moving frame, i.e. minus
        # the motion d of the rotated-back frame; that frame is the reference moved by R^T s_t
        d_lr = -np.asarray(s)
        rmat = np.eye(d)
        c, sn = np.cos(angle), np.sin(angle)
        rmat[-2:, -2:] = [[c, -sn], [sn, c]]
        shifts[t] = (rmat @ d_lr) * np.asarray(f)
        rots[t] = angle
    if refine and n_t > 1:
        # Gauss-Newton on (shift, rotation) against the upsampled reference frame: the
        # coarse estimates above are within its basin (a few degrees, a pixel), and it is
        # far more precise than the discrete rotation search.
        from mire.superres._model import upsample_mean

        x0 = torch.as_tensor(upsample_mean(arr[reference:reference + 1], f), dtype=DTYPE)
        model = FrameModel(x0.shape, f, None, np.c_[shifts, rots])
        params0 = model.params.copy()
        refine_registration(model, x0, torch.as_tensor(arr, dtype=DTYPE), params0, reference=reference,
                            n_steps=refine, robust=True)
        shifts, rots = model.params[:, :d], model.params[:, d]
    return {"shifts": shifts, "rotations": rots}


def params_from_registration(registration: dict, n_frames: int, ndim: int) -> np.ndarray:
    """(T, ndim + 1) parameter array from a ``dict(shifts=, rotations=)``, with shape checks."""
    if not isinstance(registration, dict) or "shifts" not in registration:
        raise ValueError("registration must be None or a dict with 'shifts' (T, ndim) and optional 'rotations' (T,)")
    shifts = np.asarray(registration["shifts"], dtype=float)
    rots = np.asarray(registration.get("rotations", np.zeros(n_frames)), dtype=float)
    if shifts.shape != (n_frames, ndim):
        raise ValueError(f"registration['shifts'] must have shape ({n_frames}, {ndim}), got {shifts.shape}")
    if rots.shape != (n_frames,):
        raise ValueError(f"registration['rotations'] must have shape ({n_frames},), got {rots.shape}")
    if not (np.all(np.isfinite(shifts)) and np.all(np.isfinite(rots))):
        raise ValueError("registration contains NaN or infinite values")
    return np.concatenate([shifts, rots[:, None]], axis=1)


def registration_from_params(params: np.ndarray) -> dict:
    params = np.asarray(params)
    return {"shifts": params[:, :-1].copy(), "rotations": params[:, -1].copy()}


def relative_registration(shifts, rotations, *, reference: int = 0) -> dict:
    """Re-express absolute motions (e.g. a simulator's truth) relative to a reference frame.

    If frame t shows ``W(s_t, R_t) x``, then relative to frame r it shows the motion
    ``R_t R_r^T`` and ``s_t - R_t R_r^T s_r`` (composition of rigid motions about the same
    centre), which is what :func:`register_frames` estimates.

    Examples
    --------
    >>> rel = relative_registration([[1.0, 2.0], [3.0, 2.0]], [0.0, 0.0])
    >>> rel["shifts"].tolist(), rel["rotations"].tolist()
    ([[0.0, 0.0], [2.0, 0.0]], [0.0, 0.0])
    """
    shifts = np.asarray(shifts, dtype=float)
    rots = np.asarray(rotations, dtype=float)
    d = shifts.shape[1]

    def rmat(a):
        r = np.eye(d)
        r[-2:, -2:] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        return r

    rel_s = np.empty_like(shifts)
    for t in range(len(shifts)):
        rel = rmat(rots[t] - rots[reference])
        rel_s[t] = shifts[t] - rel @ shifts[reference]
    return {"shifts": rel_s, "rotations": rots - rots[reference]}


def registration_error(estimate: dict, truth: dict, *, reference: int = 0) -> dict:
    """RMS shift error (high-res px) and RMS rotation error (degrees) over the non-reference frames.

    ``truth`` may hold absolute motions; both are made relative to ``reference`` first.
    """
    e = relative_registration(estimate["shifts"], estimate.get("rotations", np.zeros(len(estimate["shifts"]))),
                              reference=reference)
    t = relative_registration(truth["shifts"], truth.get("rotations", np.zeros(len(truth["shifts"]))),
                              reference=reference)
    keep = np.arange(len(e["shifts"])) != reference
    ds = e["shifts"][keep] - t["shifts"][keep]
    dr = e["rotations"][keep] - t["rotations"][keep]
    return {"shift_rms": float(np.sqrt(np.mean(np.sum(ds**2, axis=1)))) if keep.any() else 0.0,
            "rotation_rms_deg": float(np.rad2deg(np.sqrt(np.mean(dr**2)))) if keep.any() else 0.0}


def refine_registration(model: FrameModel, x: torch.Tensor, frames: torch.Tensor, params0: np.ndarray, *,
                        reference: int, beta: float = 1.0, weights: torch.Tensor | None = None,
                        prior_sd: tuple[float, float] | None = None, n_steps: int = 3,
                        return_hessian: bool = False, robust: bool = False):
    """Gauss-Newton refinement of each frame's (shift, rotation) for a fixed image ``x``.

    Minimizes ``beta/2 sum w (y_t - A_t(p) x)^2 + 1/2 |(p - p0) / sd|^2`` per frame
    (the registration prior of Eq. 5 when ``prior_sd`` is given, centred on the initial
    estimate ``params0``). The reference frame stays fixed: it removes the gauge freedom
    of moving the image and every frame together.

    Returns the new (T, ndim + 1) parameters and, if asked, the per-frame Gauss-Newton
    Hessians (T, ndim + 1, ndim + 1) (used by the Laplace approximation of Pickup et al.).
    """
    d = model.ndim
    params = model.params.copy()
    prec = np.zeros(d + 1)
    if prior_sd is not None:
        prec[:d] = 1.0 / prior_sd[0] ** 2
        prec[d] = 1.0 / prior_sd[1] ** 2
    hessians = np.zeros((model.n_frames, d + 1, d + 1))
    x = x.detach()
    for t in range(model.n_frames):
        if t == reference:
            hessians[t] = np.diag(np.maximum(prec, 1e-12))
            continue
        w = None if weights is None else weights[t]
        p = params[t].copy()
        for _ in range(n_steps):
            pred, jac = model.frame_jacobian(x, p)
            r = (frames[t] - pred).reshape(-1)
            if robust:
                # iteratively reweighted: Cauchy weights on residuals far beyond the typical one,
                # so occluded patches do not drag the motion
                s2 = float(torch.median(r**2)) / 0.455 + 1e-12
                w = (1.0 / (1.0 + r**2 / (4 * s2))).reshape(frames[t].shape)
            j = jac.reshape(-1, d + 1)
            jw = j if w is None else j * w.reshape(-1, 1)
            h = beta * (jw.T @ j).numpy() + np.diag(prec)
            g = beta * (jw.T @ r).numpy() - prec * (p - params0[t])
            try:
                step = np.linalg.solve(h + 1e-9 * np.eye(d + 1), g)
            except np.linalg.LinAlgError:
                break
            # keep steps physical: a Gauss-Newton step of more than a pixel or a degree from a
            # linear-interpolation warp is unreliable
            lim = np.r_[np.full(d, 1.0), np.deg2rad(1.0)]
            step = np.clip(step, -lim, lim)
            p = p + step
            if np.all(np.abs(step) < np.r_[np.full(d, 1e-4), 1e-6]):
                break
        params[t] = p
        if return_hessian:
            pred, jac = model.frame_jacobian(x, p)
            j = jac.reshape(-1, d + 1)
            jw = j if w is None else j * w.reshape(-1, 1)
            hessians[t] = beta * (jw.T @ j).numpy() + np.diag(prec)
    model.set_params(params)
    return (params, hessians) if return_hessian else params
