"""Feed-forward style nets after Johnson et al. (2016), with instance norm (Ulyanov et al.).

Input and output are RGB in [0, 1]. The net never scales its activations up to
0-255: instance norm after every conv makes the input scale irrelevant, and
small activations keep fp16 inference in range. Upsampling is nearest-neighbour
followed by a conv, because transposed convs leave checkerboard artefacts.

The lite net also has a colour skip. Its first layer has only 8 channels, and instance norm
there takes away each channel's mean, so without the skip the lite nets painted every photo in
one tint of the painting. The skip adds the photo's chroma (its colour minus its grey), blurred
over 5 x 5 pixels so that sensor noise does not pass, to the output through a learned 3x3
matrix (docs/training.md, "The lite nets' colour").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from realtime_style.padding import padded_side, reflect_index


@dataclass(frozen=True)
class NetConfig:
    channels: tuple[int, int, int] = (32, 64, 128)  # full, 1/2 and 1/4 resolution
    residual_blocks: int = 5
    color_skip: int = 0  # 0: none; n: the photo's colour, box-blurred over n x n pixels, added to the output

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> NetConfig:
        """From to_dict()'s output, as stored in checkpoints and models (older ones have no colour skip)."""
        return cls(channels=tuple(int(c) for c in config["channels"]),
                   residual_blocks=int(config["residual_blocks"]), color_skip=int(config.get("color_skip", 0)))


ARCHITECTURES: dict[str, NetConfig] = {
    # Johnson et al.'s net (with 5 residual blocks at 128 channels).
    "standard": NetConfig(channels=(32, 64, 128), residual_blocks=5),
    # Real time on a 2-core CPU: at 320x240 (the webcam's 640x480 at --scale 0.5) ONNX Runtime ran
    # it in 20 ms, against 46 ms for 16/32/64 and 191 ms for the standard net (bench/lite_arch.py).
    # With the colour skip, candy_lite followed the photo's hues about as closely as the standard net
    # (a*b* correlation with the photo 0.51, against 0.10 without and 0.54 for the standard net), for
    # the same objective. Unblurred, the skip let sensor noise through (docs/training.md). Six shipped
    # lite styles predate the skip (it cost them too much objective); their net_config has none.
    "lite": NetConfig(channels=(8, 16, 32), residual_blocks=3, color_skip=5),
}
# The skip's matrix starts at this times "chroma only": started at zero, it stayed near zero (the
# objective alone does not ask for the photo's colours); 0.5 kept fewer of the hues (correlation 0.41).
COLOR_SKIP_START = 0.75
COLOR_SKIP_START_RANGE = (0.0, 2.0)  # what --color-skip-start accepts (train.py, device_kit.py)



class ConvLayer(nn.Sequential):
    """Reflection-padded conv: no zero borders for the style to frame."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride))


class ConvNormReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(ConvLayer(in_ch, out_ch, kernel, stride),
                         nn.InstanceNorm2d(out_ch, affine=True, track_running_stats=False),
                         nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvNormReLU(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(self.conv1(x)))


class UpsampleConv(nn.Sequential):
    """Nearest x2 then conv, instead of a transposed conv."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvNormReLU(in_ch, out_ch, 3))


class TransformerNet(nn.Module):
    """Image -> stylized image, any H x W, RGB in [0, 1] both ways."""

    def __init__(self, config: NetConfig = ARCHITECTURES["standard"]):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.encoder = nn.Sequential(
            ConvNormReLU(3, c1, 9),
            ConvNormReLU(c1, c2, 3, stride=2),
            ConvNormReLU(c2, c3, 3, stride=2),
        )
        self.residuals = nn.Sequential(*[ResidualBlock(c3) for _ in range(config.residual_blocks)])
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2),
            UpsampleConv(c2, c1),
            ConvLayer(c1, 3, 9),
        )
        if config.color_skip:
            self.color_skip = nn.Conv2d(3, 3, 1)
            self.reset_color_skip(COLOR_SKIP_START)

    @torch.no_grad()
    def reset_color_skip(self, start: float) -> None:
        """Set the skip's matrix to start x "chroma only" (the photo's colour minus its grey)."""
        self.color_skip.weight.copy_((start * (torch.eye(3) - 1 / 3))[:, :, None, None])
        self.color_skip.bias.zero_()

    def unclamped(self, x: torch.Tensor) -> torch.Tensor:
        """The net's output before the clamp to [0, 1] (sides multiples of 4, at least 8)."""
        y = self.decoder(self.residuals(self.encoder(x)))
        if self.config.color_skip:
            y = y + self.color_skip(box_blur(x, self.config.color_skip))
        return y

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The net proper, for inputs whose sides are multiples of 4 and at least 8."""
        y = self.unclamped(x)
        if self.training:
            return ClampTowardRange.apply(y)
        return y.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = reflect_pad_to(x, padded_side(h), padded_side(w))
        y = self.body(padded)
        return y[..., :h, :w]


class ClampTowardRange(torch.autograd.Function):
    """Clamp to [0, 1] whose backward keeps only the gradients that lead back into the range.

    A plain clamp gives a pixel outside [0, 1] no gradient, so the loss could never pull it
    back. The straight-through clamp used until 2026-12-04 passed every gradient, also those
    pushing further out: a pixel the loss wants blacker than black was pushed at every step, for
    ever. Adam turns such steady pushes into steady weight drift: the shipped mosaic's pre-clamp
    output reached -462 (docs/training.md, "Out-of-range outputs").
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(y)
        return y.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        # Descent moves y by -grad: above 1 only a positive grad (down) leads back, below 0 a negative one.
        outward = ((y > 1.0) & (grad < 0)) | ((y < 0.0) & (grad > 0))
        return grad.masked_fill(outward, 0.0)


def box_blur(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over size x size pixels (odd size), same shape, reflected at the borders."""
    if size <= 1:
        return x
    return F.avg_pool2d(F.pad(x, (size // 2,) * 4, mode="reflect"), size, stride=1)


def reflect_pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad bottom/right by reflection up to (height, width), however small the input.

    ``F.pad(mode="reflect")`` needs the pad to be smaller than the side; a 1x1 or
    3x5 frame needs more, so reflect repeatedly by index (a 1-pixel side repeats).
    """
    h, w = x.shape[-2:]
    if h == height and w == width:
        return x
    if height - h < h and width - w < w:
        return F.pad(x, (0, width - w, 0, height - h), mode="reflect")
    rows = torch.from_numpy(reflect_index(h, height)).to(x.device)
    cols = torch.from_numpy(reflect_index(w, width)).to(x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def build_net(arch: str = "standard") -> TransformerNet:
    """A fresh, untrained net of the named architecture."""
    try:
        return TransformerNet(ARCHITECTURES[arch])
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}") from None
