"""Network shapes, presets, configs and the fast conv layouts against torch references."""

import numpy as np
import pytest
import torch
from torch import nn

from mire.nets import DepthToSpace, EncoderDecoder, PRESETS, SpaceToDepth, UNet, build_model, count_parameters
from mire.nets.layers import AxialConv3d, PlaneConv3d, ResidualBlock
from mire.nets.unet import anisotropic_layout


@pytest.mark.parametrize("kw,shape,multiple", [
    (dict(ndim=2, depth=3, base_channels=4), (2, 1, 16, 24), (4, 4)),
    (dict(ndim=3, depth=3, base_channels=4), (1, 1, 8, 8, 12), (4, 4, 4)),
    # anisotropic: never pool along Z, in-plane kernels only
    (dict(ndim=3, depth=3, base_channels=4, pool=(1, 2, 2), kernel=(1, 3, 3)), (1, 1, 3, 8, 8), (1, 4, 4)),
    (dict(ndim=3, depth=2, base_channels=4, stem=(1, 2, 2), pool=(1, 2, 2), conv="factorized"), (1, 1, 5, 8, 8), (1, 4, 4)),
    (dict(ndim=2, depth=2, base_channels=4, stem=2, conv="separable", norm="group"), (1, 1, 8, 8), (4, 4)),
    (dict(ndim=3, depth=2, base_channels=4, norm="instance", activation="gelu"), (2, 1, 4, 4, 4), (2, 2, 2)),
])
def test_output_shape_and_size_multiple(kw, shape, multiple):
    net = UNet(**kw).eval()
    assert net.size_multiple == multiple
    with torch.no_grad():
        assert net(torch.randn(shape)).shape == shape


def test_channels_and_encoder_decoder_has_no_skips():
    net = EncoderDecoder(ndim=2, in_channels=2, out_channels=3, depth=3, base_channels=4, norm="none")
    assert net(torch.randn(1, 2, 8, 8)).shape == (1, 3, 8, 8)
    unet = UNet(ndim=2, in_channels=2, out_channels=3, depth=3, base_channels=4, norm="none")
    # the decoders of a U-Net take the concatenated skip: twice the input channels
    assert unet.decoders[0][0].in_channels == 2 * net.decoders[0][0].in_channels == 8
    assert net.config["arch"] == "encoder_decoder" and unet.config["arch"] == "unet"


def test_residual_predicts_a_correction():
    net = UNet(ndim=2, depth=2, base_channels=4, residual=True, norm="none")
    x = torch.randn(1, 1, 8, 8)
    assert torch.equal(net(x), x)  # an untrained residual network is the identity
    nn.init.normal_(net.head.weight)
    assert not torch.equal(net(x), x)
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        UNet(ndim=2, out_channels=2, residual=True)


def test_bad_input_size_and_options_are_named():
    net = UNet(ndim=2, depth=3, base_channels=4)
    with pytest.raises(ValueError, match=r"divisible by \(4, 4\)"):
        net(torch.zeros(1, 1, 10, 8))
    with pytest.raises(ValueError, match="normalization"):
        UNet(norm="layer")
    with pytest.raises(ValueError, match="activation"):
        UNet(ndim=2, activation="swish")
    with pytest.raises(ValueError, match="pool lists 1 factors"):
        UNet(ndim=2, depth=3, pool=[(2, 2)])
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("huge")
    with pytest.raises(ValueError, match="invalid network config"):
        build_model({"arch": "unet", "ndim": 2, "widht": 3})


def test_space_to_depth_matches_pixel_unshuffle_and_inverts():
    x = torch.arange(2 * 3 * 4 * 6.0).reshape(2, 3, 4, 6)
    s2d = SpaceToDepth((2, 2))(x)
    assert torch.equal(s2d, nn.functional.pixel_unshuffle(x, 2))
    x3 = torch.randn(1, 2, 4, 6, 8)
    f = (2, 3, 2)
    y = SpaceToDepth(f)(x3)
    assert y.shape == (1, 2 * 12, 2, 2, 4)
    assert torch.equal(DepthToSpace(f)(y), x3)


def test_fast_3d_convs_equal_conv3d():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, 7)
    plane, axial = PlaneConv3d(3, 4, (3, 3)), AxialConv3d(3, 4, 3)
    ref_p = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
    ref_a = nn.Conv3d(3, 4, (3, 1, 1), padding=(1, 0, 0))
    with torch.no_grad():
        ref_p.weight.copy_(plane.conv.weight[:, :, None])
        ref_p.bias.copy_(plane.conv.bias)
        ref_a.weight.copy_(axial.conv.weight[..., None])
        ref_a.bias.copy_(axial.conv.bias)
        torch.testing.assert_close(plane(x), ref_p(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(axial(x), ref_a(x), atol=1e-5, rtol=1e-5)


def test_config_round_trip_rebuilds_identical_network():
    torch.manual_seed(0)
    net = build_model("fast", ndim=3, base_channels=4)
    twin = build_model(net.config)
    twin.load_state_dict(net.state_dict())
    assert twin.config == net.config
    x = torch.randn(1, 1, 8, 16, 16)
    net.eval(), twin.eval()
    with torch.no_grad():
        assert torch.equal(net(x), twin(x))
    import json

    assert json.loads(json.dumps(net.config)) == net.config  # JSON-able


def test_paper_preset_architecture():
    net = build_model("paper", ndim=2)
    assert PRESETS["paper"]["convs_per_block"] == 3
    assert len(net.encoders) == 7
    for block in list(net.encoders) + list(net.decoders):
        convs = [m for m in block if isinstance(m, nn.Conv2d)]
        assert len(convs) == 3
        assert sum(isinstance(m, nn.BatchNorm2d) for m in block) == 3
        assert sum(isinstance(m, nn.ReLU) for m in block) == 3


def test_count_parameters_by_hand():
    # depth 1: one block of one 3x3 conv 1->2 (no bias with batch norm: 18) + BN (4) + 1x1 head 2->1 (3)
    net = UNet(ndim=2, depth=1, base_channels=2, convs_per_block=1)
    assert count_parameters(net) == 18 + 4 + 3
    net.head.weight.requires_grad_(False)
    assert count_parameters(net) == 23 and count_parameters(net, trainable_only=False) == 25


def _grads(net, shape):
    torch.manual_seed(1)
    x = torch.randn(shape)
    # L1 against a noisy copy: at the identity this loss's gradient is the sign of the noise
    (net(x) - (x + 0.5 * torch.randn(shape))).abs().mean().backward()
    return {n: float(p.grad.abs().max()) for n, p in net.named_parameters()}


@pytest.mark.parametrize("ndim", [2, 3])
def test_restore_preset_trains_every_layer_and_has_no_running_statistics(ndim):
    # Regression: the shipped restorers were batch-norm + zero-initialized residual nets. Batch
    # norm's running statistics (4 small patches a step) made eval-mode predictions 1.5-2 dB
    # worse than train-mode ones, and the zero head starts at the identity, which no-norm nets
    # cannot leave at all (below). The "restore" preset has neither problem.
    torch.manual_seed(0)
    net = build_model("restore", ndim=ndim)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)) for m in net.modules())
    shape = (2, 1) + ((8, 16, 16) if ndim == 3 else (16, 16))
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(net.train()(x), net.eval()(x))  # no state that differs at prediction
    grads = _grads(net.train(), shape)
    assert min(grads.values()) > 0, [n for n, g in grads.items() if g == 0]


def test_zero_initialized_residual_without_norm_cannot_leave_the_identity():
    # why "restore" is not residual: with a zero head only the head gets a gradient at first
    torch.manual_seed(0)
    net = build_model("fast", ndim=2, norm="none")
    grads = _grads(net, (2, 1, 16, 16))
    assert grads["head.weight"] > 0
    assert all(g == 0 for n, g in grads.items() if not n.startswith("head."))


# ----------------------------------------------------------------------------- flood-filling network
def test_ffn_shapes_variants_and_identity_at_start():
    from mire.nets import build_ffn, count_parameters

    net = build_ffn("tiny")
    x, m = torch.rand(2, 1, 9, 9, 9), torch.randn(2, 1, 9, 9, 9)
    # the update head starts tiny: an untrained FFN returns (almost) the mask it is given
    assert torch.allclose(net(x, m), m, atol=0.05)
    flat = build_ffn("small", anisotropic=True, depth=4)
    kernels = [tuple(mod.conv.kernel_size) for blk in flat.blocks[:2] for mod in blk]
    assert kernels == [(3, 3)] * 4  # in-plane (1, 3, 3) convs run as 2D convs over the sections
    assert flat(torch.zeros(1, 1, 17, 17, 17), torch.zeros(1, 1, 17, 17, 17)).shape == (1, 1, 17, 17, 17)
    two = build_ffn("tiny", ndim=2, fov=[9, 9], kernel=3)
    assert two(torch.zeros(1, 1, 9, 9), torch.zeros(1, 1, 9, 9)).shape == (1, 1, 9, 9)
    # 2 stem convs + 2 per module, each 3x3x3 with bias, and the 1x1 head
    w = 8
    assert count_parameters(net) == (2 * 27 * w + w) + 3 * (w * 27 * w + w) + (w + 1)
    assert build_ffn(net.config).config == net.config


def test_ffn_config_errors():
    from mire.nets import build_ffn

    with pytest.raises(ValueError, match="odd"):
        build_ffn("tiny", fov=[8, 9, 9])
    with pytest.raises(ValueError, match="anisotropic"):
        build_ffn("tiny", ndim=2, fov=[9, 9], anisotropic=True)
    with pytest.raises(ValueError, match="not a flood-filling"):
        build_ffn({"arch": "unet"})
    with pytest.raises(ValueError, match="invalid FFN config"):
        build_ffn("tiny", colour="red")


# ---------------------------------------------------------------- residual levels, voxel spacing


@pytest.mark.parametrize("kw,shape,multiple", [
    (dict(ndim=2, depth=3, base_channels=4), (2, 1, 16, 24), (4, 4)),
    (dict(ndim=3, depth=3, base_channels=4, conv="factorized", stem=2), (1, 1, 8, 8, 16), (8, 8, 8)),
    # ssTEM-like spacing: Z never pooled at the first two levels, so the multiple along Z is 2
    (dict(ndim=3, depth=4, base_channels=4, spacing=(30, 6, 6)), (1, 1, 2, 16, 16), (2, 8, 8)),
])
def test_residual_unet_shapes(kw, shape, multiple):
    net = UNet(block="residual", **kw).eval()
    assert net.size_multiple == multiple
    assert all(isinstance(b, ResidualBlock) for b in list(net.encoders) + list(net.decoders))
    with torch.no_grad():
        assert net(torch.randn(shape)).shape == shape
    assert build_model(net.config).config == net.config


def _zero_branch(block):
    for m in block.branch.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.zeros_(m.weight)


@pytest.mark.parametrize("conv_kind", ["full", "factorized"])
def test_residual_block_with_a_zero_branch_is_its_skip_path(conv_kind):
    torch.manual_seed(0)
    same = ResidualBlock(4, 4, ndim=3, kernel=3, norm="batch", conv_kind=conv_kind).eval()
    x = torch.randn(1, 4, 4, 6, 6)
    with torch.no_grad():
        assert not torch.allclose(same(x.relu()), x.relu())  # random weights: a real branch
        _zero_branch(same)
        # identity skip: relu(0 + x) == x for the non-negative output of a previous block
        assert torch.equal(same(x.relu()), x.relu())
        wider = ResidualBlock(4, 6, ndim=3, kernel=(1, 3, 3), norm="none", conv_kind=conv_kind).eval()
        _zero_branch(wider)
        # norm="none": the last conv's bias is the only non-zero term left in the branch
        last = [m for m in wider.branch.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))][-1]
        nn.init.zeros_(last.bias)
        proj = wider.skip[0]  # channels change: a 1x1 projection, checked against its hand sum
        want = torch.einsum("oi,nizyx->nozyx", proj.weight[:, :, 0, 0, 0], x) + proj.bias.view(1, -1, 1, 1, 1)
        torch.testing.assert_close(wider(x), want.relu())


def test_anisotropic_layout_by_hand():
    # SNEMI3D-like 30x6x6 nm: Z is coarse until two in-plane poolings bring 6 to 24 (30 < 2 x 24)
    kernels, pools, stem = anisotropic_layout((30, 6, 6), kernel=(3, 3, 3), pools=[(2, 2, 2)] * 3, stem=(1, 1, 1))
    # steps: (30,6,6) coarse -> pool (1,2,2) -> (30,12,12) coarse -> (30,24,24) fine -> (60,48,48) fine
    assert kernels == [(1, 3, 3), (1, 3, 3), (3, 3, 3), (3, 3, 3)]
    assert pools == [(1, 2, 2), (1, 2, 2), (2, 2, 2)] and stem == (1, 1, 1)
    # the stem is a pooling too: (40, 4, 4) with a 2x stem -> Z kept, (40, 8, 8) still coarse
    kernels, pools, stem = anisotropic_layout((40, 4, 4), kernel=(3, 3, 3), pools=[(2, 2, 2)] * 2, stem=(2, 2, 2))
    assert stem == (1, 2, 2) and kernels == [(1, 3, 3), (1, 3, 3), (3, 3, 3)] and pools == [(1, 2, 2), (1, 2, 2)]
    # exactly 2x coarser counts as coarse; 1.9x does not
    one_pool = dict(kernel=(3, 3, 3), pools=[(2, 2, 2)], stem=(1, 1, 1))
    assert anisotropic_layout((2, 1, 1), **one_pool)[0] == [(1, 3, 3), (3, 3, 3)]
    assert anisotropic_layout((1.9, 1, 1), **one_pool)[0] == [(3, 3, 3)] * 2
    # 2D, coarse X (a line-scanned image): the rule is per axis, not "Z"
    assert anisotropic_layout((1, 3), kernel=(3, 3), pools=[(2, 2)], stem=(1, 1))[1] == [(2, 1)]
    with pytest.raises(ValueError, match="positive"):
        anisotropic_layout((0, 1, 1), kernel=(3, 3, 3), pools=[], stem=(1, 1, 1))
    with pytest.raises(ValueError, match="spacing has 2 values"):
        UNet(ndim=3, spacing=(1, 1))
    with pytest.raises(ValueError, match="unknown block"):
        UNet(ndim=2, block="dense")


def test_isotropic_spacing_is_the_plain_layout_and_anisotropic_nets_use_plane_convs():
    base = dict(ndim=3, depth=3, base_channels=4, conv="factorized", stem=2)
    plain, iso = UNet(**base), UNet(**base, spacing=(8, 8, 8))  # FIB-SEM: isotropic voxels
    assert iso.config["pool"] == plain.config["pool"] and iso.config["stem"] == plain.config["stem"]
    assert {k: v.shape for k, v in iso.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    aniso = UNet(**base, spacing=(30, 6, 6))
    # stem (1, 2, 2): steps (30, 12, 12), Z coarse; pool (1, 2, 2): (30, 24, 24), fine from level 1 on.
    # Level 0 is in-plane only: its convs are single PlaneConv3d (no axial part)
    assert aniso.level_kernels == [(1, 3, 3), (3, 3, 3), (3, 3, 3)]
    assert aniso.config["pool"] == [[1, 2, 2], [2, 2, 2]]
    assert isinstance(aniso.encoders[0][0], PlaneConv3d) and not isinstance(plain.encoders[0][0], PlaneConv3d)
    assert aniso.config["stem"] == [1, 2, 2] and aniso.config["spacing"] == [30.0, 6.0, 6.0]
    assert build_model(aniso.config).level_kernels == aniso.level_kernels


def test_a_few_residual_train_steps_lower_the_loss():
    torch.manual_seed(0)
    net = UNet(ndim=2, depth=2, base_channels=8, block="residual", norm="batch")
    x = torch.rand(4, 1, 16, 16)
    y = (x > 0.5).float()  # a threshold is learnable by any working net
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
