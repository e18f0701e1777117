"""Candidate CPU architectures for the lite net: ONNX Runtime speed at the webcam's sizes.

    python bench/lite_arch.py                      # the default candidates, 640x480 and 320x240
    python bench/lite_arch.py --repeats 30 --threads 2

Weights do not change the cost, so untrained nets are timed; the quality side of the trade
(Gatys objective on Kodak of a trained net) comes from training the chosen candidates
(docs/performance.md). 320x240 is what the webcam loop runs at 640x480 with --scale 0.5.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from realtime_style.backends import OrtCpuBackend
from realtime_style.benchmark import conv_flops, time_backend
from realtime_style.export import onnx_model_bytes
from realtime_style.transformer_net import NetConfig, TransformerNet

CANDIDATES = {
    "32/64/128 x5 (standard)": NetConfig((32, 64, 128), 5),
    "16/32/64 x3": NetConfig((16, 32, 64), 3),
    "12/24/48 x3": NetConfig((12, 24, 48), 3),
    "8/16/32 x3": NetConfig((8, 16, 32), 3),
    "8/16/32 x3 + colour skip (shipped lite)": NetConfig((8, 16, 32), 3, color_skip=5),
    "8/16/32 x5": NetConfig((8, 16, 32), 5),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["640x480", "320x240"])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    print("| net | " + " | ".join(f"{w}x{h} p50 ms | fps | GFLOP" for w, h in sizes) + " |")
    print("|---|" + "---:|---:|---:|" * len(sizes))
    with tempfile.TemporaryDirectory() as tmp:
        for label, config in CANDIDATES.items():
            path = Path(tmp) / "net.onnx"
            path.write_bytes(onnx_model_bytes(TransformerNet(config).eval(), fp16=True))
            backend = OrtCpuBackend(path, threads=args.threads)
            cells = []
            for width, height in sizes:
                p50 = float(np.median(time_backend(backend, width, height, args.repeats)))
                gflop = conv_flops(config.to_dict(), width, height) / 1e9
                cells.append(f"{p50:.1f} | {1000 / p50:.1f} | {gflop:.2f}")
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
