"""Training-time temporal stability, without video or optical flow.

A feed-forward net flickers because a small change of the input (a camera shake, sensor
noise) changes its strokes. The stability loss shows the net the same photo moved by a
small random motion (shift, rotation, zoom) with a little noise, and asks that stylizing
the moved photo equals moving the stylized photo: f(T(x) + n) ~ T(f(x)). The flow of T
is known exactly, so no flow estimation is needed and the net stays feed-forward.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

MAX_SHIFT = 0.03    # of the image side
MAX_ROTATION = 2.0  # degrees
MAX_ZOOM = 0.03     # relative
NOISE = 0.02        # std of Gaussian noise on [0, 1] pixels
PATCH = (0.1, 0.3)  # "local" mode: side of the pasted patch, as a fraction of the image side
MARGIN = 12         # "local" mode: pixels around the patch where the output may change


def random_motion(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(B, 2, 3) affine matrices for F.affine_grid: small shifts, rotations and zooms."""
    u = torch.rand(batch, 4, generator=generator) * 2 - 1
    angle = u[:, 0] * math.radians(MAX_ROTATION)
    zoom = 1 + u[:, 1] * MAX_ZOOM
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    shift = u[:, 2:] * 2 * MAX_SHIFT  # affine_grid coordinates span 2 per side
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    return theta.to(device)


def move(images: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images resampled by the motion, and a mask of the pixels that came from inside the frame."""
    grid = F.affine_grid(theta, list(images.shape), align_corners=False).to(images.dtype)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    inside = ((grid.abs() <= 1).all(-1, keepdim=True)).permute(0, 3, 1, 2).to(images.dtype)
    return moved, inside


MODES = ("motion", "noise", "local")


def paste_patch(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image with a square of another one pasted in, and a mask of the pixels away from it.

    A person walking through a still scene changes a small region; with instance norm, the whole
    frame's statistics change with it, and a net can repaint the whole frame (global flicker).
    """
    batch, _, height, width = images.shape
    u = torch.rand(batch, 3, generator=generator).to(images.device)
    side = (PATCH[0] + u[:, 0] * (PATCH[1] - PATCH[0])) * min(height, width)
    top, left = u[:, 1] * (height - side), u[:, 2] * (width - side)
    ys = torch.arange(height, device=images.device).view(1, height, 1)
    xs = torch.arange(width, device=images.device).view(1, 1, width)
    patch = ((ys >= top.view(-1, 1, 1)) & (ys < (top + side).view(-1, 1, 1))
             & (xs >= left.view(-1, 1, 1)) & (xs < (left + side).view(-1, 1, 1))).unsqueeze(1).to(images.dtype)
    donors = images.flip(-1).roll(1, 0)  # another photo, mirrored so that a batch of one still changes
    near = F.max_pool2d(patch, 2 * MARGIN + 1, stride=1, padding=MARGIN)
    return images * (1 - patch) + donors * patch, 1 - near


def stability_loss(net, images: torch.Tensor, output: torch.Tensor, generator: torch.Generator,
                   mode: str = "motion", images_used: int | None = None) -> torch.Tensor:
    """Mean squared difference between f(T(x) + noise) and T(f(x)) on the pixels T leaves comparable.

    T is a small motion ("motion"), nothing ("noise": f(x + noise) against f(x)), or a patch of
    another photo pasted in ("local": the output away from the patch must not change).
    ``images_used`` takes the term on the first N images of the batch only: its extra pass of the
    style net is most of its cost, and instance norm keeps the images independent.
    """
    if images_used is not None and images_used < images.shape[0]:
        images, output = images[:images_used], output[:images_used]
    if mode == "motion":
        theta = random_motion(images.shape[0], generator, images.device)
        moved_images, inside = move(images, theta)
        moved_output, _ = move(output, theta)
    elif mode == "noise":
        moved_images, moved_output, inside = images, output, torch.ones_like(images[:, :1])
    elif mode == "local":
        moved_images, inside = paste_patch(images, generator)
        moved_output = output
    else:
        raise ValueError(f"unknown stability mode {mode!r}; use one of {', '.join(MODES)}")
    noise = torch.randn(moved_images.shape, generator=generator).to(images.device) * NOISE
    restyled = net((moved_images + noise).clamp(0, 1))
    return ((restyled - moved_output).pow(2) * inside).sum() / (inside.sum() * images.shape[1]).clamp(min=1)
