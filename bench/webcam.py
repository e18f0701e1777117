"""The webcam loop on a file source: fps and capture-to-display latency, and a memory soak.

    python bench/webcam.py                       # 640x480 file source, each architecture, 150 frames
    python bench/webcam.py --archs lite --auto-scale   # the scale `rtstyle webcam` settles on, and its fps
    python bench/webcam.py --soak 5000           # RSS every 500 frames over a long headless run

The file plays at its own frame rate (30 fps), as a camera would deliver it, and the loop runs
headless (no window), so the numbers are the engine plus the loop's own overhead. Architectures
without a shipped model use an untrained net of that architecture (same cost).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from realtime_style.benchmark import model_for, synthetic_clip
from realtime_style.engine import StyleControls, StyleEngine
from realtime_style.webcam import WebcamLoop, WebcamOptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["standard", "lite"])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scale", type=float, default=None, help="processing scale (guided upsampling back)")
    parser.add_argument("--auto-scale", action="store_true", help="let the loop pick the scale, as `rtstyle webcam` does")
    parser.add_argument("--soak", type=int, default=0, metavar="N", help="run N frames and print RSS as it goes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.soak:
            soak(args.soak, tmp, args.device)
            return
        source = synthetic_clip(tmp / "camera.mp4", 640, 480, args.frames + 30)
        print("| arch | source | backend | fps | latency p50 ms | latency p95 ms | frames dropped | scale at the end |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for arch in args.archs:
            engine = StyleEngine(model_for(arch, tmp), device=args.device, controls=StyleControls(scale=args.scale))
            summary = WebcamLoop(engine, WebcamOptions(source=str(source), window=False, max_frames=args.frames,
                                                       auto_scale=args.auto_scale)).run()
            scale = " auto" if args.auto_scale else f" x{args.scale}" if args.scale else ""
            print(f"| {arch}{scale} | 640x480 @ 30 fps file | {engine.backend.description} | {summary.fps:.2f} | "
                  f"{summary.latency_ms(50):.0f} | {summary.latency_ms(95):.0f} | {summary.frames_dropped} | "
                  f"{summary.scale:.2f} |", flush=True)


def soak(frames: int, tmp: Path, device: str) -> None:
    """A long headless run; RSS should stay flat once the first frames have warmed everything up."""
    source = synthetic_clip(tmp / "long.mp4", 320, 240, frames * 2)  # the loop drops some: keep it fed
    engine = StyleEngine(model_for("lite", tmp), device=device, controls=StyleControls(max_size=160))
    samples: list[tuple[int, float]] = []

    def sample(loop: WebcamLoop, shown: int) -> None:
        if shown % 500 == 0 or shown == 50:
            samples.append((shown, rss_mb()))
            print(f"frame {shown}: RSS {samples[-1][1]:.1f} MB", flush=True)

    options = WebcamOptions(source=str(source), window=False, max_frames=frames)
    summary = WebcamLoop(engine, options, on_frame=sample).run()
    first, last = samples[0][1], samples[-1][1]
    print(f"{summary.frames_shown} frames: RSS {first:.1f} MB at frame {samples[0][0]}, {last:.1f} MB at frame "
          f"{samples[-1][0]} ({last - first:+.1f} MB)")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


if __name__ == "__main__":
    main()
