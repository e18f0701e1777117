"""Processing at reduced resolution: how much style is lost, with bicubic or guided upsampling.

    python bench/upsample.py MODEL.onnx [--scale 0.5]

For Kodak photos at 512 px on the long side: the model's own objective (the Gatys objective:
content + style + TV with its training weights) of the net run at full resolution, and of the net
run at --scale and brought back up by the engine's bicubic upsampling (what `--scale` does) or by
the fast guided filter below, an edge-aware alternative, with the guided filter's cost.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from model_examples import model_objective
from temporal import SHARED, painting_of

from realtime_style.engine import StyleControls, StyleEngine
from realtime_style.images import load_image, resize_long_side, to_uint8

PHOTOS = ("kodim23", "kodim05", "kodim15", "kodim19")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--scale", type=float, default=0.5)
    args = parser.parse_args()

    engine = StyleEngine(args.model, device="cpu")
    objective = model_objective(engine.metadata, load_image(painting_of(engine.metadata)).rgb)
    results: dict[str, list[dict]] = {"full resolution": [], f"x{args.scale} + bicubic": [],
                                      f"x{args.scale} + guided": []}
    upsample_ms = []
    for name in PHOTOS:
        photo = resize_long_side(load_image(SHARED / "eval" / "kodak24" / f"{name}.png").rgb, 512)
        size = (round(photo.shape[1] * args.scale), round(photo.shape[0] * args.scale))
        small = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
        styled_small = engine.stylize(small).astype(np.float32) / 255
        bicubic = engine.stylize(photo, StyleControls(scale=args.scale))  # what users get
        began = time.perf_counter()
        guided = to_uint8(guided_upsample(styled_small, small, photo))
        upsample_ms.append((time.perf_counter() - began) * 1000)
        for key, image in zip(results, (engine.stylize(photo), bicubic, guided)):
            results[key].append(objective(photo, image))
    print("| processing | objective | style term | content term |")
    print("|---|---:|---:|---:|")
    for key, terms in results.items():
        mean = {k: np.mean([t[k] for t in terms]) for k in ("total", "style", "content")}
        print(f"| {key} | {mean['total']:.2f} | {mean['style']:.2f} | {mean['content']:.2f} |")
    print(f"guided upsampling to 512 px: {np.median(upsample_ms):.1f} ms")


def guided_upsample(styled: np.ndarray, small: np.ndarray, frame: np.ndarray, radius: int = 2,
                    eps: float = 1e-3) -> np.ndarray:
    """Bring a stylization made at low resolution up to the frame's size, edges from the frame.

    The fast guided filter (He & Sun 2015): at low resolution, fit each output channel as a
    local linear function of the input's luminance, then apply the upsampled fit to the
    full-resolution luminance. Kept here as the alternative the engine's bicubic upsampling was
    measured against (docs/performance.md).
    """
    height, width = frame.shape[:2]
    if small.shape[0] >= height:
        return cv2.resize(styled, (width, height), interpolation=cv2.INTER_AREA)
    guide = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
    full_guide = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, size)

    mean_guide, mean_styled = box(guide), box(styled)
    covariance = box(guide[..., None] * styled) - mean_guide[..., None] * mean_styled
    variance = box(guide * guide) - mean_guide * mean_guide
    slope = covariance / (variance[..., None] + eps)
    offset = mean_styled - slope * mean_guide[..., None]
    slope = cv2.resize(box(slope), (width, height), interpolation=cv2.INTER_LINEAR)
    offset = cv2.resize(box(offset), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(slope * full_guide[..., None] + offset, 0.0, 1.0)


if __name__ == "__main__":
    main()
