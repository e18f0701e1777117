"""Pictures of a style model at work, for the docs: photo | painting | stylized, one row per photo.

    python bench/model_examples.py models/mosaic.onnx --painting ../shared/data/styles/mosaic.jpg \
        --photos ../shared/data/eval/kodak24/kodim23.png ../shared/data/eval/kodak24/kodim05.png \
        --out docs/img/mosaic_examples.jpg
    python bench/model_examples.py NEW.onnx --before OLD.onnx ...   # photo | painting | old | new

Runs the model through the runtime's engine (ONNX Runtime), and also reports the loss of each
result under the model's own training objective, next to the loss of the unchanged photo.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from realtime_style.engine import StyleEngine
from realtime_style.errors import UserError
from realtime_style.images import load_image, resize_long_side, save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--painting", required=True)
    parser.add_argument("--photos", nargs="+", required=True)
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--before", metavar="MODEL", help="an earlier model of the style, pictured before this one")
    args = parser.parse_args()

    paths = [path for path in (args.before, args.model) if path]
    engines = [StyleEngine(path, device="cpu") for path in paths]
    for path, engine in zip(paths, engines):
        meta = engine.metadata
        print(f"{path}: {meta.get('arch')} net, {meta.get('train_steps_total')} steps, "
              f"fp16 PSNR {meta.get('fp16_psnr_db')} dB")
    painting = load_image(args.painting).rgb
    rows, results = [], [[] for _ in engines]
    for path in args.photos:
        photo = resize_long_side(load_image(path).rgb, args.long_side)
        art = np.asarray(Image.fromarray(painting).resize(
            (round(painting.shape[1] * photo.shape[0] / painting.shape[0]), photo.shape[0]),
            Image.Resampling.LANCZOS))
        gap = np.full((photo.shape[0], 4, 3), 255, np.uint8)
        row = [photo, gap, art]
        for engine, found in zip(engines, results):
            found.append((Path(path).stem, photo, engine.stylize(photo)))
            row += [gap, found[-1][2]]
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    save_image(args.out, np.concatenate(rows, axis=0), quality=85)
    print(f"wrote {args.out}")
    for engine, found in zip(engines, results):  # each on its own objective (the same where the weights are)
        _report_losses(engine.metadata, painting, found)


def _report_losses(meta: dict, painting: np.ndarray, results: list) -> None:
    """The model's own objective on each photo: how far one forward pass gets."""
    objective = model_objective(meta, painting)
    if objective is None:
        return
    print("| photo | objective of the photo | objective of the stylized photo (style term) |")
    print("|---|---:|---:|")
    for name, photo, result in results:
        before, after = objective(photo, photo), objective(photo, result)
        print(f"| {name} | {before['total']:.3f} | {after['total']:.3f} ({after['style']:.3f}) |")


def model_objective(meta: dict, painting: np.ndarray):
    """f(photo, result) -> the loss terms of ``result`` under the objective the model was trained with
    (same VGG19, layers and weights: the Gatys objective); None without torch."""
    try:
        import torch

        from realtime_style.losses import LossWeights, PerceptualLoss
        from realtime_style.torch_utils import image_to_tensor
        from realtime_style.vgg import load_vgg19
    except ImportError:
        return None
    config = json.loads(meta["train_config"])
    weights = LossWeights.from_dict(json.loads(meta["loss"]))
    loss_fn = PerceptualLoss(load_vgg19(), weights)
    grams = loss_fn.style_targets(image_to_tensor(resize_long_side(painting, int(config.get("style_size", 512)))))

    def objective(photo: np.ndarray, result: np.ndarray) -> dict[str, float]:
        with torch.no_grad():
            target = loss_fn.content_targets(image_to_tensor(photo))
            return loss_fn(image_to_tensor(result), target, grams).as_floats()

    return objective


if __name__ == "__main__":
    try:
        main()
    except UserError as exc:  # a missing or unreadable model, painting or photo: one line, no traceback
        sys.exit(f"model_examples.py: error: {exc}")
