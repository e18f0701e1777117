"""A/B of `rtstyle video` with one frame at a time and with several in flight, each twice.

    python bench/frames_in_flight.py models/mosaic_lite.onnx 640x480

`StyleEngine.stylize_stream` runs one frame per core on the CPU; an engine given an explicit
thread count keeps to one frame on all its threads, which is the old path. Both run in the same
process on the same clip (100 frames, x264 veryfast), alternating, so drift of the machine shows.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from realtime_style.benchmark import synthetic_clip, time_backend
from realtime_style.engine import StyleEngine
from realtime_style.video import VideoOptions, prepare_video, stylize_video


def main(model: str, size: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    width, height = map(int, size.split("x"))
    clip = synthetic_clip(tmp / "clip.mp4", width, height, 130)
    cores = os.cpu_count() or 1
    for threads in (cores, None, cores, None):  # an explicit count: one frame at a time
        engine = StyleEngine(model, device="cpu", threads=threads)
        ms = float(np.median(time_backend(engine.backend, width, height, 10)))
        job = prepare_video(clip, tmp / "out.mp4", VideoOptions(duration=100 / 30, overwrite=True, preset="veryfast",
                                                                 stabilize=0.0))  # the pipeline alone
        report = stylize_video(job, engine, progress=False)
        video_fps = report.frames / report.seconds
        label = "one frame at a time" if threads else f"{engine.frames_in_flight(width, height)} frames in flight"
        print(f"{label}: net alone {1000 / ms:.2f} fps, rtstyle video {video_fps:.2f} fps, "
              f"ratio to the net alone {video_fps * ms / 1000:.0%}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
