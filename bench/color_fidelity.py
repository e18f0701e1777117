#!/usr/bin/env python
"""How much of the photo's colour a style net keeps: the numbers behind "the lite nets were grey".

    cd bench && python color_fidelity.py ../models/candy.onnx ../models/candy_lite.onnx --grid /tmp/candy.jpg

For each model, over the first N Kodak photos at 256 px on the long side:
- a*b* correlation: Pearson correlation, over all pixels, between the photo's CIELAB a*b* (its hue
  and saturation, without its lightness) and the stylized photo's, both blurred over 9 x 9 pixels
  so that strokes do not count. 1: every region keeps its colour relation to the others; 0: the
  output's colours have nothing to do with the photo's (one tint of the painting everywhere).
- chroma: the output's mean a*b* distance from grey; how colourful it is, whatever the colours.
--grid saves photo | model 1 | model 2 ... rows for the first landscape photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime_style.engine import StyleEngine
from realtime_style.errors import UserError
from realtime_style.images import load_image, resize_long_side, save_image

KODAK = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "eval" / "kodak24"
BLUR = 9


def chroma_ab(rgb: np.ndarray) -> np.ndarray:
    """(H*W, 2) CIELAB a*, b* (0 = grey), blurred over BLUR x BLUR pixels."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    return cv2.blur(lab, (BLUR, BLUR))[..., 1:].reshape(-1, 2) - 128.0


def ab_correlation(photo: np.ndarray, stylized: np.ndarray) -> float:
    a = chroma_ab(photo)
    b = chroma_ab(stylized)
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="installed style names or .onnx files")
    p.add_argument("--kodak", default=str(KODAK))
    p.add_argument("--photos", type=int, default=8, help="the first N Kodak photos (default 8)")
    p.add_argument("--long-side", type=int, default=256)
    p.add_argument("--grid", help="save a picture: photo, then each model's output, one row per photo")
    args = p.parse_args()

    photos = sorted(Path(args.kodak).glob("*.png"))[:args.photos]
    if not photos:
        sys.exit(f"color_fidelity.py: no Kodak photos in {args.kodak}")
    try:
        engines = [StyleEngine(model) for model in args.models]
    except UserError as exc:
        p.error(str(exc))
    scores = np.zeros((len(engines), len(photos), 2))
    rows, photo_chroma = [], []
    for j, path in enumerate(photos):
        photo = resize_long_side(load_image(path).rgb, args.long_side)
        photo_chroma.append(np.linalg.norm(chroma_ab(photo), axis=1).mean())
        row = [photo]
        for i, engine in enumerate(engines):
            stylized = engine.stylize(photo)
            scores[i, j] = ab_correlation(photo, stylized), np.linalg.norm(chroma_ab(stylized), axis=1).mean()
            row.append(stylized)
        rows.append(np.concatenate(row, axis=1))

    print(f"Kodak photos 1-{len(photos)} at {args.long_side} px (their own mean chroma: {np.mean(photo_chroma):.1f})\n")
    print("| model | a*b* correlation with the photo | chroma |")
    print("|---|---:|---:|")
    for model, (correlation, chroma) in zip(args.models, scores.mean(axis=1)):
        print(f"| {Path(model).stem} | {correlation:.2f} | {chroma:.1f} |")
    if args.grid:
        landscape = [r for r in rows if r.shape == rows[0].shape][:4]
        print(f"\n{save_image(args.grid, np.concatenate(landscape, axis=0))}")


if __name__ == "__main__":
    main()
