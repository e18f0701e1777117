"""The perceptual loss: one definition shared by training and by the Gatys method.

Sharing it is what makes the Gatys optimisation a fair yardstick for the fast
nets: both minimise exactly the same objective, so their losses compare.

Conventions:
- Gram matrices are normalised by C*H*W, so style terms do not grow with image size.
- The style loss is a weighted sum over layers of the mean squared Gram difference.
- The content loss is the mean squared feature difference at one layer. The
  default, relu4_2 (Gatys et al.), is deep enough to hold the layout and the
  objects but loose about texture and colour, which is what the style replaces;
  shallower layers such as relu2_2 keep more fine detail and less style.
- Total variation is the mean squared difference of neighbouring pixels of the
  [0, 1] image; a small weight removes high-frequency speckle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from realtime_style.loss_weights import (  # noqa: F401  (re-exported: one place to import from)
    CONTENT_LAYER, CONTENT_WEIGHT, LOSS_VERSION, STYLE_LAYER_WEIGHTS, STYLE_WEIGHT, TV_WEIGHT, LossWeights)
from realtime_style.vgg import VGG19Features


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C*H*W; always in fp32.

    Autocast is switched off here: under bf16 autocast the matmul would run in bf16
    even on fp32 inputs (0.4 % error per entry), blurring the style loss's gradient.
    """
    b, c, h, w = features.shape
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = features.reshape(b, c, h * w).float()
        return flat @ flat.transpose(1, 2) / (c * h * w)


def style_loss(grams: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float]) -> torch.Tensor:
    """Weighted sum over layers of the mean squared Gram difference.

    ``targets`` may have batch size 1 and broadcast over the batch.
    """
    total = 0.0
    for layer, weight in layer_weights.items():
        target = targets[layer].expand_as(grams[layer])
        total = total + weight * F.mse_loss(grams[layer], target)
    return total


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features.float(), target.float())


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between vertically and horizontally adjacent pixels."""
    dh = image[..., 1:, :] - image[..., :-1, :]
    dw = image[..., :, 1:] - image[..., :, :-1]
    return dh.float().pow(2).mean() + dw.float().pow(2).mean()


@dataclass
class LossTerms:
    """Weighted terms; ``total`` is what gets minimised."""
    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.content + self.style + self.tv

    def as_floats(self) -> dict[str, float]:
        values = {"content": self.content, "style": self.style, "tv": self.tv}
        values = {name: float(value.detach()) for name, value in values.items()}
        values["total"] = values["content"] + values["style"] + values["tv"]
        return values


class PerceptualLoss(nn.Module):
    """Content + style + TV objective of Gatys et al., over a frozen VGG19."""

    def __init__(self, vgg: VGG19Features, weights: LossWeights | None = None):
        super().__init__()
        self.vgg = vgg
        self.weights = weights or LossWeights()
        self.layers = tuple(self.weights.style_layers) + (self.weights.content_layer,)

    @torch.no_grad()
    def style_targets(self, style_image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gram matrices of the style image: computed once, reused every step."""
        features = self.vgg(style_image, self.weights.style_layers)
        return {layer: gram_matrix(f) for layer, f in features.items()}

    @torch.no_grad()
    def content_targets(self, content_image: torch.Tensor) -> torch.Tensor:
        return self.vgg(content_image, [self.weights.content_layer])[self.weights.content_layer]

    def forward(self, output: torch.Tensor, content_target: torch.Tensor,
                style_grams: Mapping[str, torch.Tensor]) -> LossTerms:
        features = self.vgg(output, self.layers)
        grams = {layer: gram_matrix(features[layer]) for layer in self.weights.style_layers}
        w = self.weights
        return LossTerms(
            content=w.content * content_loss(features[w.content_layer], content_target),
            style=w.style * style_loss(grams, style_grams, w.style_layers),
            tv=w.tv * tv_loss(output),
        )
