"""Quality report per style: the fast nets' Gatys objective on Kodak, against the Gatys optimisation.

    python bench/quality.py --styles mosaic                       # standard and lite nets, 24 Kodak photos
    python bench/quality.py --styles mosaic --photos 2 --gatys-iters 50 100 300
    python bench/quality.py --styles /tmp/candidate_lite.onnx --photos 4 --videos   # against its standard net

For each installed style NAME (and its lite net NAME_lite, when installed), on each photo at
512 px on the long side, the objective each net was trained with (same VGG19, layers and
weights; the standard net's weights are used for both nets so the ratio compares like with
like):
- the objective of the unchanged photo (the baseline any stylization must beat);
- the standard net's; the lite net's at full resolution and at --scale 0.5 (how the webcam
  keeps up on a CPU); the lite/standard ratio at full resolution;
- with --gatys-iters, the Gatys L-BFGS optimisation's objective after that many iterations,
  started from the photo (slow on a CPU: at 512 px about 2 s an iteration on 2 AVX-512 cores,
  5-7 s on 2 AVX2 cores);
- the fp16-vs-fp32 PSNR recorded by the export;
- the warping error of both nets on the shared videos (bench/temporal.py's measure, first 40
  frames at 320 px), next to the input's: flicker, per style.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from model_examples import model_objective
from temporal import SHARED, VIDEOS, read_frames, stylize
from realtime_style.engine import StyleControls, StyleEngine
from realtime_style.errors import UserError
from realtime_style.gatys import GatysConfig, run_gatys
from realtime_style.images import load_image, resize_long_side
from realtime_style.losses import LossWeights, PerceptualLoss
from realtime_style.styles import installed_styles, resolve_style
from realtime_style.temporal import warping_error
from realtime_style.vgg import load_vgg19

KODAK = SHARED / "eval" / "kodak24"
STYLES = SHARED / "styles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--styles", nargs="+", help="installed style names or .onnx files (a candidate before it "
                        "ships: a lite one is compared with its painting's installed standard net); default: "
                        "every installed standard net")
    parser.add_argument("--kodak", type=Path, default=KODAK)
    parser.add_argument("--paintings", type=Path, default=STYLES, help="folder with NAME.jpg per style")
    parser.add_argument("--photos", type=int, default=24, help="the first N Kodak photos")
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--gatys-iters", type=int, nargs="*", default=[])
    parser.add_argument("--videos", nargs="*", default=list(VIDEOS), help="shared videos for the warping error "
                        "(none: skip it)")
    args = parser.parse_args()
    args.styles = args.styles or [s.name for s in installed_styles() if not s.name.endswith("_lite")]
    for name in args.styles:
        try:
            resolve_style(name)
        except UserError as exc:
            parser.error(str(exc))
    photos = sorted(args.kodak.glob("*.png"))[:args.photos]
    if not photos:
        parser.error(f"no photos in {args.kodak}")
    clips = [read_frames(SHARED / "video" / name, 40, 320) for name in args.videos]
    if clips:
        input_flicker = np.mean([warping_error(frames, frames).input for frames in clips])

    summary = []
    for name in args.styles:
        standard, lite = pair_of_nets(name)
        painting = load_image(args.paintings / f"{standard.metadata.get('style_image', name)}.jpg").rgb
        objective = model_objective(standard.metadata, painting)
        gatys_loss = (PerceptualLoss(load_vgg19(), LossWeights.from_dict(json.loads(standard.metadata["loss"])))
                      if args.gatys_iters else None)
        gatys_cols = "".join(f" Gatys {n} |" for n in args.gatys_iters)
        print(f"\n{name}: standard {standard.metadata.get('train_steps_total')} steps, fp16 PSNR "
              f"{standard.metadata.get('fp16_psnr_db')} dB"
              + (f"; lite {lite.metadata.get('train_steps_total')} steps, fp16 PSNR "
                 f"{lite.metadata.get('fp16_psnr_db')} dB" if lite else "; no lite net installed"))
        print(f"| photo | photo | standard | lite | lite x0.5 | lite / standard |{gatys_cols}")
        print("|---|---:|---:|---:|---:|---:|" + "---:|" * len(args.gatys_iters))
        rows = []
        for path in photos:
            photo = resize_long_side(load_image(path).rgb, args.long_side)
            values = [objective(photo, photo)["total"], objective(photo, standard.stylize(photo))["total"]]
            if lite:
                values += [objective(photo, lite.stylize(photo))["total"],
                           objective(photo, lite.stylize(photo, StyleControls(scale=0.5)))["total"]]
            else:
                values += [float("nan")] * 2
            values.append(values[2] / values[1])
            values += gatys_objectives(photo, painting, gatys_loss, standard.metadata, args.gatys_iters)
            rows.append(values)
            print(f"| {path.stem} | " + " | ".join(f"{v:.2f}" for v in values) + " |", flush=True)
        mean = np.mean(rows, axis=0)
        print("| **mean** | " + " | ".join(f"**{v:.2f}**" for v in mean) + " |")
        flicker = [video_flicker(engine, clips) if engine and clips else float("nan") for engine in (standard, lite)]
        if clips:
            print(f"warping error, mean of {', '.join(args.videos)}: input {input_flicker:.2f}, "
                  f"standard {flicker[0]:.2f}, lite {flicker[1]:.2f}")
        summary.append((name, [*mean[:5], *flicker]))
    if len(summary) > 1:
        print("\n| style | photo | standard | lite | lite x0.5 | lite / standard | warping error standard | lite |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, values in summary:
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")


def pair_of_nets(name: str) -> tuple[StyleEngine, StyleEngine | None]:
    """The standard net and its lite net. A lite net named alone (a candidate .onnx before it ships) is
    measured against the installed standard net of its painting; a standard candidate alone."""
    engine = StyleEngine(resolve_style(name), device="cpu")
    if engine.metadata.get("arch") == "lite":
        painting = engine.metadata.get("style_image", "")
        standard = _find_optional(painting)
        if standard is None:
            raise SystemExit(f"quality.py: error: {name} is a lite net, and no standard net {painting!r} is "
                             "installed to compare it with")
        return StyleEngine(standard, device="cpu"), engine
    lite_path = _find_optional(f"{name}_lite")   # none for a path
    return engine, StyleEngine(lite_path, device="cpu") if lite_path else None


def video_flicker(engine: StyleEngine, clips: list[list[np.ndarray]]) -> float:
    """Mean warping error of the engine's output over the clips."""
    return float(np.mean([warping_error(frames, stylize(engine, frames, 0.0)).output for frames in clips]))


def gatys_objectives(photo: np.ndarray, painting: np.ndarray, loss_fn: PerceptualLoss, meta: dict,
                     iters: list[int]) -> list[float]:
    """The Gatys optimisation's objective after each of ``iters`` L-BFGS iterations (one run)."""
    if not iters:
        return []
    style_size = int(json.loads(meta["train_config"]).get("style_size", 512))
    config = GatysConfig(iters=max(iters), size=max(photo.shape[:2]), style_size=style_size)
    result = run_gatys(photo, painting, loss_fn, config, torch.device("cpu"), progress=False)
    return [result.history[min(n, len(result.history) - 1)]["total"] for n in iters]


def _find_optional(name: str) -> Path | None:
    try:
        return resolve_style(name)
    except UserError:
        return None


if __name__ == "__main__":
    main()
