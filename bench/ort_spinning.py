"""A/B of ONNX Runtime's thread spinning in `rtstyle video`: the net alone and end to end, each twice.

    python bench/ort_spinning.py models/mosaic_lite.onnx 640x480

The backend turns spinning off (realtime_style/backends.py); this replaces the engine's session
with one per setting, so both run in the same process on the same clip (100 frames, x264 veryfast).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from realtime_style.backends import load_model_fp32
from realtime_style.benchmark import synthetic_clip, time_backend
from realtime_style.engine import StyleEngine
from realtime_style.video import VideoOptions, prepare_video, stylize_video


def main(model: str, size: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    width, height = map(int, size.split("x"))
    clip = synthetic_clip(tmp / "clip.mp4", width, height, 130)
    for spin in ("1", "0", "1", "0"):
        engine = StyleEngine(model, device="cpu")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        engine.backend.session = ort.InferenceSession(load_model_fp32(engine.path).SerializeToString(), options,
                                                      providers=["CPUExecutionProvider"])
        ms = float(np.median(time_backend(engine.backend, width, height, 15)))
        job = prepare_video(clip, tmp / "out.mp4", VideoOptions(duration=100 / 30, overwrite=True, preset="veryfast",
                                                                 stabilize=0.0))  # the pipeline alone
        report = stylize_video(job, engine, progress=False)
        video_fps = report.frames / report.seconds
        print(f"spinning {spin}: net alone {1000 / ms:.2f} fps, rtstyle video {video_fps:.2f} fps, "
              f"ratio {video_fps * ms / 1000:.0%}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
