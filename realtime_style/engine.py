"""The one engine: a style model that turns RGB uint8 frames into stylized ones.

`rtstyle image`, `rtstyle video` and the webcam loop all go through
`StyleEngine.stylize`. The engine owns everything between the pixels and the
net: the processing resolution, padding to the net's multiple of 4, strength,
colour preservation, and tiling of frames too large for memory. The backend
(`realtime_style.backends`) only runs the net on a padded float batch.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from realtime_style.backends import Backend, OrtCpuBackend, TorchBackend, open_backend
from realtime_style.color import keep_colors
from realtime_style.errors import UserError
from realtime_style.padding import MIN_SIDE, MULTIPLE, padded_side, reflect_index
from realtime_style.styles import read_metadata, resolve_style

TILE_OVERLAP = 64  # pixels of overlap between tiles, at processing resolution, blended linearly
# Working memory allowed per processed pixel per first-layer channel: an estimate (fp32 activations,
# a few live at once), not a calibration. With it, a 3840x2160 image peaked at 2.25 GB RSS under the
# default 1.5 GB budget (docs/performance.md): the budget bounds the tiles, not the whole process.
BYTES_PER_PIXEL_CHANNEL = 24
DEFAULT_MEMORY_BUDGET = 1.5e9
# On a GPU the activations are fp16 and in the card's memory: a 1920x1080 frame of the standard
# net runs whole (the CPU budget would cut it into two tiles), a 3840x2160 one in two. A card with
# less than twice that free gets half of what is free (see gpu_memory_budget).
GPU_MEMORY_BUDGET = 4e9
# Frames a CPU engine stylizes at once in `stylize_stream`, each on its own share of the cores.
MAX_FRAMES_IN_FLIGHT = 4
# The contrast gate: luma standard deviation (levels, on a thumbnail) below which a frame passes through
# unstyled, and above which it gets the net's full output; linear between (docs/temporal.md).
FLAT_CONTRAST = (2.0, 10.0)
_THUMBNAIL_SIDE = 128


@dataclass
class StyleControls:
    """What every command lets the user set; can change between frames (the webcam does)."""

    strength: float = 1.0          # 0 = the input, 1 = the net's output
    preserve_color: bool = False   # style in luminance only, colours from the input
    scale: float | None = None     # processing resolution relative to the input ...
    max_size: int | None = None    # ... or as a cap on the long side (whichever is smaller)
    contrast_gate: bool = True     # fade the style out on frames too flat to paint (see contrast_weight)

    def check(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise UserError(f"--strength must be between 0 and 1, not {self.strength}")
        if self.scale is not None and not 0.0 < self.scale <= 4.0:
            raise UserError(f"--scale must be above 0 and at most 4, not {self.scale}")
        if self.max_size is not None and self.max_size < MIN_SIDE:
            raise UserError(f"--max-size must be at least {MIN_SIDE} pixels, not {self.max_size}")

    def processing_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) at which the net sees a frame of this size."""
        factor = self.scale if self.scale is not None else 1.0
        if self.max_size is not None:
            factor = min(factor, self.max_size / max(width, height))
        if factor == 1.0:
            return width, height
        return max(1, round(width * factor)), max(1, round(height * factor))


class StyleEngine:
    """A loaded style model plus the controls; call `stylize` per frame."""

    def __init__(self, style: str | os.PathLike, device: str = "auto", backend: str = "auto",
                 controls: StyleControls | None = None, memory_budget: float | None = None,
                 threads: int | None = None, warmup: bool = True):
        self.controls = controls or StyleControls()
        self.controls.check()
        self._settings = {"device": device, "backend": backend, "memory_budget": memory_budget, "threads": threads}
        self.path = resolve_style(str(style))
        self.metadata = read_metadata(self.path)
        self.name = self.metadata.get("name", self.path.stem)
        self.display_name = self.metadata.get("display_name", self.name)
        self.backend: Backend = open_backend(self.path, device=device, backend=backend, threads=threads)
        if memory_budget is None:
            on_gpu = getattr(self.backend, "on_gpu", False)
            memory_budget = gpu_memory_budget(self.backend.free_memory()) if on_gpu else DEFAULT_MEMORY_BUDGET
            self._settings["memory_budget"] = memory_budget
        first_channels = _first_layer_channels(self.metadata)
        self.max_tile_pixels = int(memory_budget / (BYTES_PER_PIXEL_CHANNEL * first_channels))
        self._streams: dict[int, StyleEngine] = {}  # by frames in flight, for stylize_stream
        if warmup:
            self.backend.run(np.zeros((1, 3, 64, 64), np.float32))

    @property
    def blend_device(self) -> str | None:
        """The torch device beside the net (the torch backend's GPU), where the stabilizer can blend; else None."""
        if getattr(self.backend, "on_gpu", False) and isinstance(self.backend, TorchBackend):
            return str(self.backend.device)
        return None

    def sibling(self, style: str | os.PathLike) -> StyleEngine:
        """Another style on the same device and backend, sharing these controls (the webcam's style keys)."""
        return StyleEngine(style, controls=self.controls, **self._settings)

    def __repr__(self) -> str:
        return f"StyleEngine({self.name!r}, backend={self.backend.description})"

    def stylize_stream(self, tagged_frames: Iterable[tuple[np.ndarray, Any]]
                       ) -> Iterator[tuple[np.ndarray, Any, np.ndarray]]:
        """(frame, tag) pairs -> (frame, tag, stylized) in the same order: for video files.

        On the CPU, several frames run at once, each on fewer threads. One frame on all cores
        stalls whenever the decoder or encoder takes a core, since every parallel section waits
        for its slowest thread; independent frames do not wait for each other. On 2 cores with
        the lite net, `rtstyle video` runs at 89-96 % of the net's own speed (docs/performance.md).
        Latency grows, so the webcam keeps to `stylize`.
        """
        tagged_frames = iter(tagged_frames)
        first = next(tagged_frames, None)
        if first is None:
            return
        height, width = np.shape(first[0])[:2]
        in_flight, engine = self._stream_engine(width, height)
        tagged_frames = itertools.chain([first], tagged_frames)
        if in_flight == 1:
            for frame, tag in tagged_frames:
                yield frame, tag, engine.stylize(frame)
            return
        pending: collections.deque = collections.deque()
        with ThreadPoolExecutor(in_flight, thread_name_prefix="rtstyle-engine") as pool:
            for frame, tag in tagged_frames:
                pending.append((frame, tag, pool.submit(engine.stylize, frame)))
                if len(pending) >= in_flight:
                    frame, tag, result = pending.popleft()
                    yield frame, tag, result.result()
            while pending:
                frame, tag, result = pending.popleft()
                yield frame, tag, result.result()

    def frames_in_flight(self, width: int, height: int) -> int:
        """How many frames of this size `stylize_stream` runs at once."""
        return self._stream_engine(width, height)[0]

    def _stream_engine(self, width: int, height: int) -> tuple[int, StyleEngine]:
        """How many frames at once, and the engine that runs them (one session, fewer threads each).

        Only as many as fit the memory budget untiled: a standard net's 1080p frame is tiled on
        its own already, and two of them on one thread each ran 2.5x slower than one on both.
        """
        cores = os.cpu_count() or 1
        work_w, work_h = self.controls.processing_size(width, height)
        in_flight = min(cores, MAX_FRAMES_IN_FLIGHT, self.max_tile_pixels // max(1, work_w * work_h))
        if in_flight < 2 or not isinstance(self.backend, OrtCpuBackend) or self._settings["threads"]:
            return 1, self
        if in_flight not in self._streams:
            settings = {**self._settings, "threads": max(1, cores // in_flight),
                        "memory_budget": self._settings["memory_budget"] / in_flight}
            self._streams[in_flight] = StyleEngine(self.path, controls=self.controls, warmup=False, **settings)
        return in_flight, self._streams[in_flight]

    def stylize(self, frame: np.ndarray, controls: StyleControls | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> stylized (H, W, 3) uint8 RGB of the same size."""
        return self.stylize_batch(frame[None], controls)[0]

    def stylize_batch(self, frames: np.ndarray, controls: StyleControls | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> (N, H, W, 3) uint8, frames of one size run as one batch."""
        controls = controls or self.controls
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"stylize wants (N, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
        height, width = frames.shape[1:3]
        weights = np.full(len(frames), controls.strength, np.float32)
        if controls.contrast_gate:
            weights *= [contrast_weight(frame) for frame in frames]
        if not weights.any():
            return frames.copy()
        work_w, work_h = controls.processing_size(width, height)
        small = frames if (work_w, work_h) == (width, height) else np.stack(
            [cv2.resize(f, (work_w, work_h), interpolation=cv2.INTER_AREA) for f in frames])
        fused = getattr(self.backend, "stylize_frames", None)
        if (fused and not controls.preserve_color and work_w * work_h <= self.max_tile_pixels
                and work_w <= width and work_h <= height and min(work_w, work_h) > MULTIPLE):
            # The same steps on the backend's device, the enlargement back to the frame's size too.
            return fused(frames, weights, None if small is frames else small)
        if work_w * work_h > self.max_tile_pixels:
            styled = np.stack([self._run_tiled(f) for f in small])
        else:
            styled = self._run_padded(small)
        if (work_w, work_h) != (width, height):
            styled = np.stack([upsample(out, width, height) for out in styled])
        return self._finish(styled, frames, controls.preserve_color, weights)

    # The net sees float32 NCHW in [0, 1], padded by reflection to a multiple of 4.
    def _run_padded(self, frames: np.ndarray) -> np.ndarray:
        """(N, h, w, 3) uint8 -> (N, h, w, 3) float32 in [0, 1]."""
        h, w = frames.shape[1:3]
        ph, pw = padded_side(h), padded_side(w)
        if (ph, pw) != (h, w):
            frames = np.stack([_reflect_pad(f, ph, pw) for f in frames])
        batch = frames.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255)
        out = self.backend.run(batch)
        return out[:, :, :h, :w].transpose(0, 2, 3, 1)

    def _run_tiled(self, frame: np.ndarray) -> np.ndarray:
        """One frame too large for the memory budget, in overlapping tiles blended linearly.

        Instance norm normalises each tile by its own statistics, so neighbouring tiles
        can differ slightly in tone; the wide linear cross-fade keeps that from showing
        as a seam (measured against the untiled output in the tests).
        """
        h, w = frame.shape[:2]
        side = int(math.sqrt(self.max_tile_pixels)) // MULTIPLE * MULTIPLE
        side = max(side, 4 * TILE_OVERLAP)
        out = np.zeros((h, w, 3), np.float32)
        weight = np.zeros((h, w, 1), np.float32)
        for y0, y1 in _tile_spans(h, side):
            for x0, x1 in _tile_spans(w, side):
                tile = self._run_padded(frame[None, y0:y1, x0:x1])[0]
                ramp = _ramp(y1 - y0, y0 > 0, y1 < h)[:, None] * _ramp(x1 - x0, x0 > 0, x1 < w)[None, :]
                out[y0:y1, x0:x1] += tile * ramp[:, :, None]
                weight[y0:y1, x0:x1] += ramp[:, :, None]
        return out / weight

    @staticmethod
    def _finish(styled: np.ndarray, frames: np.ndarray, preserve_color: bool, weights: np.ndarray) -> np.ndarray:
        """Colour preservation, then each frame's blend with its input by its weight (strength x gate)."""
        blend = bool((weights < 1.0).any())
        if preserve_color or blend:
            original = frames.astype(np.float32) * np.float32(1 / 255)
            if preserve_color:
                styled = keep_colors(styled, original)
            if blend:
                styled = original + weights[:, None, None, None] * (styled - original)
        return np.clip(styled * 255.0 + 0.5, 0, 255).astype(np.uint8)


def contrast_weight(frame: np.ndarray) -> float:
    """How much of the net's output a frame gets: 0 for a flat frame, 1 for any ordinary one.

    Instance norm divides every feature map by its spread, so a net paints a near-black frame
    (a fade from black, a covered lens) or a blank wall as brightly as a photo, out of nothing but
    sensor and codec noise: a different picture each frame, flashing. The noise a net passes on
    grows as the frame's contrast falls (docs/temporal.md), so the style fades out with it, and
    a black frame stays black. All 24 Kodak photos, and all but 3 of the 2,500 training photos,
    are above the ramp.
    """
    low, high = FLAT_CONTRAST
    return min(1.0, max(0.0, (frame_contrast(frame) - low) / (high - low)))


def frame_contrast(frame: np.ndarray) -> float:
    """Standard deviation of the luma (0-255 levels) of a 128-px thumbnail: the picture's spread, not its noise's."""
    h, w = frame.shape[:2]
    factor = _THUMBNAIL_SIDE / max(h, w)
    if factor < 0.5:  # a nearest-neighbour pick first: reading a whole 1080p frame would cost 1.6 ms, this 0.05
        frame = cv2.resize(frame, (max(1, round(2 * w * factor)), max(1, round(2 * h * factor))),
                           interpolation=cv2.INTER_NEAREST)
    if factor < 1.0:
        frame = cv2.resize(frame, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return float(cv2.meanStdDev(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))[1][0, 0])


def upsample(styled: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bring a stylization made at another resolution to the frame's size.

    Bicubic, so the strokes simply get bigger. An edge-aware (guided) upsampling from the frame
    was the default until the trained mosaic nets: it rebuilt the photo's edges but erased the
    painted lines, and scored worse than bicubic on the nets' own objective (docs/performance.md).
    """
    shrinking = styled.shape[0] > height
    resized = cv2.resize(styled, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return np.clip(resized, 0.0, 1.0, out=resized)


def _reflect_pad(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad bottom/right as the net was trained (torch "reflect" = OpenCV REFLECT_101)."""
    h, w = frame.shape[:2]
    if height - h < h and width - w < w:
        return cv2.copyMakeBorder(frame, 0, height - h, 0, width - w, cv2.BORDER_REFLECT_101)
    return frame[reflect_index(h, height)][:, reflect_index(w, width)]


def _tile_spans(length: int, side: int) -> list[tuple[int, int]]:
    """Start/stop pairs of tiles of at most ``side`` that cover ``length`` with TILE_OVERLAP overlap."""
    if length <= side:
        return [(0, length)]
    count = math.ceil((length - TILE_OVERLAP) / (side - TILE_OVERLAP))
    step = (length - side) / (count - 1)
    starts = [round(i * step) for i in range(count)]
    return [(s, s + side) for s in starts]


def _ramp(length: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """Blend weights along one axis of a tile: linear over the overlap, 1 elsewhere."""
    ramp = np.ones(length, np.float32)
    edge = np.linspace(0.0, 1.0, TILE_OVERLAP + 2, dtype=np.float32)[1:-1]
    if fade_in:
        ramp[:TILE_OVERLAP] = edge
    if fade_out:
        ramp[-TILE_OVERLAP:] = np.minimum(ramp[-TILE_OVERLAP:], edge[::-1])
    return ramp


def gpu_memory_budget(free_bytes: int | None) -> float:
    """The tiling budget on a GPU: GPU_MEMORY_BUDGET, or half the card's free memory where that is less.

    Half, because the card is shared: a game, OBS's encoder or a second rtstyle may want the rest,
    and cuDNN's workspace comes on top of the activations. Unknown free memory gets the fixed budget.
    """
    if free_bytes is None:
        return GPU_MEMORY_BUDGET
    return min(GPU_MEMORY_BUDGET, free_bytes / 2)


def _first_layer_channels(metadata: dict[str, str]) -> int:
    import json

    try:
        return int(json.loads(metadata["net_config"])["channels"][0])
    except (KeyError, ValueError, TypeError, IndexError):
        return 32

