"""How --style-weight changes the look: short training runs side by side, for docs/training.md.

    python bench/style_weight_grid.py --style ../shared/data/styles/mosaic.jpg \
        --data ../shared/data/train --weights 0.3 1 3 --steps 300 --out docs/img/style_weight_grid.jpg

Each weight gets its own short run of tools/train.py (lite net, 128 px crops, no export); the grid
shows two Kodak photos (never trained on) through each net, one column per weight.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--weights", type=float, nargs="+", default=[0.3, 1.0, 3.0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--photos", nargs="+", default=[str(KODAK / "kodim23.png"), str(KODAK / "kodim05.png")])
    parser.add_argument("--long-side", type=int, default=192)
    parser.add_argument("--out", type=Path, default=Path("docs/img/style_weight_grid.jpg"))
    args = parser.parse_args()

    photos = [resize_long_side(load_image(p).rgb, args.long_side) for p in args.photos]
    columns = [np.concatenate(photos, axis=0)]
    with tempfile.TemporaryDirectory() as tmp:
        for weight in args.weights:
            run = Path(tmp) / f"w{weight}"
            command = [sys.executable, str(ROOT / "tools" / "train.py"), "--style", args.style, "--data", *args.data,
                       "--name", f"w{weight}", "--out-dir", str(run), "--arch", "lite", "--size", "128",
                       "--batch-size", "2", "--steps", str(args.steps), "--style-weight", str(weight),
                       "--no-export", "--preview-every", str(args.steps), "--checkpoint-every", str(args.steps)]
            subprocess.run(command, check=True)
            net = net_from_checkpoint(load_checkpoint(run / "checkpoint.pt"))
            with torch.no_grad():
                stylized = [to_uint8(tensor_to_image(net(image_to_tensor(p)))) for p in photos]
            columns.append(np.concatenate(stylized, axis=0))
            print(f"style weight {weight}: done")
    gap = np.full((columns[0].shape[0], 4, 3), 255, np.uint8)
    grid = np.concatenate([part for column in columns for part in (column, gap)][:-1], axis=1)
    save_image(args.out, grid, quality=85)
    print(f"wrote {args.out}: columns = photo, then style weight {', '.join(map(str, args.weights))}")


if __name__ == "__main__":
    main()
