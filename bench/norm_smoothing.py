"""Would smoothing instance-norm statistics over time cut flicker? A measurement, not a feature yet.

    cd bench && python norm_smoothing.py ../models/mosaic_lite.onnx --alphas 0 0.8 0.9

Instance norm normalises every frame by its own per-channel mean and variance, so a person
walking through a still scene shifts the statistics of the whole frame and the whole picture is
repainted (docs/temporal.md, "what is left"). Here each norm layer of the net (rebuilt in
PyTorch from the ONNX file) blends its statistics with the previous frame's:
    a = alpha * exp(-(change / tau)^2),  mean = a * previous + (1 - a) * current
(the variance likewise, in the log domain), where ``change`` is how far the statistics moved in
units of the previous standard deviation. Small jitter is smoothed; a cut or a fade (a large
change) is followed at once. Prints, per video, the warping error (bench/temporal.py's measure)
and, for alpha > 0, the mean difference from the per-frame output (how much the look changes).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from temporal import SHARED, VIDEOS, mean_change, read_frames
from torch import nn

from realtime_style.backends import net_from_onnx
from realtime_style.images import load_image, resize_long_side
from realtime_style.temporal import warping_error


class SmoothedNorm(nn.Module):
    """InstanceNorm2d (affine) whose statistics follow the previous frame's when they barely moved."""

    def __init__(self, norm: nn.InstanceNorm2d, alpha: float, tau: float):
        super().__init__()
        self.norm, self.alpha, self.tau = norm, alpha, tau
        self.mean: torch.Tensor | None = None
        self.log_var: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean((2, 3), keepdim=True)
        log_var = torch.log(x.var((2, 3), keepdim=True, unbiased=False) + self.norm.eps)
        if self.mean is not None and self.alpha > 0:
            change = ((mean - self.mean).abs() / torch.exp(self.log_var / 2)).mean() + \
                (log_var - self.log_var).abs().mean()
            a = self.alpha * torch.exp(-(change / self.tau) ** 2)
            mean = a * self.mean + (1 - a) * mean
            log_var = a * self.log_var + (1 - a) * log_var
        self.mean, self.log_var = mean, log_var
        y = (x - mean) * torch.exp(-log_var / 2)
        return y * self.norm.weight[None, :, None, None] + self.norm.bias[None, :, None, None]


def smoothed_net(model: str, alpha: float, tau: float) -> nn.Module:
    net, _ = net_from_onnx(model)
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(module, name, SmoothedNorm(child, alpha, tau))
    return net.eval()


def stylize_clip(net: nn.Module, frames: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    with torch.no_grad():
        for frame in frames:
            x = torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float() / 255
            out.append((net(x)[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.8, 0.9])
    parser.add_argument("--tau", type=float, default=0.5)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--max-size", type=int, default=320)
    args = parser.parse_args()

    clips = {name: read_frames(SHARED / "video" / name, args.frames, args.max_size) for name in VIDEOS}
    still = resize_long_side(load_image(SHARED / "eval" / "kodak24" / "kodim05.png").rgb, args.max_size)
    rng = np.random.default_rng(0)
    noisy = [np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(10)]
    print(f"| alpha (tau {args.tau}) | " + " | ".join(VIDEOS) + " | still scene |")
    print("|---|" + "---:|" * (len(VIDEOS) + 1))
    per_frame: dict[str, list[np.ndarray]] = {}
    for alpha in args.alphas:
        cells = []
        for name, frames in clips.items():
            out = stylize_clip(smoothed_net(args.model, alpha, args.tau), frames)
            cell = f"{warping_error(frames, out).output:.2f}"
            if alpha == 0:
                per_frame[name] = out
            elif name in per_frame:
                moved = np.mean([np.abs(o.astype(np.float32) - p).mean() for o, p in zip(out, per_frame[name])])
                cell += f" (look {moved:.1f})"
            cells.append(cell)
        cells.append(f"{mean_change(stylize_clip(smoothed_net(args.model, alpha, args.tau), noisy)):.2f}")
        print(f"| {alpha:g} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
