"""How far a style net's output strays outside [0, 1] before the final clamp.

    python bench/out_of_range.py models/mosaic.onnx models/candy.onnx ...
    python bench/out_of_range.py --all          # every shipped model

Training clamped the output with an identity backward until 2026-12-04, which pushed pixels the
loss wanted beyond the range further out at every step; the drift shows here as a large mean
distance and extremes of hundreds (docs/training.md, "Out-of-range outputs"). Measured on the
first Kodak photos at 256 px on the long side, the net in fp32 (torch), unclamped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from temporal import ROOT, SHARED

from realtime_style.backends import net_from_onnx
from realtime_style.errors import UserError
from realtime_style.images import load_image, resize_long_side
from realtime_style.torch_utils import image_to_tensor
from realtime_style.transformer_net import TransformerNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--all", action="store_true", help="every model in models/")
    parser.add_argument("--kodak", type=Path, default=SHARED / "eval" / "kodak24")
    parser.add_argument("--photos", type=int, default=4)
    parser.add_argument("--long-side", type=int, default=256)
    args = parser.parse_args()
    models = args.models + (sorted((ROOT / "models").glob("*.onnx")) if args.all else [])
    photo_paths = sorted(args.kodak.glob("*.png"))[: args.photos]
    if not models or not photo_paths:
        parser.error("name models (or --all), and a --kodak folder with .png photos")
    try:
        photos = [image_to_tensor(resize_long_side(load_image(p).rgb, args.long_side)) for p in photo_paths]
        nets = {path: net_from_onnx(path)[0].eval() for path in models}
    except UserError as exc:
        parser.error(str(exc))
    print("| model | mean distance from [0, 1] | min | max |\n|---|---:|---:|---:|")
    for path, net in nets.items():
        with torch.no_grad():
            distance = sum(out_of_range(net, x) for x in photos) / len(photos)
            values = torch.cat([net.unclamped(crop4(x)).flatten() for x in photos])
        print(f"| {path.stem} | {distance:.3f} | {values.min():.2f} | {values.max():.2f} |")


def out_of_range(net: TransformerNet, x: torch.Tensor) -> float:
    """Mean distance of the net's unclamped output from [0, 1] (see ClampTowardRange)."""
    y = net.unclamped(crop4(x))
    return float((y - 1).clamp(min=0).mean() + (-y).clamp(min=0).mean())


def crop4(x: torch.Tensor) -> torch.Tensor:
    """The top-left part whose sides are multiples of 4, as TransformerNet.body takes."""
    return x[..., : x.shape[-2] // 4 * 4, : x.shape[-1] // 4 * 4]


if __name__ == "__main__":
    main()
