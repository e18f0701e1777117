"""How low can a style net take the objective on a photo it is fit to alone?

    python bench/one_photo_fit.py --photo PHOTO --model models/mosaic.onnx --steps 400
    python bench/one_photo_fit.py --photo PHOTO --widen --steps 400     # every layer twice as wide
    python bench/one_photo_fit.py --photo PHOTO --deepen 5 --steps 400  # 5 more residual blocks

The shipped standard nets score 2-4x the Gatys optimisation's objective after 100 iterations
(docs/quality.md). This asks whether that gap is training (steps, data, recipe) or the net:
start from a shipped net and train it on one photo only, whole, at 512 px on the long side,
on exactly the objective quality.py measures (the model's own loss weights). Generalisation no
longer matters, so what the net still cannot reach is beyond what it can represent or what
Adam finds for it. --widen and --deepen grow the starting net without changing its output
(copies of every channel with the next layer's weights halved; residual blocks whose last
norm starts at zero), so a bigger net starts where the shipped one is.

Prints the objective's terms on the photo every 25 steps (the net in eval mode, fp32 VGG);
training runs VGG under bf16 autocast as tools/train.py does on such CPUs. Use a photo that
is not one of the Kodak evaluation photos. With --gatys-iters N, runs the Gatys L-BFGS
optimisation on the same photo first and prints its terms at iterations 10, 50 and N.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import torch
from out_of_range import out_of_range
from temporal import ROOT, SHARED

from realtime_style.backends import net_from_onnx
from realtime_style.errors import UserError
from realtime_style.gatys import GatysConfig, run_gatys
from realtime_style.images import load_image, resize_long_side, save_image, to_uint8
from realtime_style.losses import LossWeights, PerceptualLoss
from realtime_style.torch_utils import image_to_tensor, tensor_to_image
from realtime_style.transformer_net import NetConfig, TransformerNet
from realtime_style.vgg import load_vgg19

EVAL_EVERY = 25
FINAL_LR_FRACTION = 0.1   # cosine decay to this fraction of --lr, as tools/train.py
SYMMETRY_NOISE = 1e-3     # widened copies get this x the weights' std of noise, or they stay copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "mosaic.onnx",
                        help="the starting net; its metadata gives the loss weights and the painting")
    parser.add_argument("--paintings", type=Path, default=SHARED / "styles")
    parser.add_argument("--long-side", type=int, default=512)
    parser.add_argument("--widen", action="store_true", help="double every layer's channels")
    parser.add_argument("--deepen", type=int, default=0, help="add this many residual blocks")
    parser.add_argument("--content-weight", type=float,
                        help="instead of the model's own: the objective with another balance (both sides)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gatys-iters", type=int, default=0)
    parser.add_argument("--save", type=Path, help="write the fit net's output here")
    args = parser.parse_args()
    if args.steps < 1 or args.deepen < 0 or args.gatys_iters < 0:
        parser.error("--steps must be at least 1, --deepen and --gatys-iters at least 0")

    torch.manual_seed(args.seed)
    try:
        net, meta = net_from_onnx(args.model)
        painting = load_image(args.paintings / f"{meta['style_image']}.jpg").rgb
        photo = resize_long_side(load_image(args.photo).rgb, args.long_side)
    except UserError as exc:
        parser.error(str(exc))
    weights = LossWeights.from_dict(json.loads(meta["loss"]))
    if args.content_weight is not None:
        weights = dataclasses.replace(weights, content=args.content_weight)
    loss_fn = PerceptualLoss(load_vgg19(), weights)
    style_size = int(json.loads(meta["train_config"]).get("style_size", 512))
    grams = loss_fn.style_targets(image_to_tensor(resize_long_side(painting, style_size)))
    x = image_to_tensor(photo)
    content = loss_fn.content_targets(x)

    if args.gatys_iters:
        config = GatysConfig(iters=args.gatys_iters, size=args.long_side, style_size=style_size)
        result = run_gatys(photo, painting, loss_fn, config, torch.device("cpu"), progress=False)
        for n in sorted({10, 50, args.gatys_iters} & set(range(1, args.gatys_iters + 1))):
            # indexed as bench/quality.py does, so the two print the same values
            print(f"Gatys, {n} iterations:", rounded(result.history[min(n, len(result.history) - 1)]),
                  flush=True)
    if args.widen:
        net = widened(net, torch.Generator().manual_seed(args.seed))
    if args.deepen:
        net = deepened(net, args.deepen)
    print(f"{sum(t.numel() for t in net.parameters()):,} parameters, {net.config}", flush=True)

    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    start = time.time()
    for step in range(1, args.steps + 1):
        cosine = 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)
        net.train()
        output = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(output, content, grams).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % EVAL_EVERY == 0 or step == 1:
            net.eval()
            with torch.no_grad():
                terms = loss_fn(net(x), content, grams).as_floats()
                terms["out_of_range"] = out_of_range(net, x)
            print(step, f"{time.time() - start:.0f}s", rounded(terms), flush=True)
    if args.save:
        net.eval()
        with torch.no_grad():
            save_image(args.save, to_uint8(tensor_to_image(net(x))))


def widened(net: TransformerNet, generator: torch.Generator) -> TransformerNet:
    """The same function with twice the channels: each channel copied, the next layer's weights halved."""
    config = net.config
    wide = TransformerNet(NetConfig(tuple(2 * c for c in config.channels), config.residual_blocks,
                                    config.color_skip))
    state = wide.state_dict()
    for key, value in net.state_dict().items():
        grown = value.clone()
        if grown.ndim >= 1 and state[key].shape[0] == 2 * grown.shape[0]:
            grown = torch.cat([grown, grown], 0)
        if grown.ndim == 4 and state[key].shape[1] == 2 * grown.shape[1]:
            grown = torch.cat([grown, grown], 1) / 2
        if grown.ndim == 4:
            grown = grown + SYMMETRY_NOISE * grown.std() * torch.randn(grown.shape, generator=generator)
        state[key] = grown
    wide.load_state_dict(state)
    return wide


def deepened(net: TransformerNet, blocks: int) -> TransformerNet:
    """The same function with more residual blocks: the new ones' last norm starts at zero."""
    config = net.config
    deep = TransformerNet(NetConfig(config.channels, config.residual_blocks + blocks, config.color_skip))
    deep.load_state_dict(net.state_dict(), strict=False)
    with torch.no_grad():
        for block in deep.residuals[config.residual_blocks:]:
            block.norm2.weight.zero_()
            block.norm2.bias.zero_()
    return deep


def rounded(terms: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in terms.items()}


if __name__ == "__main__":
    main()
