"""Temporal stability: measuring flicker, and damping it at run time.

Both rest on optical flow between consecutive *input* frames (OpenCV's DIS flow):
where the scene moved by a flow, a steady stylization moves with it. NumPy and
OpenCV only, so the runtime can use it without torch.

- `warping_error`: warp the previous stylized frame along the flow onto the current
  one and measure what still differs, on pixels the flow can be trusted for (a
  forward-backward consistency check drops occlusions and motion boundaries).
- `Stabilizer`: blend the warped previous output into the current one where the
  warped previous *input* matches the current input, so moving and uncovered
  regions are not blended (no ghost trails), and where the two outputs differ by
  jitter rather than by a repainted stroke (no smear).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def dis_flow(preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(preset)


def flow_between(dis: cv2.DISOpticalFlow, target_gray: np.ndarray, source_gray: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow such that target[y, x] ~ source[y + fy, x + fx]: where each target pixel came from."""
    return dis.calc(target_gray, source_gray, None)


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32 x, y of every pixel; cached: a video asks for the same size every frame."""
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Sample ``image`` at pixel + flow (bilinear unless told otherwise, edges replicated)."""
    h, w = flow.shape[:2]
    return cv2.remap(image, flow + _pixel_grid(h, w), None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def consistent(flow_back: np.ndarray, flow_fwd: np.ndarray) -> np.ndarray:
    """Pixels whose flow can be trusted (Sundaram et al. 2010, as used by Ruder et al. 2016).

    ``flow_back`` maps current -> previous, ``flow_fwd`` previous -> current. Following one
    and then the other must return to the start (else: occluded), and the flow must not
    change abruptly there (else: a motion boundary).
    """
    fwd_at_target = warp(flow_fwd, flow_back)
    round_trip = flow_back + fwd_at_target
    magnitude = (flow_back ** 2).sum(-1) + (fwd_at_target ** 2).sum(-1)
    occluded = (round_trip ** 2).sum(-1) > 0.01 * magnitude + 0.5
    du = np.gradient(flow_back[..., 0])
    dv = np.gradient(flow_back[..., 1])
    gradient = du[0] ** 2 + du[1] ** 2 + dv[0] ** 2 + dv[1] ** 2
    boundary = gradient > 0.01 * (flow_back ** 2).sum(-1) + 0.002
    return ~(occluded | boundary)


@dataclass
class WarpingError:
    output: float      # mean absolute difference (0-255 levels) of warped previous vs current output
    input: float       # the same measure on the input frames: the flow's own residual
    valid: float       # share of pixels the flow was trusted for
    pairs: int


def warping_error(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> WarpingError:
    """Mean warping error over consecutive frame pairs, on flow-consistent pixels only."""
    dis = dis_flow()
    errors_out, errors_in, valid = [], [], []
    for i in range(1, len(inputs)):
        previous, current = gray(inputs[i - 1]), gray(inputs[i])
        back = flow_between(dis, current, previous)
        fwd = flow_between(dis, previous, current)
        mask = consistent(back, fwd)
        if not mask.any():
            continue
        for frames, errors in ((outputs, errors_out), (inputs, errors_in)):
            moved = warp(frames[i - 1], back).astype(np.float32)
            diff = np.abs(moved - frames[i].astype(np.float32)).mean(-1)
            errors.append(float(diff[mask].mean()))
        valid.append(float(mask.mean()))
    if not errors_out:
        return WarpingError(0.0, 0.0, 0.0, 0)
    return WarpingError(float(np.mean(errors_out)), float(np.mean(errors_in)), float(np.mean(valid)),
                        len(errors_out))


_RGB_MEAN = np.full((1, 3), 1 / 3, np.float32)
_DIS_MIN_SIDE = 12  # OpenCV's DIS flow refuses images whose width and height are both smaller
DEFAULT_STRENGTH = 0.8  # `rtstyle video`'s default, and `--stabilize` without a value (docs/temporal.md)


class Stabilizer:
    """Flow-guided blending of the previous stylized frame into the current one.

    ``strength`` is the share of the warped previous output kept where the scene is
    steady (0 = off). The flow is computed at ``flow_width`` pixels wide and scaled up:
    a fraction of the net's cost. Two gates lower the weight, each as exp(-(d / tol)^2):

    - ``tolerance``: how much the warped previous *input* differs from the current input
      (occlusion, a cut, a fast change): no ghost trails;
    - ``repaint_tolerance``: how much the warped previous *output* differs from the current
      output (mean over RGB). Small differences are jitter, which the blend averages away;
      where the net painted a different stroke, averaging the two would only wash both out
      (a grey smear that costs style and does not remove the change), so the new one is kept.
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, flow_width: int = 320, tolerance: float = 12.0,
                 repaint_tolerance: float = 40.0, flow_preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                 warp_interpolation: int = cv2.INTER_CUBIC):
        if not 0.0 <= strength < 1.0:
            raise ValueError("stabilize strength must be in [0, 1)")
        self.strength = strength
        self.flow_width = flow_width
        self.tolerance = tolerance
        self.repaint_tolerance = repaint_tolerance
        # Bicubic: the previous output is resampled again every frame, and bilinear's blur would add up.
        self.warp_interpolation = warp_interpolation
        self.dis = dis_flow(flow_preset)  # medium: 3 ms at 320x180; ultrafast (0.5 ms) misaligned more
        self._previous_input: np.ndarray | None = None   # small gray
        self._previous_output: np.ndarray | None = None  # full size, float32

    def reset(self) -> None:
        self._previous_input = self._previous_output = None

    def __call__(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 input and its stylization -> the stabilized stylization."""
        h, w = frame.shape[:2]
        scale = min(1.0, self.flow_width / w)
        small = gray(cv2.resize(frame, (max(8, round(w * scale)), max(8, round(h * scale))),
                                interpolation=cv2.INTER_AREA) if scale < 1 else frame)
        if max(small.shape) < _DIS_MIN_SIDE:
            return styled  # too small for DIS flow, and for flicker to show
        result = styled.astype(np.float32)
        previous_input, previous_output = self._previous_input, self._previous_output
        if previous_input is not None and previous_input.shape == small.shape and previous_output.shape == result.shape:
            back = flow_between(self.dis, small, previous_input)
            mismatch = np.abs(warp(previous_input, back).astype(np.float32) - small)
            weight = self.strength * np.exp(-(mismatch / self.tolerance) ** 2)
            if scale < 1:
                back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) / scale
                weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
            moved = warp(previous_output, back, self.warp_interpolation)
            repaint = cv2.transform(cv2.absdiff(moved, result), _RGB_MEAN).reshape(h, w)
            weight *= np.exp(-(repaint / self.repaint_tolerance) ** 2)
            result = cv2.blendLinear(result, moved, 1.0 - weight, weight)  # (1 - w) current + w moved
        self._previous_input, self._previous_output = small, result
        return cv2.convertScaleAbs(result)  # round and saturate to uint8
