"""Flat frames: why the engine fades the style out on frames with almost no contrast, and whom it touches.

    python bench/flat_frames.py models/mosaic.onnx models/candy.onnx     # noise gain against contrast
    python bench/flat_frames.py --census                                 # which shared photos/frames it touches
    python bench/flat_frames.py models/mosaic.onnx --fade docs/img/fade_from_black.jpg

Instance norm divides each feature map by its spread, so a style net paints a frame's noise as strongly
as its picture once the picture's contrast is low. The first table lowers the contrast of four Kodak
photos in two ways, a fade towards black (x * a) and towards grey (mean + a * (x - mean)), adds sensor
noise (std 1.5 levels) twice, and reports how much the net's output differs between the two noise draws
(0-255 levels), without the contrast gate: that difference is flicker on a still scene. The contrast column
is `realtime_style.engine.frame_contrast` (luma std of a 128-px thumbnail).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np
from temporal import KODAK, SHARED, read_frames, stylize

from realtime_style.engine import FLAT_CONTRAST, StyleControls, StyleEngine, contrast_weight, frame_contrast
from realtime_style.images import load_image, resize_long_side, save_image
from realtime_style.temporal import DEFAULT_STRENGTH
from realtime_style.video import frame_to_rgb

LEVELS = (0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.5, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--census", action="store_true",
                        help="count the Kodak photos, training photos and shared video frames the gate touches")
    parser.add_argument("--fade", type=Path, default=None,
                        help="save frames of Big Buck Bunny's fade from black through the first model: without "
                             "the contrast gate, and as `rtstyle video` makes them")
    args = parser.parse_args()
    if args.fade and not args.models:
        parser.error("--fade needs a model")
    if args.census:
        census()
    if args.fade:
        save_fade(args.models[0], args.fade)
    elif args.models:
        noise_gain(args.models)


def noise_gain(models: list[str], noise: float = 1.5) -> None:
    photos = [resize_long_side(load_image(SHARED / "eval" / "kodak24" / f"{name}.png").rgb, 320).astype(np.float32)
              for name in KODAK]
    print(f"gate: no style below a contrast of {FLAT_CONTRAST[0]}, full style above {FLAT_CONTRAST[1]}\n")
    print("| model | lowered | a | contrast | output change under noise |")
    print("|---|---|---:|---:|---:|")
    for model in models:
        engine = StyleEngine(model, device="cpu", controls=StyleControls(contrast_gate=False))
        rng = np.random.default_rng(0)
        for kind in ("towards black", "towards grey"):
            for level in LEVELS:
                changes, contrasts = [], []
                for photo in photos:
                    base = photo * level if kind == "towards black" else photo.mean() + level * (photo - photo.mean())
                    pair = [np.clip(base + rng.normal(0, noise, photo.shape), 0, 255).round().astype(np.uint8)
                            for _ in range(2)]
                    a, b = (engine.stylize(x).astype(np.float32) for x in pair)
                    changes.append(np.abs(a - b).mean())
                    contrasts.append(frame_contrast(pair[0]))
                print(f"| {Path(model).stem} | {kind} | {level:.2f} | {np.mean(contrasts):.1f} | "
                      f"{np.mean(changes):.2f} |", flush=True)


def census() -> None:
    print("| pictures | count | gate below 1 (part of the style) | gate 0 (no style) |")
    print("|---|---:|---:|---:|")
    groups = {"Kodak photos": sorted((SHARED / "eval" / "kodak24").glob("*.png")),
              "training photos": sorted((SHARED / "train").glob("*/*.jpg"))}
    for name, paths in groups.items():
        weights = [contrast_weight(load_image(p).rgb) for p in paths]
        print(census_row(name, weights), flush=True)
    for path in sorted((SHARED / "video").iterdir()):
        with av.open(str(path)) as container:
            weights = [contrast_weight(frame_to_rgb(frame)) for frame in container.decode(video=0)]
        print(census_row(f"{path.name} frames", weights), flush=True)


def census_row(name: str, weights: list[float]) -> str:
    w = np.asarray(weights)
    return f"| {name} | {len(w)} | {int((w < 1).sum())} | {int((w == 0).sum())} |"


def save_fade(model: str, out: Path, picks: tuple = (6, 10, 14, 18, 22, 30), long_side: int = 320) -> None:
    """Rows: frames of the fade from black that opens big_buck_bunny_0_30.webm; the model without the
    gate (each near-black frame painted out of its noise); `rtstyle video` (the gate and the stabilizer)."""
    frames = read_frames(SHARED / "video" / "big_buck_bunny_0_30.webm", max(picks) + 1, long_side)
    ungated = StyleEngine(model, device="cpu", controls=StyleControls(contrast_gate=False))
    rows = [frames, stylize(ungated, frames, 0.0), stylize(StyleEngine(model, device="cpu"), frames, DEFAULT_STRENGTH)]
    gap = np.full((frames[0].shape[0], 4, 3), 255, np.uint8)
    lines = []
    for row in rows:
        cells = [x for i in picks for x in (row[i], gap)][:-1]
        lines.append(np.pad(np.concatenate(cells, axis=1), ((0, 4), (0, 0), (0, 0)), constant_values=255))
    save_image(out, np.concatenate(lines, axis=0)[:-4], quality=85)
    weights = ", ".join(f"{contrast_weight(frames[i]):.2f}" for i in picks)
    print(f"wrote {out}: frames {', '.join(map(str, picks))} of big_buck_bunny_0_30.webm (gate {weights}); "
          f"rows: input | {Path(model).stem} without the contrast gate | `rtstyle video` (gate, stabilizer "
          f"{DEFAULT_STRENGTH})")


if __name__ == "__main__":
    main()
