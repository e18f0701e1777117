"""Processing at reduced resolution: how much style is lost, with bicubic or guided upsampling.

    python bench/upsample.py MODEL.onnx [--scale 0.5]

For Kodak photos at 512 px on the long side: the model's own objective (the Gatys objective:
content + style + TV with its training weights) of the net run at full resolution, and of the net
run at --scale and brought back up by bicubic interpolation or by the engine's guided upsampling
(`realtime_style.engine.guided_upsample`), with the upsampling's cost.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from model_examples import model_objective
from temporal import SHARED, painting_of

from realtime_style.engine import StyleControls, StyleEngine, guided_upsample
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
        bicubic = to_uint8(cv2.resize(styled_small, photo.shape[1::-1], interpolation=cv2.INTER_CUBIC))
        began = time.perf_counter()
        guided_upsample(styled_small, small, photo)
        upsample_ms.append((time.perf_counter() - began) * 1000)
        guided = engine.stylize(photo, StyleControls(scale=args.scale))  # what users get: the same path
        for key, image in zip(results, (engine.stylize(photo), bicubic, guided)):
            results[key].append(objective(photo, image))
    print("| processing | objective | style term | content term |")
    print("|---|---:|---:|---:|")
    for key, terms in results.items():
        mean = {k: np.mean([t[k] for t in terms]) for k in ("total", "style", "content")}
        print(f"| {key} | {mean['total']:.2f} | {mean['style']:.2f} | {mean['content']:.2f} |")
    print(f"guided upsampling to 512 px: {np.median(upsample_ms):.1f} ms")


if __name__ == "__main__":
    main()
