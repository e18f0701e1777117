"""Training options side by side: short runs of tools/train.py, one column each, for docs/training.md.

    python bench/train_grid.py --style ../shared/data/styles/mosaic.jpg --data ../shared/data/train \
        --steps 300 --out docs/img/style_weight_grid.jpg \
        --columns "--style-weight 0.3" "--style-weight 1" "--style-weight 3"

Each column is its own short run (lite net, 128 px crops, batch 2, no export, plus the column's
options); the grid shows two Kodak photos (never trained on) through each net.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from realtime_style.checkpoint import load_checkpoint, net_from_checkpoint
from realtime_style.images import load_image, resize_long_side, save_image, to_uint8
from realtime_style.torch_utils import image_to_tensor, tensor_to_image

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "eval" / "kodak24"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--columns", nargs="+", required=True, help="extra train.py options, one string a column")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--photos", nargs="+", default=[str(KODAK / "kodim23.png"), str(KODAK / "kodim05.png")])
    parser.add_argument("--long-side", type=int, default=192)
    parser.add_argument("--out", type=Path, default=Path("docs/img/style_weight_grid.jpg"))
    args = parser.parse_args()

    photos = [resize_long_side(load_image(p).rgb, args.long_side) for p in args.photos]
    columns = [np.concatenate(photos, axis=0)]
    with tempfile.TemporaryDirectory() as tmp:
        for index, extra in enumerate(args.columns):
            run = Path(tmp) / f"run{index}"
            command = [sys.executable, str(ROOT / "tools" / "train.py"), "--style", args.style, "--data", *args.data,
                       "--name", f"run{index}", "--out-dir", str(run), "--arch", "lite", "--size", "128",
                       "--batch-size", "2", "--steps", str(args.steps), *shlex.split(extra),
                       "--no-export", "--preview-every", str(args.steps), "--checkpoint-every", str(args.steps)]
            subprocess.run(command, check=True)
            net = net_from_checkpoint(load_checkpoint(run / "checkpoint.pt"))
            with torch.no_grad():
                stylized = [to_uint8(tensor_to_image(net(image_to_tensor(p)))) for p in photos]
            columns.append(np.concatenate(stylized, axis=0))
            print(f"column {index + 1}: {extra}: done", flush=True)
    gap = np.full((columns[0].shape[0], 4, 3), 255, np.uint8)
    grid = np.concatenate([part for column in columns for part in (column, gap)][:-1], axis=1)
    save_image(args.out, grid, quality=85)
    print(f"wrote {args.out}: columns = photo, then {' | '.join(args.columns)}")


if __name__ == "__main__":
    main()
