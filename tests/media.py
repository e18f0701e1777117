"""Real media files for the tests, written with PyAV: small, fast, and with known content."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def test_pattern(width: int, height: int, index: int = 0) -> np.ndarray:
    """An asymmetric RGB frame: red left third, blue top-right, a moving gray bar, a gradient."""
    y, x = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 1] = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    frame[:, : width // 3, 0] = 230
    frame[: height // 2, 2 * width // 3:, 2] = 230
    bar = (index * 3) % width
    frame[:, bar: bar + 4] = 128
    return frame


def make_clip(path: Path, frames: int = 12, size: tuple[int, int] = (96, 64), fps: int = 24,
              audio: str | None = "aac", frame_times: list[float] | None = None, rotation: int = 0,
              video: bool = True, codec: str = "libx264", pictures: list[np.ndarray] | None = None,
              matrix: int | None = None, tag_matrix: bool = False) -> Path:
    """Write a clip; ``frame_times`` (seconds) makes it variable-frame-rate, ``rotation`` sets a display matrix,
    ``pictures`` (RGB, one per frame) replace the moving test pattern, ``matrix`` (an AVColorSpace: 1 BT.709,
    5 or 6 BT.601) is the YUV matrix the pixels are written in (default: FFmpeg's, BT.601), and
    ``tag_matrix`` says so in the stream.

    Audio is a 440 Hz tone as long as the video.
    """
    width, height = size
    times = frame_times or [i / fps for i in range(len(pictures) if pictures else frames)]
    duration = (times[-1] + 1 / fps) if times else frames / fps
    with av.open(str(path), "w") as container:
        v = None
        if video:
            v = container.add_stream(codec, rate=fps)
            v.width, v.height, v.pix_fmt = width, height, "yuv420p"
            v.time_base = Fraction(1, 90000)
            v.codec_context.time_base = Fraction(1, 90000)
            if rotation:
                v.set_display_rotation(rotation)
            if tag_matrix:
                v.codec_context.colorspace, v.codec_context.color_range = matrix, 1
        a = None
        if audio:
            rate = 48000 if audio == "libopus" else 44100
            a = container.add_stream(audio, rate=rate)
            a.layout = "stereo"
        if v is not None:
            for index, t in enumerate(times):
                picture = pictures[index] if pictures else test_pattern(width, height, index)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                if matrix is not None:
                    frame = frame.reformat(format="yuv420p", dst_colorspace=1 if matrix == 1 else 5, dst_color_range=1)
                frame.pts, frame.time_base = round(t * 90000), Fraction(1, 90000)
                container.mux(v.encode(frame))
            container.mux(v.encode(None))
        if a is not None:
            samples = int(duration * a.rate)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / a.rate)).astype(np.float32)
            chunk = 1024
            for start in range(0, samples, chunk):
                part = np.ascontiguousarray(np.stack([tone[start:start + chunk]] * 2))
                frame = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
                frame.sample_rate = a.rate
                frame.pts = start
                frame.time_base = Fraction(1, a.rate)
                container.mux(a.encode(frame))
            container.mux(a.encode(None))
    return path


def read_video(path: Path) -> tuple[list[float], list[np.ndarray]]:
    """Frame times (seconds) and RGB frames of the first video stream, as a player would show them."""
    times, frames = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            times.append(float(frame.time))
            frames.append(frame.to_ndarray(format="rgb24"))
    return times, frames


LUMA_WEIGHTS = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114)}  # AVColorSpace -> (Kr, Kb)


def yuv_to_rgb(frame: av.VideoFrame, matrix: int) -> np.ndarray:
    """A limited-range 4:2:0 frame's RGB (float) in a given YUV matrix, from the formula, not FFmpeg."""
    kr, kb = LUMA_WEIGHTS[matrix]
    h, w = frame.height, frame.width
    planes = frame.to_ndarray().astype(np.float64)  # Y, then U and V at half size, stacked
    y = (planes[:h] - 16) * 255 / 219
    u, v = (planes[h:].reshape(2, h // 2, w // 2).repeat(2, 1).repeat(2, 2) - 128) * 255 / 224
    r, b = y + 2 * (1 - kr) * v, y + 2 * (1 - kb) * u
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], -1), 0, 255)


def stream_seconds(path: Path, kind: str) -> list[float]:
    """The duration of each stream of a kind ("video" or "audio"), from decoded frames."""
    seconds = []
    with av.open(str(path)) as container:
        for stream in [s for s in container.streams if s.type == kind]:
            end, first = 0.0, None
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time)
                step = (frame.samples / frame.sample_rate) if kind == "audio" else 0.0
                end = max(end, float(frame.time) + step)
            container.seek(0)
            seconds.append(end - (first or 0.0))
    return seconds
