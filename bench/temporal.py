"""Flicker of style models on real videos: warping error, still-scene change, and the style price.

    python bench/temporal.py runs/tw0.onnx runs/tw3000.onnx            # models side by side
    python bench/temporal.py models/mosaic.onnx --stabilize 0.8        # with run-time stabilisation

For each model and video: the warping error of the stylized frames (the previous stylized frame
warped by the input's optical flow onto the current one, on flow-consistent pixels; 0-255 levels)
next to the same measure on the input frames. Then the still-scene test: one Kodak photo with
small sensor noise (std 2 levels) per frame, where the ideal output never changes; the mean
absolute change between consecutive outputs. Then the model's own objective (Gatys loss: content,
style, TV with its training weights), the price of stability: on four frames of each video (where
the run-time stabilizer's blending shows) and on Kodak photos at 256 px (the nets alone).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np
from realtime_style.engine import StyleControls, StyleEngine, contrast_weight
from realtime_style.errors import UserError
from realtime_style.images import load_image, resize_long_side
from realtime_style.temporal import (
    DEFAULT_STRENGTH,
    Stabilizer,
    consistent,
    dis_flow,
    flow_between,
    gray,
    warp,
    warping_error,
)
from realtime_style.video import frame_to_rgb

from model_examples import model_objective

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
VIDEOS = ("chaplin.mp4", "box.mp4", "vtest.avi", "big_buck_bunny_0_30.webm")
KODAK = ("kodim23", "kodim05", "kodim15", "kodim19")
FLOW_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
WARPS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
STABILIZER_SETTINGS: dict = {}  # Stabilizer arguments other than the strength, from the command line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--videos", nargs="+", default=list(VIDEOS))
    parser.add_argument("--frames", type=int, default=40, help="consecutive frames per video")
    parser.add_argument("--max-size", type=int, default=320, help="processing long side (pixels)")
    parser.add_argument("--stabilize", type=float, default=0.0, help="also measure with run-time stabilisation")
    parser.add_argument("--repaint-tolerance", type=float, default=None,
                        help="the stabilizer's repaint gate (levels; inf: none, as before 2026-12-03)")
    parser.add_argument("--flow-preset", choices=FLOW_PRESETS, default=None,
                        help="the stabilizer's DIS flow preset (ultrafast before 2026-12-03)")
    parser.add_argument("--warp", choices=WARPS, default=None,
                        help="how the stabilizer resamples its previous output (linear before 2026-12-03)")
    parser.add_argument("--no-objective", action="store_true", help="skip the style-loss columns")
    parser.add_argument("--no-contrast-gate", action="store_true",
                        help="paint flat frames (fades from black) fully, as before 2026-12-03's contrast gate")
    parser.add_argument("--crops", type=Path, default=None,
                        help="instead: save crops of the most moving region of box.mp4 (input | model | "
                             "model + stabilize) for each model")
    parser.add_argument("--flicker-map", type=Path, default=None,
                        help="instead: save a picture of where each model's output changes from frame to frame "
                             "on vtest.avi, with and without the stabilizer")
    parser.add_argument("--detail", action="store_true",
                        help="instead: per model and video, the warping error next to what resampling alone costs "
                             "the output and the output's fine detail: is a rise flicker, or finer texture?")
    parser.add_argument("--cost", action="store_true",
                        help="instead: time the stabilizer against the first model at 1280x720, "
                             "then `rtstyle video` with and without it")
    args = parser.parse_args()
    if args.repaint_tolerance is not None:
        STABILIZER_SETTINGS["repaint_tolerance"] = args.repaint_tolerance
    if args.warp is not None:
        STABILIZER_SETTINGS["warp_interpolation"] = WARPS[args.warp]
    if args.flow_preset is not None:
        STABILIZER_SETTINGS["flow_preset"] = FLOW_PRESETS[args.flow_preset]
    if args.cost:
        stabilizer_cost(args.models[0], args.stabilize or DEFAULT_STRENGTH)
        return
    if args.flicker_map:
        save_flicker_map(args.models, args.stabilize or DEFAULT_STRENGTH, args.max_size, args.flicker_map)
        return
    if args.detail:
        detail_report(args.models, args.videos, args.frames, args.max_size)
        return
    if args.crops:
        save_crops(args.models, args.stabilize or DEFAULT_STRENGTH, args.max_size, args.crops)
        return

    clips = {name: read_frames(SHARED / "video" / name, args.frames, args.max_size) for name in args.videos}
    still = resize_long_side(load_image(SHARED / "eval" / "kodak24" / "kodim05.png").rgb, args.max_size)
    rng = np.random.default_rng(0)
    noisy = [np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(10)]

    print("| model | " + " | ".join(args.videos) + " | still scene | objective on the video frames "
          "| Kodak objective (style) |")
    print("|---|" + "---:|" * (len(args.videos) + 3))
    inputs_row = [f"{warping_error(f, f).input:.2f}" for f in clips.values()]
    print(f"| input frames | {' | '.join(inputs_row)} | {mean_change(noisy):.2f} | | |")
    rows = {}  # label -> (warping errors..., still change, video objective, Kodak objective, style term)
    for model in args.models:
        variants = [("", 0.0)] + ([(f" + stabilize {args.stabilize}", args.stabilize)] if args.stabilize else [])
        engine = StyleEngine(model, device="cpu", controls=StyleControls(contrast_gate=not args.no_contrast_gate))
        objective = None if args.no_objective else objective_of(engine)  # None without torch or the painting
        for label, strength in variants:
            outputs = {name: stylize(engine, frames, strength) for name, frames in clips.items()}
            errors = [warping_error(clips[name], outputs[name]).output for name in clips]
            change = mean_change(stylize(engine, noisy, strength))
            on_video = video_objective(objective, clips, outputs) if objective else None
            kodak = kodak_objective(engine, objective) if objective and not strength else (None, None)
            name = model_label(model, rows) + label
            rows[name] = [*errors, change, on_video, *kodak]
            video_cell = "" if on_video is None else f"{on_video:.2f}"
            kodak_cell = "" if kodak[0] is None else f"{kodak[0]:.2f} ({kodak[1]:.2f})"
            print(f"| {name} | {' | '.join(f'{e:.2f}' for e in errors)} | {change:.2f} | {video_cell} | {kodak_cell} |",
                  flush=True)
    print_changes(rows, [*args.videos, "still scene", "video frames' objective", "objective", "style term"])


def model_label(model: str, taken: dict) -> str:
    """The file's stem, or its folder/stem when an earlier model had that stem (an old and a new
    `the_scream_lite.onnx` side by side), so that no row silently replaces another."""
    path = Path(model)
    return path.stem if path.stem not in taken else f"{path.parent.name}/{path.stem}"


def print_changes(rows: dict[str, list], columns: list[str]) -> None:
    """Each row against the first, in percent: what the targets are stated in."""
    base_name, base = next(iter(rows.items()))
    if len(rows) < 2:
        return
    print(f"\nChange against {base_name} (negative: lower):\n")
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, values in list(rows.items())[1:]:
        cells = ["" if v is None or b in (None, 0) else f"{(v / b - 1) * 100:+.0f} %" for v, b in zip(values, base)]
        print(f"| {name} | {' | '.join(cells)} |")


def stabilizer_cost(model: str, strength: float, repeats: int = 10) -> None:
    """Milliseconds per 1280x720 frame: the model alone, and the stabilizer on top."""
    import time

    frames = read_frames(SHARED / "video" / "bigbuckbunny.mp4", repeats + 1, 1280)
    engine = StyleEngine(model, device="cpu")
    stabilizer = Stabilizer(strength, **STABILIZER_SETTINGS)
    net_ms, stab_ms = [], []
    for frame in frames:
        began = time.perf_counter()
        styled = engine.stylize(frame)
        middle = time.perf_counter()
        stabilizer(frame, styled)
        net_ms.append((middle - began) * 1000)
        stab_ms.append((time.perf_counter() - middle) * 1000)
    net, stab = np.median(net_ms[1:]), np.median(stab_ms[1:])
    print(f"{Path(model).stem} at {frames[0].shape[1]}x{frames[0].shape[0]}: net {net:.0f} ms/frame, "
          f"stabilize {stab:.0f} ms/frame = {stab / net:.0%} of the frame time")
    video_cost(engine, strength)


def video_cost(engine: StyleEngine, strength: float, rounds: int = 3) -> None:
    """`rtstyle video` end to end with and without the stabilizer, alternating on one synthetic clip per
    size: what it costs once decoding, the net's frames in flight and encoding share the cores with it."""
    import tempfile

    from realtime_style.benchmark import synthetic_clip
    from realtime_style.video import VideoOptions, prepare_video, stylize_video

    if STABILIZER_SETTINGS:  # rtstyle video builds its own Stabilizer: only the strength reaches it
        print("rtstyle video end to end: skipped, it runs the shipped stabilizer settings, not the ones given here")
        return
    tmp = Path(tempfile.mkdtemp())
    for width, height, frames in ((640, 480, 80), (1280, 720, 30)):
        clip = synthetic_clip(tmp / f"clip_{width}.mp4", width, height, frames + 30)
        fps = {0.0: [], strength: []}
        for _ in range(rounds):
            for stabilize in fps:
                options = VideoOptions(duration=frames / 30, overwrite=True, preset="veryfast", stabilize=stabilize)
                report = stylize_video(prepare_video(clip, tmp / "out.mp4", options), engine, progress=False)
                fps[stabilize].append(report.frames / report.seconds)
        off, on = np.mean(fps[0.0]), np.mean(fps[strength])
        print(f"rtstyle video {width}x{height} ({rounds} runs each, alternating): {off:.2f} fps without, "
              f"{on:.2f} fps with --stabilize {strength} ({on / off - 1:+.0%})", flush=True)


def save_crops(models: list[str], strength: float, long_side: int, out: Path, index: int = 30) -> None:
    """Rows of crops around the fastest motion in a frame of box.mp4: is anything left behind?"""
    from realtime_style.images import save_image
    from realtime_style.temporal import dis_flow, flow_between, gray

    frames = read_frames(SHARED / "video" / "box.mp4", index + 1, long_side)
    motion = np.linalg.norm(flow_between(dis_flow(), gray(frames[index]), gray(frames[index - 1])), axis=-1)
    size = 112
    y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(motion, (0, 0), 9)), motion.shape)
    y0 = int(np.clip(y - size // 2, 0, frames[0].shape[0] - size))
    x0 = int(np.clip(x - size // 2, 0, frames[0].shape[1] - size))
    rows = []
    for model in models:
        engine = StyleEngine(model, device="cpu")
        plain = stylize(engine, frames, 0.0)[index]
        steady = stylize(engine, frames, strength)[index]
        cells = [frames[index], plain, steady]
        gap = np.full((size, 4, 3), 255, np.uint8)
        row = [c[y0:y0 + size, x0:x0 + size] for c in cells]
        rows.append(np.concatenate([row[0], gap, row[1], gap, row[2]], axis=1))
    grid = np.concatenate([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows], axis=0)
    grid = np.repeat(np.repeat(grid, 2, axis=0), 2, axis=1)
    save_image(out, grid, quality=90)
    print(f"wrote {out}: rows {', '.join(Path(m).stem for m in models)}; columns input | model | "
          f"model + stabilize {strength} (frame {index} of box.mp4, crop at x={x0}, y={y0}, shown 2x)")


def save_flicker_map(models: list[str], strength: float, long_side: int, out: Path, pairs: int = 20) -> None:
    """Where the picture changes from frame to frame on vtest.avi (a still camera, people walking): the
    mean absolute change between consecutive frames over the last ``pairs`` pairs, as heat. Ideally only
    the walkers light up; flicker lights up the whole frame."""
    from realtime_style.images import save_image

    frames = read_frames(SHARED / "video" / "vtest.avi", pairs + 1, long_side)

    def heat(sequence: list[np.ndarray]) -> np.ndarray:
        change = np.mean([np.abs(b.astype(np.float32) - a).mean(-1) for a, b in zip(sequence, sequence[1:])], axis=0)
        scaled = np.clip(change * 8, 0, 255).astype(np.uint8)  # 32 levels of change and more: full heat
        return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)

    gap = np.full((frames[0].shape[0], 4, 3), 255, np.uint8)
    rows = [np.concatenate([frames[-1], gap, heat(frames)], axis=1)]
    for model in models:
        engine = StyleEngine(model, device="cpu")
        plain, steady = stylize(engine, frames, 0.0), stylize(engine, frames, strength)
        rows.append(np.concatenate([plain[-1], gap, heat(plain), gap, heat(steady)], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    save_image(out, np.concatenate(rows, axis=0), quality=80)
    print(f"wrote {out}: first row the input (last frame | its change); then per model "
          f"({', '.join(Path(m).stem for m in models)}): stylized | its change | its change with --stabilize "
          f"{strength} (vtest.avi, mean over {pairs} frame pairs, 1 level of change = 8 levels of heat)")


def detail_report(models: list[str], videos: list[str], count: int, long_side: int) -> None:
    """A net with finer strokes scores a higher warping error even when it is steady: the warp resamples
    the previous output (bilinear), which blurs fine texture. Next to the warping error, this prints the
    error that resampling alone makes (each output warped by the flow there and back, on the same
    pixels) and the outputs' fine detail (mean absolute difference from a 1-pixel Gaussian blur)."""
    engines = {model: StyleEngine(model, device="cpu") for model in models}  # a bad path fails before any work
    print("| video | model | warping error | resampling alone | fine detail |")
    print("|---|---|---:|---:|---:|")
    for video in videos:
        frames = read_frames(SHARED / "video" / video, count, long_side)
        dis = dis_flow()
        pairs = []  # (index, back, fwd, mask) of each consecutive pair with trusted flow
        for i in range(1, len(frames)):
            previous, current = gray(frames[i - 1]), gray(frames[i])
            back, fwd = flow_between(dis, current, previous), flow_between(dis, previous, current)
            mask = consistent(back, fwd)
            if mask.any():
                pairs.append((i, back, fwd, mask))
        for model, engine in engines.items():
            out = stylize(engine, frames, 0.0)
            errors, trips = [], []
            for i, back, fwd, mask in pairs:
                moved = warp(out[i - 1], back).astype(np.float32)
                errors.append(np.abs(moved - out[i]).mean(-1)[mask].mean())
                there_and_back = warp(warp(out[i - 1], fwd), back).astype(np.float32)
                trips.append(np.abs(there_and_back - out[i - 1]).mean(-1)[mask].mean())
            detail = np.mean([np.abs(o.astype(np.float32) - cv2.GaussianBlur(o, (0, 0), 1.0)).mean() for o in out])
            print(f"| {video} | {Path(model).stem} | {np.mean(errors):.2f} | {np.mean(trips):.2f} | {detail:.2f} |",
                  flush=True)


def stylize(engine: StyleEngine, frames: list[np.ndarray], stabilize: float) -> list[np.ndarray]:
    stabilizer = Stabilizer(stabilize, **STABILIZER_SETTINGS) if stabilize else None
    out = []
    for frame in frames:
        styled = engine.stylize(frame)
        out.append(stabilizer(frame, styled) if stabilizer else styled)
    return out


def mean_change(frames: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b.astype(np.float32) - a).mean() for a, b in zip(frames, frames[1:])]))


def objective_of(engine: StyleEngine):
    """f(photo, result) -> loss terms under the model's own training objective; None without torch or painting."""
    path = painting_of(engine.metadata)
    return model_objective(engine.metadata, load_image(path).rgb) if path else None


def kodak_objective(engine: StyleEngine, objective, long_side: int = 256) -> tuple[float, float]:
    """Mean Gatys objective (and its style term) of the model's output on the Kodak photos."""
    totals, styles = [], []
    for name in KODAK:
        photo = resize_long_side(load_image(SHARED / "eval" / "kodak24" / f"{name}.png").rgb, long_side)
        terms = objective(photo, engine.stylize(photo))
        totals.append(terms["total"])
        styles.append(terms["style"])
    return float(np.mean(totals)), float(np.mean(styles))


def video_objective(objective, clips: dict[str, list[np.ndarray]], outputs: dict[str, list[np.ndarray]],
                    picks: int = 4) -> float:
    """Mean objective of the outputs on a few frames of each clip (the last and evenly before it): what the
    stabilizer's blending costs in style, which the Kodak photos, single frames, cannot show.

    Only frames with a picture to paint count: on the near-black frames of a fade, which the contrast gate
    leaves unpainted, a painting of the noise would score better and mean nothing.
    """
    totals = []
    for name, frames in clips.items():
        painted = [i for i, frame in enumerate(frames) if contrast_weight(frame) == 1.0]
        if not painted:
            continue  # a clip that never leaves the gate's ramp has nothing to price
        for k in np.linspace(len(painted) - 1, 0, picks, endpoint=False).round().astype(int):
            i = painted[k]
            totals.append(objective(frames[i], outputs[name][i])["total"])
    return float(np.mean(totals)) if totals else float("nan")


def painting_of(metadata: dict) -> Path | None:
    """The style image a model was trained on: the path its run used, or the shared copy of that name."""
    import json

    trained_on = Path(json.loads(metadata.get("train_config", "{}")).get("style") or "")
    for candidate in (trained_on, SHARED / "styles" / f"{metadata.get('style_image', '')}.jpg"):
        if candidate.is_file():
            return candidate
    return None


def read_frames(path: Path, count: int, long_side: int) -> list[np.ndarray]:
    """The first ``count`` frames, upright RGB, scaled to ``long_side``."""
    if not path.exists():
        sys.exit(f"{path} not found (the shared videos live in ../shared/data/video)")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(resize_long_side(frame_to_rgb(frame), long_side))
            if len(frames) == count:
                break
    return frames


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # a missing or broken model: one line, not a traceback
        sys.exit(f"temporal.py: {exc}")
