"""The multi-frame forward model: it is the shared frame_operator, its adjoint is exact, its Jacobian is right."""

import numpy as np
import pytest
import torch

from mire.optics import frame_operator, gaussian_psf
from mire.superres._model import FrameModel, check_frames

PARAMS = np.array([[0.0, 0.0, 0.0], [0.7, -1.3, 0.04], [-1.1, 0.4, -0.02]])


def test_frames_equal_frame_operator():
    psf = gaussian_psf(1.0, ndim=2)
    model = FrameModel((24, 32), (4, 4), psf, PARAMS)
    x = torch.as_tensor(np.random.default_rng(1).random((24, 32)))
    y = model.forward(x)
    for t, p in enumerate(PARAMS):
        op = frame_operator((24, 32), psf=psf, factor=4, shift=p[:2], rotation=float(p[2]), boundary="zero",
                            dtype=torch.float64)
        np.testing.assert_allclose(y[t].numpy(), op.forward(x).numpy(), atol=1e-12)


@pytest.mark.parametrize("margin", [0, (4, 2)])
def test_adjoint_is_exact(margin):
    model = FrameModel((16, 20), (2, 2), gaussian_psf(0.8, ndim=2), PARAMS, margin=margin)
    rng = np.random.default_rng(2)
    x = torch.as_tensor(rng.random(model.hr_shape))
    y = torch.as_tensor(rng.random((3,) + model.lr_shape))
    lhs = float((model.forward(x) * y).sum())
    rhs = float((x * model.adjoint(y)).sum())
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_margin_keeps_the_centres():
    """With a margin the field-of-view crop of x is what frame 0 sees (no shift sneaks in)."""
    x = torch.as_tensor(np.random.default_rng(3).random((20, 24)))
    m0 = FrameModel((16, 16), (2, 2), None, PARAMS)
    m1 = FrameModel((16, 16), (2, 2), None, PARAMS, margin=(2, 4))
    np.testing.assert_allclose(m1.forward(x)[0].numpy(), m0.forward(x[2:18, 4:20])[0].numpy(), atol=1e-12)


def test_jacobian_matches_autograd_through_warp(scene):
    """The analytic chain-rule Jacobian agrees with autograd through the differentiable Warp.

    Compared on what Gauss-Newton uses, ``J^T r`` for the residual ``r`` of a slightly
    different motion (one backward pass). Against a white-noise ``r`` they would differ:
    the central-difference image gradient smooths the highest frequencies that the
    piecewise-linear interpolant's derivative keeps.
    """
    x = torch.as_tensor(scene((48, 48), sigma=3.0))
    model = FrameModel((48, 48), (2, 2), gaussian_psf(1.0, ndim=2), PARAMS)
    p = PARAMS[1]
    pred, jac = model.frame_jacobian(x, p)
    np.testing.assert_allclose(pred.numpy(), model.forward(x)[1].numpy(), atol=1e-12)
    for delta in ([0.2, 0.0, 0.0], [0.0, -0.2, 0.0], [0.0, 0.0, 0.005]):
        r = model.frame_forward(x, torch.as_tensor(p + np.array(delta))) - pred
        r[:6], r[-6:], r[:, :6], r[:, -6:] = 0, 0, 0, 0  # away from the zero-filled border
        q = torch.as_tensor(p).requires_grad_(True)
        (model.frame_forward(x, q) * r).sum().backward()
        ours = (jac * r[..., None]).sum(dim=(0, 1)).numpy()
        k = int(np.argmax(np.abs(delta)))
        assert abs(ours[k] - float(q.grad[k])) < 0.15 * abs(float(q.grad[k]))


def test_check_frames_errors():
    with pytest.raises(ValueError, match="same shape"):
        check_frames([np.zeros((8, 8)), np.zeros((8, 9))], factor=2)
    bad = np.zeros((3, 8, 8))
    bad[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        check_frames(bad, factor=2)
    with pytest.raises(ValueError, match="factor"):
        check_frames(np.zeros((3, 8, 8)), factor=0)
    with pytest.raises(ValueError, match="factor"):
        check_frames(np.zeros((3, 8, 8)), factor=1.5)
    with pytest.raises(ValueError, match="2 numbers"):
        check_frames(np.zeros((3, 8, 8)), factor=(2, 2, 2))
    with pytest.raises(ValueError, match="3D or 4D"):
        check_frames(np.zeros((8, 8)), factor=2)
