"""Networks shared by learned restoration and segmentation: U-Net and encoder-decoder, 2D and 3D.

Task-agnostic: any number of input/output channels, built from a plain dict config.

Examples
--------
>>> import torch
>>> from mire.nets import build_model, count_parameters
>>> net = build_model("fast", ndim=3)
>>> net(torch.zeros(1, 1, 8, 16, 16)).shape
torch.Size([1, 1, 8, 16, 16])
"""

from mire.nets.config import ARCHS, PRESETS, build_model, count_parameters
from mire.nets.ffn import FFN, FFN_PRESETS, build_ffn
from mire.nets.layers import DepthToSpace, SpaceToDepth
from mire.nets.unet import EncoderDecoder, UNet, transfer_body, transfer_output_channels

__all__ = ["UNet", "EncoderDecoder", "build_model", "count_parameters", "PRESETS", "ARCHS",
           "SpaceToDepth", "DepthToSpace", "FFN", "build_ffn", "FFN_PRESETS",
           "transfer_output_channels", "transfer_body"]
