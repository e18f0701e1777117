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

    The flow runs on the host (small, gray frames); the full-size warp, the repaint gate and
    the blend run on the host too, or with ``device`` (a torch device: the GPU the net runs
    on) there, where they cost a fraction of the host's 40 ms per 1920x1080 frame (docs/video.md).
    """

    def __init__(self, strength: float = DEFAULT_STRENGTH, flow_width: int = 320, tolerance: float = 12.0,
                 repaint_tolerance: float = 40.0, flow_preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                 warp_interpolation: int = cv2.INTER_CUBIC, device: str | None = None):
        if not 0.0 <= strength < 1.0:
            raise ValueError("stabilize strength must be in [0, 1)")
        self.strength = strength
        self.flow_width = flow_width
        self.tolerance = tolerance
        self.dis = dis_flow(flow_preset)  # medium: 3 ms at 320x180; ultrafast (0.5 ms) misaligned more
        # warp_interpolation: bicubic, because the previous output is resampled again every frame,
        # and bilinear's blur would add up.
        blend = _HostBlend if device is None else _TorchBlend
        self._blend = blend(repaint_tolerance, warp_interpolation, device)
        self._previous_input: np.ndarray | None = None   # small gray

    def reset(self) -> None:
        self._previous_input = None
        self._blend.previous = None

    def __call__(self, frame: np.ndarray, styled: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 input and its stylization -> the stabilized stylization."""
        return self.blend(styled, self.track(frame))

    def track(self, frame: np.ndarray) -> Motion:
        """The input half, from the input frames alone: `rtstyle video` runs it on the reader thread,
        ahead of the net, so the thread that runs the net only blends."""
        h, w = frame.shape[:2]
        scale = min(1.0, self.flow_width / w)
        small = gray(cv2.resize(frame, (max(8, round(w * scale)), max(8, round(h * scale))),
                                interpolation=cv2.INTER_AREA) if scale < 1 else frame)
        if max(small.shape) < _DIS_MIN_SIDE:
            return Motion(None, None, scale, usable=False)  # too small for DIS flow, and for flicker to show
        previous, self._previous_input = self._previous_input, small
        if previous is None or previous.shape != small.shape:
            return Motion(None, None, scale)
        back = flow_between(self.dis, small, previous)
        mismatch = np.abs(warp(previous, back).astype(np.float32) - small)
        return Motion(back, self.strength * np.exp(-(mismatch / self.tolerance) ** 2), scale)

    def blend(self, styled: np.ndarray, motion: Motion) -> np.ndarray:
        """The output half: the stylization of the frame ``motion`` was tracked on -> stabilized."""
        if not motion.usable:
            return styled
        steady = motion if motion.flow is not None and self._blend.holds(styled.shape) else None
        return self._blend(styled, steady)


@dataclass
class Motion:
    """What the stabilizer takes from one input frame, at flow size."""

    flow: np.ndarray | None    # (h, w, 2): from this frame back to the previous one; None: nothing to follow
    weight: np.ndarray | None  # (h, w): the strength, lowered where the inputs do not match along the flow
    scale: float               # flow size / frame size
    usable: bool = True        # False: the frame is too small to stabilize


class _HostBlend:
    """The stabilizer's full-size half with OpenCV: warp the previous output, gate, blend."""

    def __init__(self, repaint_tolerance: float, interpolation: int, device: None = None):
        self.repaint_tolerance = repaint_tolerance
        self.interpolation = interpolation
        self.previous: np.ndarray | None = None  # the last result, full size, float32

    def holds(self, shape: tuple[int, ...]) -> bool:
        return self.previous is not None and self.previous.shape == shape

    def __call__(self, styled: np.ndarray, motion: Motion | None) -> np.ndarray:
        """``motion``: None where there is nothing to blend from."""
        result = styled.astype(np.float32)
        if motion is not None:
            back, weight, scale = motion.flow, motion.weight, motion.scale
            h, w = styled.shape[:2]
            if scale < 1:
                back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) / scale
                weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
            moved = warp(self.previous, back, self.interpolation)
            repaint = cv2.transform(cv2.absdiff(moved, result), _RGB_MEAN).reshape(h, w)
            weight = weight * np.exp(-(repaint / self.repaint_tolerance) ** 2)  # not in place: motion's own
            result = cv2.blendLinear(result, moved, 1.0 - weight, weight)  # (1 - w) current + w moved
        self.previous = result
        return cv2.convertScaleAbs(result)  # round and saturate to uint8


class _TorchBlend:
    """The same steps with torch on a device, the previous output kept there.

    A frame crosses the bus twice as uint8 (the styled frame up, the result down), through
    pinned buffers allocated once per frame size; the flow and its weight go up at flow size.
    On the CPU it matches _HostBlend to within rounding (the test suite runs the stabilizer's
    tests on both).
    """

    _MODES = {cv2.INTER_CUBIC: "bicubic", cv2.INTER_LINEAR: "bilinear"}

    def __init__(self, repaint_tolerance: float, interpolation: int, device: str):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.repaint_tolerance = repaint_tolerance
        self.mode = self._MODES[interpolation]
        self.previous = None  # (1, 3, H, W) float32 on the device
        self._grid: tuple | None = None  # (H, W, pixel grid in grid_sample's [-1, 1], per-pixel scale)
        self._staging: tuple | None = None  # (frame shape, upload buffer, download buffer) on the host

    def holds(self, shape: tuple[int, ...]) -> bool:
        return self.previous is not None and tuple(self.previous.shape[2:]) == tuple(shape[:2])

    def __call__(self, styled: np.ndarray, motion: Motion | None) -> np.ndarray:
        torch = self.torch
        upload, download = self._host_buffers(styled.shape)
        np.copyto(upload.numpy(), styled)
        try:
            with torch.inference_mode():
                result = upload.to(self.device, non_blocking=True).permute(2, 0, 1)[None].float()
                if motion is not None:
                    result = self._blend_in(result, motion)
                self.previous = result
                download.copy_(result.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0), non_blocking=True)
        finally:  # the copies are asynchronous: done before the buffers are read or refilled, error or not
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
        return download.numpy().copy()

    def _blend_in(self, result, motion: Motion):
        """The warped previous output blended into ``result`` (1, 3, H, W), as _HostBlend does it."""
        torch = self.torch
        functional = torch.nn.functional
        h, w = result.shape[2:]
        back, weight = (torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in (motion.flow, motion.weight))
        back, weight = back.permute(2, 0, 1)[None], weight[None, None]
        if motion.scale < 1:  # bilinear with half-pixel centres, as cv2.resize
            back = functional.interpolate(back, size=(h, w), mode="bilinear", align_corners=False) / motion.scale
            weight = functional.interpolate(weight, size=(h, w), mode="bilinear", align_corners=False)
        base, per_pixel = self._pixel_grid(h, w)
        grid = base + back.permute(0, 2, 3, 1) * per_pixel
        # Border padding clamps each tap, as cv2.remap's BORDER_REPLICATE does; same cubic (a = -0.75).
        moved = functional.grid_sample(self.previous, grid, mode=self.mode, padding_mode="border", align_corners=True)
        repaint = (moved - result).abs().mean(1, keepdim=True)
        weight = weight * torch.exp(-(repaint / self.repaint_tolerance) ** 2)
        return result + weight * (moved - result)

    def _host_buffers(self, shape: tuple[int, ...]) -> tuple:
        if self._staging is None or self._staging[0] != shape:
            pinned = self.device.type == "cuda"
            self._staging = (shape, *(self.torch.empty(shape, dtype=self.torch.uint8, pin_memory=pinned)
                                      for _ in range(2)))
        return self._staging[1:]

    def _pixel_grid(self, h: int, w: int) -> tuple:
        """Every pixel's (x, y) in grid_sample's [-1, 1] (corners aligned), and pixels -> that unit; cached."""
        if self._grid is None or self._grid[:2] != (h, w):
            torch = self.torch
            per_pixel = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=self.device)
            ys, xs = torch.meshgrid(torch.arange(h, device=self.device, dtype=torch.float32),
                                    torch.arange(w, device=self.device, dtype=torch.float32), indexing="ij")
            base = torch.stack([xs, ys], -1)[None] * per_pixel - 1
            self._grid = (h, w, base, per_pixel)
        return self._grid[2:]
