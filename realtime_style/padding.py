"""The frame geometry the style nets need, shared by training (torch) and the runtime (NumPy).

The net halves the resolution twice, so sides must be multiples of 4, and every
feature map must stay larger than its reflection padding (4 px around the 9x9
convs at full resolution, 1 px around the 3x3 convs at 1/4 resolution).
"""

from __future__ import annotations

import numpy as np

MULTIPLE = 4
MIN_SIDE = 8


def padded_side(side: int) -> int:
    """The side a frame is reflect-padded to before the net: a multiple of 4, at least 8."""
    return max(MIN_SIDE, -(-side // MULTIPLE) * MULTIPLE)


def reflect_index(side: int, target: int) -> np.ndarray:
    """Indices that extend ``side`` pixels to ``target`` by reflection (as torch's "reflect"),
    repeating the reflection where the pad is longer than the side; a 1-pixel side repeats."""
    i = np.arange(target)
    if side == 1:
        return np.zeros_like(i)
    period = 2 * (side - 1)
    i = i % period
    return np.where(i < side, i, period - i)
