"""VGG19 conv stack up to relu5_1 with the original Caffe weights, for perceptual losses.

Takes RGB in [0, 1] like every other net here and converts to what the Caffe
weights expect (BGR, 0-255, ImageNet mean subtracted) inside forward, so callers
never handle the convention.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from realtime_style.weights import CONV_LAYERS, load_converted, vgg19_weights

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Layer names in forward order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...
LAYER_NAMES: tuple[str, ...] = tuple(
    name
    for index, (block, conv) in enumerate(CONV_LAYERS)
    for name in ((f"conv{block}_{conv}", f"relu{block}_{conv}")
                 + ((f"pool{block}",) if index + 1 < len(CONV_LAYERS)
                    and CONV_LAYERS[index + 1][0] != block else ()))
)


class VGG19Features(nn.Module):
    """Returns the activations of the requested layers, running no further than the deepest one."""

    def __init__(self, pooling: str = "max"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError("pooling must be 'max' or 'avg'")
        self.pooling = pooling
        self.convs = nn.ModuleDict({f"conv{b}_{c}": nn.Conv2d(3 if (b, c) == (1, 1) else _in(b, c),
                                                               _out(b), 3, padding=1)
                                    for b, c in CONV_LAYERS})
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(layers)
        unknown = wanted - set(LAYER_NAMES)
        if unknown:
            raise ValueError(f"unknown VGG19 layers {sorted(unknown)}; known: {', '.join(LAYER_NAMES)}")
        x = rgb.flip(1) * 255.0 - self.mean_bgr.to(rgb.dtype)
        features = {}
        for name in LAYER_NAMES:
            if not wanted - features.keys():
                break
            if name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            elif self.pooling == "max":
                x = F.max_pool2d(x, 2, ceil_mode=True)
            else:
                x = F.avg_pool2d(x, 2, ceil_mode=True)
            if name in wanted:
                features[name] = x
        return features


def _out(block: int) -> int:
    return (64, 128, 256, 512, 512)[block - 1]


def _in(block: int, conv: int) -> int:
    return _out(block) if conv > 1 else _out(block - 1)


def load_vgg19(path: str | os.PathLike | None = None, device: torch.device | str = "cpu",
               pooling: str = "max") -> VGG19Features:
    """VGG19 features with verified Caffe weights (fetched on first use, then cached)."""
    tensors = load_converted(vgg19_weights(path))
    vgg = VGG19Features(pooling)
    state = {}
    for key, array in tensors.items():
        conv, param = key.split(".")
        state[f"convs.{conv}.{param}"] = torch.from_numpy(array).float()  # the float16 copy too
    vgg.load_state_dict(state)
    return vgg.to(device)
