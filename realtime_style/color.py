"""Colour preservation: style only in luminance, colours from the content.

Gatys et al. (2016, "Preserving Color in Neural Artistic Style Transfer")
transfer style on the luminance channel of YIQ and take I and Q from the
content image. NumPy only, so the ONNX runtime path can use it without torch.
"""

from __future__ import annotations

import numpy as np

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]], dtype=np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    """float (..., 3) RGB in [0, 1] -> YIQ."""
    return rgb @ _RGB_TO_YIQ.T


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    """YIQ -> float RGB, clipped to [0, 1]."""
    return np.clip(yiq @ _YIQ_TO_RGB.T, 0.0, 1.0)


def luminance_rgb(rgb: np.ndarray) -> np.ndarray:
    """The luminance of a float RGB image, repeated into three channels (a gray RGB image)."""
    y = rgb @ _RGB_TO_YIQ[0]
    return np.repeat(y[..., None], 3, axis=-1).astype(np.float32)


def match_luminance(style_rgb: np.ndarray, content_rgb: np.ndarray) -> np.ndarray:
    """Gray style image whose luminance mean and spread match the content's.

    Without this, a dark painting would darken every photo even with colour kept.
    """
    style_y = style_rgb @ _RGB_TO_YIQ[0]
    content_y = content_rgb @ _RGB_TO_YIQ[0]
    scale = content_y.std() / max(float(style_y.std()), 1e-6)
    matched = np.clip((style_y - style_y.mean()) * scale + content_y.mean(), 0.0, 1.0)
    return np.repeat(matched[..., None], 3, axis=-1).astype(np.float32)


def keep_colors(stylized_rgb: np.ndarray, content_rgb: np.ndarray) -> np.ndarray:
    """Luminance of the stylized image with the chrominance (I, Q) of the content."""
    yiq = rgb_to_yiq(content_rgb)
    yiq[..., 0] = stylized_rgb @ _RGB_TO_YIQ[0]
    return yiq_to_rgb(yiq).astype(np.float32)
