"""Model-only fps against end-to-end `rtstyle video` fps, per architecture and frame size.

    python bench/runtime.py                      # both architectures, 640x480 and 1280x720
    python bench/runtime.py --device cuda        # on a GPU machine

Model-only: the backend alone on a padded float batch (what the net costs). Engine: `StyleEngine.stylize`
on a uint8 frame (adds padding, conversion and the crop). End to end: `stylize_video` on a real clip of
that size (the shared video, or a synthetic clip), decode and encode included, with its audio. The ratio end-to-end / model-only says how well
decode, stylize and encode overlap. Architectures without a shipped model are timed with an untrained
net of that architecture (the weights do not change the cost).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime_style.benchmark import model_for, synthetic_clip
from realtime_style.engine import StyleEngine
from realtime_style.video import VideoOptions, prepare_video, stylize_video

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "video"
SIZES = {"640x480": (640, 480, "box.mp4"), "1280x720": (1280, 720, "bigbuckbunny.mp4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["standard", "lite"])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=40, help="frames of video per end-to-end run")
    parser.add_argument("--repeats", type=int, default=10, help="timed model-only runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        print("| arch | size | backend | model-only fps | engine fps | `rtstyle video` fps | end-to-end / model |")
        print("|---|---|---|---:|---:|---:|---:|")
        for arch in args.archs:
            model = model_for(arch, Path(tmp))
            engine = StyleEngine(model, device=args.device)
            for size in args.sizes:
                width, height, video = SIZES[size]
                frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
                batch = frame.transpose(2, 0, 1)[None].astype(np.float32) / 255
                model_fps = 1 / median_seconds(lambda: engine.backend.run(batch), args.repeats)
                engine_fps = 1 / median_seconds(lambda: engine.stylize(frame), args.repeats)
                clip = VIDEOS / video if (VIDEOS / video).exists() else synthetic_clip(
                    Path(tmp) / f"clip_{size}.mp4", width, height, args.frames + 10)
                out = Path(tmp) / f"out_{arch}_{size}.mp4"
                job = prepare_video(clip, out, VideoOptions(duration=args.frames / 25, overwrite=True, stabilize=0.0))
                report = stylize_video(job, engine, progress=False)
                video_fps = report.frames / report.seconds
                print(f"| {arch} | {size} | {engine.backend.description} | {model_fps:.2f} | {engine_fps:.2f} | "
                      f"{video_fps:.2f} | {video_fps / model_fps:.0%} |", flush=True)


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up at this size
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


if __name__ == "__main__":
    main()
