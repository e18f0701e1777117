"""The Gatys et al. (2016) optimisation: reference stills and the quality yardstick.

It optimises the pixels of one image to minimise the same PerceptualLoss the
fast nets are trained on, so its loss after N iterations is the bar a fast
net's single forward pass is measured against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from realtime_style import color
from realtime_style.errors import UserError
from realtime_style.images import resize_long_side, to_float
from realtime_style.losses import LossTerms, LossWeights, PerceptualLoss
from realtime_style.torch_utils import available_memory_bytes, image_to_tensor, tensor_to_image

# VGG19 to relu5_1 keeps about 600 floats of activations per input pixel; with
# their gradients and L-BFGS's history, 6 KB a pixel is a safe estimate.
BYTES_PER_PIXEL = 6 * 1024

# L-BFGS here takes fixed unit steps (no line search: PyTorch's strong-Wolfe search stalled on this
# loss, at 54.06 from iteration 25 to 75 in a one-off test). Left alone, such steps go astray after about
# 100 iterations: kodim01 with mosaic's objective at 256 px reached 32.2 at 100, then 93.2 at 175 and
# 34.0 at 300 (bench/gatys_restarts.py). An iterate this much worse than the best so far sends the
# run back to the best image with a fresh memory: 31.6 at 100, 31.0 at 300 (docs/gatys.md, "Long runs").
LBFGS_RESTART_RISE = 0.02


@dataclass
class GatysConfig:
    iters: int = 300               # per pass
    optimizer: str = "lbfgs"       # or "adam"
    lr: float | None = None        # default: 1.0 for L-BFGS, 0.02 for Adam
    size: int = 512                # long side of the result; 0 keeps the content's size
    style_size: int | None = None  # long side of the style image; default: same as size
    init: str = "content"          # or "noise"
    preserve_color: bool = False
    passes: int = 1                # coarse-to-fine: pass k runs at size / 2**(passes-1-k)
    seed: int = 0
    snapshot_every: int = 0


@dataclass
class GatysResult:
    image: np.ndarray                          # (H, W, 3) float32 in [0, 1]
    history: list[dict[str, float]] = field(default_factory=list)  # losses per iteration, last pass
    restarts: int = 0                          # L-BFGS restarts from the best image, all passes

    @property
    def first(self) -> dict[str, float]:
        return self.history[0]

    @property
    def last(self) -> dict[str, float]:
        return self.history[-1]


def check_fits(height: int, width: int, device: torch.device) -> None:
    """Refuse sizes that would exhaust memory, before allocating anything."""
    need = height * width * BYTES_PER_PIXEL
    have = available_memory_bytes(device)
    if need > 0.8 * have:
        fits = int((0.8 * have / BYTES_PER_PIXEL) ** 0.5)
        raise UserError(f"{width}x{height} is too large for `still` on {device.type}: it needs about "
                        f"{need / 2**30:.1f} GiB and {have / 2**30:.1f} GiB is free; "
                        f"use --size {max(64, fits // 64 * 64)} or smaller")


def run_gatys(content_rgb: np.ndarray, style_rgb: np.ndarray, loss_fn: PerceptualLoss,
              config: GatysConfig, device: torch.device,
              on_snapshot: Callable[[int, np.ndarray], None] | None = None,
              progress: bool = True) -> GatysResult:
    """Stylize ``content_rgb`` (uint8 or float HxWx3) in the style of ``style_rgb``."""
    if config.optimizer not in ("lbfgs", "adam"):
        raise UserError(f"unknown optimizer {config.optimizer!r} (lbfgs or adam)")
    if config.init not in ("content", "noise"):
        raise UserError(f"unknown init {config.init!r} (content or noise)")
    content_full = to_float(content_rgb) if content_rgb.dtype == np.uint8 else content_rgb
    style_full = to_float(style_rgb) if style_rgb.dtype == np.uint8 else style_rgb
    final_long = config.size or max(content_full.shape[:2])

    def finish(image_t: torch.Tensor) -> np.ndarray:
        output = tensor_to_image(image_t)
        if config.preserve_color:
            output = color.keep_colors(output, _resized(content_full, max(output.shape[:2])))
        return output

    h, w = content_full.shape[:2]
    check_fits(round(h * final_long / max(h, w)), round(w * final_long / max(h, w)), device)

    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    image: torch.Tensor | None = None
    history: list[dict[str, float]] = []
    restarts = 0
    for pass_index in range(config.passes):
        long_side = max(16, final_long // 2 ** (config.passes - 1 - pass_index))
        content = _resized(content_full, long_side)
        style = _resized(style_full, config.style_size or long_side)
        if config.preserve_color:
            # Style on luminance only: both images turn gray, the colours come back at the end.
            style = color.match_luminance(style, content)
            content = color.luminance_rgb(content)
        content_t = image_to_tensor(content, device)
        if image is None:
            image = (content_t.clone() if config.init == "content"
                     else torch.rand(content_t.shape, generator=generator).to(device))
        else:  # coarse-to-fine: start from the previous pass, upsampled
            image = F.interpolate(image, size=content_t.shape[-2:], mode="bicubic",
                                  align_corners=False).clamp(0, 1)
        label = f"pass {pass_index + 1}/{config.passes} " if config.passes > 1 else ""
        desc = f"{label}{content_t.shape[-1]}x{content_t.shape[-2]}"
        last_pass = pass_index == config.passes - 1
        snapshot = (lambda i, img: on_snapshot(i, finish(img))) if on_snapshot and last_pass else None
        image, history, pass_restarts = _optimise(image, content_t, image_to_tensor(style, device), loss_fn,
                                                  config, desc, snapshot, progress)
        restarts += pass_restarts
    return GatysResult(finish(image), history, restarts)


def _optimise(image: torch.Tensor, content: torch.Tensor, style: torch.Tensor, loss_fn: PerceptualLoss,
              config: GatysConfig, desc: str, on_snapshot, progress: bool
              ) -> tuple[torch.Tensor, list[dict[str, float]], int]:
    """One pass: ``config.iters`` optimiser iterations, one loss evaluation each.

    Returns the best image seen, the number of restarts and, for each n in 0..iters, the loss of
    the best of the first n iterates: what the method has after n iterations, never worse than
    after fewer.
    """
    content_target = loss_fn.content_targets(content)
    style_grams = loss_fn.style_targets(style)
    image = image.detach().clone().requires_grad_(True)

    def new_optimizer() -> torch.optim.Optimizer:
        if config.optimizer == "lbfgs":
            # max_iter=1: each step() is one iteration and one evaluation; the history persists.
            return torch.optim.LBFGS([image], lr=config.lr or 1.0, max_iter=1, history_size=100,
                                     tolerance_grad=0.0, tolerance_change=0.0)
        return torch.optim.Adam([image], lr=config.lr or 0.02)

    optimizer = new_optimizer()
    history: list[dict[str, float]] = []
    terms: list[LossTerms] = []
    best: dict[str, float] = {"total": float("inf")}
    best_image = image.detach().clone()
    restarts = 0

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        losses = loss_fn(image, content_target, style_grams)
        losses.total.backward()
        terms.append(losses)
        return losses.total

    def keep_if_best(loss: dict[str, float], iterate: torch.Tensor) -> None:
        nonlocal best, best_image
        if not np.isfinite(loss["total"]):
            raise UserError("the loss became NaN or inf; lower --lr or the loss weights")
        if loss["total"] < best["total"]:
            best, best_image = loss, iterate
        history.append(best)

    with tqdm(total=config.iters, desc=desc, unit="it", disable=not progress, leave=False) as bar:
        for iteration in range(1, config.iters + 1):
            start = image.detach().clone()
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0.0, 1.0)
            loss = terms.pop().as_floats()  # the loss at the image this step started from
            keep_if_best(loss, start)
            if config.optimizer == "lbfgs" and loss["total"] > (1 + LBFGS_RESTART_RISE) * best["total"]:
                # Fixed-step L-BFGS went astray (its curvature memory no longer fits): back to the
                # best image with a fresh memory.
                with torch.no_grad():
                    image.copy_(best_image)
                optimizer = new_optimizer()
                restarts += 1
            bar.set_postfix(style=f"{best['style']:.3g}", content=f"{best['content']:.3g}",
                            tv=f"{best['tv']:.3g}", restarts=restarts)
            bar.update()
            if on_snapshot and config.snapshot_every and iteration % config.snapshot_every == 0:
                on_snapshot(iteration, best_image)
    with torch.no_grad():  # the last iterate has not been evaluated yet
        keep_if_best(loss_fn(image, content_target, style_grams).as_floats(), image.detach().clone())
    return best_image, history, restarts


def _resized(rgb: np.ndarray, long_side: int) -> np.ndarray:
    if max(rgb.shape[:2]) == long_side:
        return rgb
    return to_float(resize_long_side((rgb * 255 + 0.5).astype(np.uint8), long_side))


def make_still(content_path: str, style_path: str, output_path: str, config: GatysConfig,
               weights: LossWeights, device_name: str = "auto", overwrite: bool = False,
               vgg_path: str | None = None, progress: bool = True) -> GatysResult:
    """`rtstyle still`: check everything that can fail cheaply, then optimise and write atomically."""
    from realtime_style.files import check_output_path
    from realtime_style.images import check_image_suffix, load_image, save_image, to_uint8
    from realtime_style.torch_utils import select_device
    from realtime_style.vgg import load_vgg19

    if config.size < 0 or config.iters < 1 or config.passes < 1 or config.snapshot_every < 0:
        raise UserError("--size and --snapshot-every must be >= 0, --iters and --passes >= 1")
    output = check_output_path(output_path, (content_path, style_path), overwrite)
    check_image_suffix(output)
    snapshot_paths = {}
    if config.snapshot_every:
        for iteration in range(config.snapshot_every, config.iters + 1, config.snapshot_every):
            path = output.with_name(f"{output.stem}_{iteration:05d}{output.suffix}")
            snapshot_paths[iteration] = check_output_path(path, (content_path, style_path), overwrite)
    content = load_image(content_path).rgb
    style = load_image(style_path).rgb
    device = select_device(device_name)
    loss_fn = PerceptualLoss(load_vgg19(vgg_path, device), weights)

    def snapshot(iteration: int, image: np.ndarray) -> None:
        if iteration in snapshot_paths:
            save_image(snapshot_paths[iteration], to_uint8(image))

    result = run_gatys(content, style, loss_fn, config, device, snapshot, progress)
    save_image(output, to_uint8(result.image))
    return result
