"""Long Gatys runs: every L-BFGS iterate's objective, with and without the restarts.

    python bench/gatys_restarts.py --style mosaic --photo kodim01 --size 256 --iters 300

The optimisation takes fixed unit L-BFGS steps (realtime_style/gatys.py). This prints, every
--every iterations, the objective of the iterate itself and of what the run returns (its best
image so far), once with the restarts switched off (how it ran before they existed: the result was
the last iterate) and once with them on. The objective is the style model's own (the one
bench/quality.py measures), at --size on the long side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from realtime_style import gatys
from realtime_style.errors import UserError
from realtime_style.gatys import GatysConfig, run_gatys
from realtime_style.images import load_image, resize_long_side
from realtime_style.losses import LossWeights, PerceptualLoss
from realtime_style.styles import read_metadata, resolve_style
from realtime_style.vgg import load_vgg19

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class RecordingLoss(PerceptualLoss):
    """The objective, noting the total of every image it is evaluated on (one per iteration)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.totals: list[float] = []

    def forward(self, output, content_target, style_grams):
        terms = super().forward(output, content_target, style_grams)
        self.totals.append(float(terms.total.detach()))
        return terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="mosaic", help="a shipped style: its objective and painting")
    parser.add_argument("--photo", default="kodim01", help="a Kodak photo")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--every", type=int, default=25)
    args = parser.parse_args()

    try:
        meta = read_metadata(resolve_style(args.style))
        photo = resize_long_side(load_image(SHARED / "eval" / "kodak24" / f"{args.photo}.png").rgb, args.size)
        painting = load_image(SHARED / "styles" / f"{args.style}.jpg").rgb
    except UserError as exc:
        parser.error(str(exc))
    style_size = int(json.loads(meta["train_config"]).get("style_size", 512))
    loss_fn = RecordingLoss(load_vgg19(), LossWeights.from_dict(json.loads(meta["loss"])))
    config = GatysConfig(iters=args.iters, size=args.size, style_size=style_size)

    runs = {}
    for label, rise in (("without restarts", float("inf")), ("with restarts", gatys.LBFGS_RESTART_RISE)):
        gatys.LBFGS_RESTART_RISE = rise
        loss_fn.totals.clear()
        start = time.perf_counter()
        result = run_gatys(photo, painting, loss_fn, config, torch.device("cpu"))
        runs[label] = (list(loss_fn.totals), [h["total"] for h in result.history])
        print(f"{label}: {time.perf_counter() - start:.0f} s, {result.restarts} restarts")

    print(f"\n{args.style} objective, {args.photo} at {args.size} px, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| iteration | iterate, without restarts | iterate, with restarts | returned, with restarts |")
    print("|---:|---:|---:|---:|")
    (plain, _), (restarted, best) = runs["without restarts"], runs["with restarts"]
    for n in sorted({0, 1, 10, *range(args.every, args.iters + 1, args.every), args.iters}):
        print(f"| {n} | {plain[n]:.2f} | {restarted[n]:.2f} | {best[n]:.2f} |")


if __name__ == "__main__":
    main()
