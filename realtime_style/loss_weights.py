"""Default weights of the perceptual loss, kept free of torch so the CLI can show them.

How they were chosen is in docs/gatys.md; what the terms mean is in losses.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONTENT_LAYER = "relu4_2"
# Per-layer weights that make each layer's term about 1 for a photo against a
# painting: the raw terms differ by four orders of magnitude between layers
# (geometric means over 4 Kodak photos x 5 styles at 256 px: relu1_1 3.6e2,
# relu2_1 3.4e4, relu3_1 3.0e4, relu4_1 1.3e6, relu5_1 2.8e2). Equal weights
# would leave the result to relu4_1 alone.
STYLE_LAYER_WEIGHTS = {"relu1_1": 3e-3, "relu2_1": 3e-5, "relu3_1": 3e-5, "relu4_1": 1e-6, "relu5_1": 3e-3}
# Overall weights, chosen by comparing Gatys stills (docs/gatys.md): with these,
# 200 L-BFGS iterations at 256 px cut the style term ~25x and keep the layout.
CONTENT_WEIGHT = 2e-6
STYLE_WEIGHT = 1.0
TV_WEIGHT = 1.0
LOSS_VERSION = "vgg19-caffe/gram-chw/mse/v1"  # recorded in models, so losses stay comparable


@dataclass
class LossWeights:
    """The weights of one objective; saved with every model so its losses can be recomputed."""

    content: float = CONTENT_WEIGHT
    style: float = STYLE_WEIGHT
    tv: float = TV_WEIGHT
    style_layers: dict[str, float] = field(default_factory=lambda: dict(STYLE_LAYER_WEIGHTS))
    content_layer: str = CONTENT_LAYER

    @classmethod
    def from_dict(cls, values: dict) -> LossWeights:
        """The inverse of to_dict: a model's "loss" metadata back into weights."""
        return cls(content=values["content"], style=values["style"], tv=values["tv"],
                   style_layers=dict(values["style_layers"]), content_layer=values["content_layer"])

    def to_dict(self) -> dict:
        return {"content": self.content, "style": self.style, "tv": self.tv,
                "style_layers": dict(self.style_layers), "content_layer": self.content_layer,
                "version": LOSS_VERSION}
