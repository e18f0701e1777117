"""Gatys reference stills: loss tables and before/after pictures for docs/gatys.md.

    python bench/gatys_reference.py --content ../shared/data/eval/kodak24/kodim23.png \
        --style ../shared/data/styles/starry_night.jpg --size 256 --iters 200 --out docs/img

Prints a Markdown table of the loss terms at a few iterations and writes a
small side-by-side JPEG (content | style | result) per content image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from realtime_style.gatys import GatysConfig, run_gatys
from realtime_style.images import load_image, resize_long_side, save_image, to_uint8
from realtime_style.losses import PerceptualLoss
from realtime_style.vgg import load_vgg19


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", nargs="+", required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--report-at", type=int, nargs="+", default=[0, 10, 50, 100, 200])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()

    device = torch.device("cpu")
    loss_fn = PerceptualLoss(load_vgg19(device=device))
    style = load_image(args.style).rgb
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, L-BFGS, size {args.size}, "
          f"iters {args.iters}\n")
    print("| content | iteration | content loss | style loss | tv loss | total |")
    print("|---|---:|---:|---:|---:|---:|")
    for content_path in args.content:
        content = load_image(content_path).rgb
        start = time.perf_counter()
        result = run_gatys(content, style, loss_fn, GatysConfig(iters=args.iters, size=args.size), device,
                           progress=False)
        seconds = time.perf_counter() - start
        name = Path(content_path).stem
        for i in args.report_at:
            if i < len(result.history):
                h = result.history[i]
                print(f"| {name} | {i} | {h['content']:.4g} | {h['style']:.4g} | {h['tv']:.4g} | {h['total']:.4g} |")
        ratio = result.first["style"] / result.last["style"]
        print(f"| {name} | style loss cut | {ratio:.1f}x | | {seconds:.0f} s on this CPU | |")
        _save_strip(args.out / f"gatys_{name}_{Path(args.style).stem}.jpg", content, style, result.image)


def _save_strip(path: Path, content: np.ndarray, style: np.ndarray, result: np.ndarray) -> None:
    height = result.shape[0]
    tiles = [resize_long_side(content, max(result.shape[:2])),
             _fit_height(style, height), to_uint8(result)]
    tiles = [_fit_height(t, height) for t in tiles]
    gap = np.full((height, 4, 3), 255, np.uint8)
    strip = np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)
    save_image(path, strip, quality=85)


def _fit_height(rgb: np.ndarray, height: int) -> np.ndarray:
    if rgb.shape[0] == height:
        return rgb
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


if __name__ == "__main__":
    main()
