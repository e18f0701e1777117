#!/usr/bin/env python
"""Train a fast style net (Johnson et al. 2016) for one style image.

    python tools/train.py --style ../shared/data/styles/mosaic.jpg --name mosaic \\
        --data ../shared/data/train --steps 4000
    python tools/train.py --name mosaic --resume            # after Ctrl-C, a crash or preemption
    torchrun --standalone --nproc_per_node 2 tools/train.py ...   # one process per GPU (gloo on CPU)

Everything lands in --out-dir (default runs/NAME): checkpoint.pt, loss.csv,
loss.png, config.json, previews/step_NNNNNN.png and, if TensorBoard is
installed, tensorboard/. Ctrl-C or SIGTERM finishes the current step, saves a
checkpoint and exits; --resume continues exactly where it stopped, because
each step's batch is a function of (seed, step) only (realtime_style.dataset).
Precision: VGG, most of the compute, runs under autocast (bf16 on CPUs that have it); the
style net trains in float32 (see autocast_dtype for the measurements).

The script reads top to bottom: options, inputs, model, data, the loop, wrap-up.
Helpers (logging, plots, previews) follow main().
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from realtime_style.backends import net_from_onnx
from realtime_style.checkpoint import (capture_rng, check_arch, grows_color_skip, load_checkpoint, plain,
                                       restore_rng, save_checkpoint, training_stages)
from realtime_style.dataset import (ImageFolderDataset, StepBatchSampler, files_digest, ignore_interrupts,
                                    load_previews, scan_images)
from realtime_style.errors import UserError
from realtime_style.export import export_checkpoint
from realtime_style.images import load_image, resize_long_side, save_image, to_uint8
from realtime_style.losses import (CONTENT_LAYER, STYLE_WEIGHT, TV_WEIGHT, LossWeights,
                                   PerceptualLoss)
from realtime_style.stability import MODES as STABILITY_MODES, stability_loss
from realtime_style.torch_utils import describe_hardware, image_to_tensor, select_device
from realtime_style.transformer_net import ARCHITECTURES, COLOR_SKIP_START, COLOR_SKIP_START_RANGE, build_net
from realtime_style.vgg import load_vgg19
from realtime_style.weights import file_digest

PROG = "train.py"
CHECKPOINT = "checkpoint.pt"     # inside the out-dir; always the latest good state
PREVIEW_PHOTOS = 4               # the first readable photos of --data, held out of training
DEFAULT_STEPS = 4000
# channels_last on the CPU: on a 2-core AVX-512 CPU (standard net, batch 4, 256 px) 2% faster with the
# default bf16 VGG (3.59 vs 3.66 s/step) and 4% slower in float32 (5.00 vs 4.80, --no-amp only); on a
# 2-core AVX2 CPU, where VGG runs in float32 by default, 16% faster (4.9 vs 5.7 s/step at 128 px).
CPU_CHANNELS_LAST = True

# A fast net starts from random weights, not from the photo as the Gatys method does, so its
# content term must be stronger: with the Gatys default (2e-6) the nets learned flat colour with
# blobs of paint and no photo; 1e-4 kept the photo (docs/training.md, "Choosing the content weight").
TRAIN_CONTENT_WEIGHT = 1e-4

# Weight of the stability loss (realtime_style/stability.py): stylizing a slightly moved, noisy photo
# must equal moving the stylized photo. Chosen by measuring (docs/temporal.md): fine-tuning the lite
# mosaic 300 steps with weight 2500 lowered the warping error 8-42 % on the four test videos and the
# still-scene change 27 %, for a Kodak objective 5 % higher; 5000 gained more (17-50 %, 35 %) for 10 %,
# the whole budget; the "noise" and "local" modes gained less than "motion" at the same price.
TEMPORAL_WEIGHT = 2500.0
TEMPORAL_MODE = "motion"
# Images of each batch the stability term is taken on (0: all of them). Its extra pass of the style net is
# most of its cost: on a 2-core Xeon with AMX a standard-net step at batch 4, 256 px took 6.16 s with the term
# on all four images, 3.85 s on two, 3.22 on one and 2.86 without it (interleaved runs). On 300-step
# fine-tunes of the standard and the lite mosaic, one image (two seeds) was as steady, for the same
# objective, as four, within the spread between seeds (docs/temporal.md, "The term on part of the batch").
TEMPORAL_BATCH = 1

DEFAULTS = {
    "style": None, "name": None, "data": None, "steps": None, "epochs": None,
    "batch_size": 4, "size": 256, "style_size": 512, "lr": 1e-3,
    "content_weight": TRAIN_CONTENT_WEIGHT, "style_weight": STYLE_WEIGHT, "tv_weight": TV_WEIGHT,
    "content_layer": CONTENT_LAYER, "temporal_weight": TEMPORAL_WEIGHT,
    "temporal_mode": TEMPORAL_MODE, "temporal_batch": TEMPORAL_BATCH, "arch": "standard", "seed": 0, "workers": 2,
    "device": "auto", "out_dir": None,
    "checkpoint_every": 200, "preview_every": 200, "resume": None, "overwrite": False,
    "amp": True, "channels_last": None, "models_dir": "models", "export": True,
    "display_name": None, "style_credit": None, "style_license": None,
    "lr_schedule": "constant", "init_from": None, "compile": False, "color_skip_start": None, "warmup_steps": 0,
}
# A resumed run keeps these from its checkpoint; giving a different value is an error.
RUN_DEFINING = ("name", "arch", "batch_size", "size", "style_size", "lr", "content_weight", "content_layer",
                "style_weight", "tv_weight", "temporal_weight", "temporal_mode", "temporal_batch", "seed",
                "lr_schedule", "init_from", "color_skip_start", "warmup_steps")
# What a checkpoint written before an option existed was trained with, where that differs from today's default.
BEFORE_OPTION = {"temporal_batch": 0}
# --lr-schedule cosine ends at this fraction of --lr.
FINAL_LR_FRACTION = 0.1
# A run whose mean loss over BREAKDOWN_WINDOW steps rises above BREAKDOWN_FACTOR times its best such
# mean has broken down and stops, keeping its last checkpoint: on an H200 (2026-12-04) candy's run at
# --lr 1e-3 went from 105 over steps 1,400-1,499 to 202, 251 and 726 over the hundreds from 2,700,
# and its checkpoint of step 3,189, saved at the deadline, painted nothing useful. This factor stops
# it at step 2,808; starry_night's run beside it rose 1.36x for a hundred steps and recovered.
BREAKDOWN_WINDOW, BREAKDOWN_FACTOR = 100, 2.0
RISING_FACTOR = 1.25  # above this (and below the breakdown), periodic checkpoints wait
# --init-from runs warm up over this many steps unless told otherwise: on 300-step lite fine-tunes of
# six styles it was as good or better on every one (docs/training.md, "Shipped (2026-12-03)").
INIT_FROM_WARMUP_STEPS = 30


def build_parser() -> argparse.ArgumentParser:
    """Every default is None here, so that main() can tell what the user actually typed."""
    d = DEFAULTS
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--style", help="style image (required unless --resume)")
    p.add_argument("--name", help="model name: models/NAME.onnx, runs/NAME (required unless --resume)")
    p.add_argument("--data", nargs="+", metavar="DIR", help="folders of training photos (searched recursively)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help=f"total optimizer steps (default {DEFAULT_STEPS})")
    length.add_argument("--epochs", type=float, help="total passes over the data, instead of --steps")
    p.add_argument("--batch-size", type=int, help=f"images per step and process (default {d['batch_size']})")
    p.add_argument("--size", type=int, help=f"training crop side in pixels (default {d['size']})")
    p.add_argument("--style-size", type=int, help=f"style image long side (default {d['style_size']})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d['lr']})")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant, or cosine decay to a tenth of --lr at the last step (default constant)")
    p.add_argument("--warmup-steps", type=int, metavar="N",
                   help="raise the rate linearly over the first N steps, so that Adam's first full-rate steps do "
                        f"not knock a trained net back (default {INIT_FROM_WARMUP_STEPS} with --init-from, "
                        "else 0)")
    p.add_argument("--init-from", metavar="CKPT_OR_ONNX",
                   help="start from the net of another run's checkpoint, or of an exported model such as a "
                        "shipped style (same --arch), instead of random weights, e.g. to raise the style weight "
                        "of a trained net (docs/training.md)")
    p.add_argument("--color-skip-start", type=float, metavar="K",
                   help="nets with a colour skip (lite): start its matrix at K x the photo's chroma, replacing "
                        "what --init-from had; lower for paintings whose palette is far from a photo's "
                        f"(default: {COLOR_SKIP_START} for a new skip, else the starting net's)")
    p.add_argument("--content-weight", type=float, help=f"default {d['content_weight']}")
    p.add_argument("--style-weight", type=float, help=f"default {d['style_weight']}")
    p.add_argument("--tv-weight", type=float, help=f"default {d['tv_weight']}")
    p.add_argument("--content-layer", help=f"VGG19 layer of the content loss (default {d['content_layer']})")
    p.add_argument("--temporal-weight", type=float,
                   help=f"stability under small motion and noise, against flicker in video; 0 turns it off "
                        f"(default {d['temporal_weight']})")
    p.add_argument("--temporal-mode", choices=STABILITY_MODES,
                   help="motion: small random motion plus noise; noise: noise alone; local: a pasted patch "
                        "plus noise, the output away from it must not change "
                        f"(default {d['temporal_mode']})")
    p.add_argument("--temporal-batch", type=int, metavar="N",
                   help="take the stability term on the first N images of each batch only, for speed; 0 takes "
                        f"it on all (default {d['temporal_batch']})")
    p.add_argument("--arch", choices=sorted(ARCHITECTURES), help=f"default {d['arch']}")
    p.add_argument("--seed", type=int, help=f"fixes init, data order and crops (default {d['seed']})")
    p.add_argument("--workers", type=int, help=f"DataLoader worker processes (default {d['workers']})")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--out-dir", help="checkpoints, logs and previews (default runs/NAME)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help=f"default {d['checkpoint_every']}")
    p.add_argument("--preview-every", type=int, metavar="N", help=f"default {d['preview_every']}")
    p.add_argument("--resume", nargs="?", const="", metavar="CKPT",
                   help=f"continue from CKPT (default OUT_DIR/{CHECKPOINT}) with its settings")
    p.add_argument("--overwrite", action="store_const", const=True,
                   help="replace an existing run folder and model of this name")
    p.add_argument("--no-amp", dest="amp", action="store_const", const=False,
                   help="run the loss network in float32 too (default: VGG under bf16 autocast on CPUs with "
                        "AVX-512 BF16 or AMX, "
                        "bf16 or fp16 on CUDA; the style net always trains in float32)")
    p.add_argument("--models-dir", help=f"where the ONNX model is written (default {d['models_dir']})")
    p.add_argument("--no-export", dest="export", action="store_const", const=False,
                   help="only train; export later with `rtstyle export CKPT OUT.onnx`")
    p.add_argument("--display-name", help="the style's name as users see it (default: from --name)")
    p.add_argument("--style-credit", help="the painting's artist, title and source (stored in the model)")
    p.add_argument("--style-license", help="the painting's licence (stored in the model)")
    p.add_argument("--compile", action="store_const", const=True,
                   help="compile the style net with torch.compile: faster steps after a minute or so of compiling "
                        "(on a CPU it needs a C++ compiler; docs/training.md has the timings)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="NHWC memory layout (default: on for CUDA and "
                        f"{'on' if CPU_CHANNELS_LAST else 'off'} for the CPU; docs/training.md has the timings)")
    return p


def main(argv: list[str] | None = None) -> int:
    # ---------------------------------------------------------------- options
    explicit = {k: v for k, v in vars(build_parser().parse_args(argv)).items() if v is not None}
    resuming = "resume" in explicit
    checkpoint = None
    if resuming:
        if explicit.get("overwrite"):
            raise UserError("--resume continues a run and --overwrite starts one afresh: pick one")
        ckpt_path = resume_path(explicit)
        checkpoint = load_checkpoint(ckpt_path)
        config = merge_resumed_config(checkpoint, explicit, ckpt_path)
    else:
        for key in ("style", "name", "data"):
            if key not in explicit:
                raise UserError(f"--{key} is required (or --resume a run)")
        config = {**DEFAULTS, **explicit}
        if config["init_from"] and "warmup_steps" not in explicit:
            config["warmup_steps"] = INIT_FROM_WARMUP_STEPS
        config["out_dir"] = str(config["out_dir"] or Path("runs") / config["name"])
    # Absolute input paths, so that --resume works from any folder.
    config["style"] = str(Path(config["style"]).absolute())
    config["data"] = [str(Path(d).absolute()) for d in config["data"]]
    check_values(config)
    out_dir = Path(config["out_dir"])

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    master = rank == 0
    log = print if master else (lambda *a, **k: None)

    # ------------------------------------------- inputs, checked before anything is written
    style_path = Path(config["style"])
    try:
        style_rgb = load_image(style_path).rgb
    except UserError as exc:
        raise UserError(f"style image {exc}") from None
    style_sha256 = file_digest(style_path)
    if checkpoint is not None and style_sha256 != checkpoint["style_sha256"]:
        raise UserError(f"style image {style_path} is not the one checkpoint was trained on "
                        "(sha256 differs); pass --style with the original file")
    initial_weights, grown = None, False
    if config["init_from"] and not resuming:
        config["init_from"] = str(Path(config["init_from"]).absolute())
        start = starting_net(Path(config["init_from"]))
        if start["arch"] != config["arch"]:
            raise UserError(f"--init-from {config['init_from']} holds a {start['arch']!r} net, not "
                            f"{config['arch']!r}: pass --arch {start['arch']} to start from it")
        grown = grows_color_skip(start["net_config"], config["arch"])
        if not grown:
            check_arch(start, config["arch"], Path(config["init_from"]))  # same name, but has it changed since?
        initial_weights = start["model"]
        # The steps behind the starting net, so the model's metadata can state its whole training.
        config["earlier_steps"] = start["steps"]
        config["earlier_stages"] = start["stages"]
    good_files, bad_files = scan_images(config["data"])
    held_out = good_files[:min(PREVIEW_PHOTOS, len(good_files) // 2)]
    train_files = good_files[len(held_out):]
    data_digest = files_digest(train_files)
    if not resuming:
        model_path = Path(config["models_dir"]) / f"{config['name']}.onnx" if config["export"] else None
        check_fresh_outputs(out_dir, model_path, config["overwrite"])

    # --------------------------------------------------------- device, processes
    device = select_device(config["device"])
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    channels_last = config["channels_last"]
    if channels_last is None:
        channels_last = device.type == "cuda" or (device.type == "cpu" and CPU_CHANNELS_LAST)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    amp_dtype = autocast_dtype(device) if config["amp"] else None
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    # Every machine this run has trained on (a resumed run may move), for the model's metadata.
    hardware = describe_hardware(device, amp_dtype) + (f" x {world_size} processes" if world_size > 1 else "")
    config["hardware"] = list(dict.fromkeys([*config.get("hardware", []), hardware]))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick its fastest kernels

    # ------------------------------------------------------- loss and style target
    weights = LossWeights(content=config["content_weight"], style=config["style_weight"],
                          tv=config["tv_weight"], content_layer=config["content_layer"])
    loss_fn = PerceptualLoss(load_vgg19(device=device), weights).to(memory_format=memory_format)
    style = image_to_tensor(resize_long_side(style_rgb, config["style_size"]), device)
    style_grams = loss_fn.style_targets(style.contiguous(memory_format=memory_format))  # once, in fp32

    # ---------------------------------------------------------- model and optimizer
    torch.manual_seed(config["seed"])
    np.random.seed(config["seed"] % 2**32)
    net = build_net(config["arch"]).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(net.parameters(), lr=config["lr"])
    scaler = torch.amp.GradScaler("cuda" if device.type == "cuda" else "cpu", enabled=amp_dtype == torch.float16)
    step = 0
    if initial_weights is not None:
        net.load_state_dict(initial_weights, strict=not grown)  # grown: the colour skip keeps its start value
    if config["color_skip_start"] is not None:
        net.reset_color_skip(config["color_skip_start"])
    if checkpoint is not None:
        net.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if checkpoint.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(checkpoint["scaler"])
        restore_rng(checkpoint["rng"])
        step = checkpoint["step"]
        if checkpoint.get("data_digest") not in (None, data_digest):
            log("warning: the training files differ from the checkpoint's; the data order will not "
                "match an uninterrupted run")
    model = net
    if world_size > 1:
        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if config["compile"]:
        model = compiled(model, device)

    # ------------------------------------------------------------------ data
    global_batch = config["batch_size"] * world_size
    total_steps = config["steps"] or math.ceil(config["epochs"] * len(train_files) / global_batch)
    sampler = StepBatchSampler(len(train_files), config["batch_size"], config["seed"], step, total_steps,
                               rank, world_size)
    loader = DataLoader(ImageFolderDataset(train_files, config["size"]), batch_sampler=sampler,
                        num_workers=config["workers"], pin_memory=device.type == "cuda",
                        worker_init_fn=ignore_interrupts if config["workers"] else None)
    previews = load_previews(held_out, config["size"])
    previews = previews.to(device) if previews is not None else None

    # ------------------------------------------------------------------ outputs
    ckpt_file = out_dir / CHECKPOINT
    losses_log = tensorboard = None
    if master:
        out_dir.mkdir(parents=True, exist_ok=True)
        if config["overwrite"]:
            remove_run_files(out_dir)
        (out_dir / "previews").mkdir(exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        losses_log = LossLog(out_dir / "loss.csv", resume_at=step if resuming else None)
        tensorboard = open_tensorboard(out_dir / "tensorboard", step if resuming else None)

    def make_checkpoint() -> dict:
        return {"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler.is_enabled() else None, "step": step,
                "rng": capture_rng(), "arch": config["arch"], "net_config": ARCHITECTURES[config["arch"]].to_dict(),
                "loss_weights": weights.to_dict(), "config": config, "style_name": style_path.stem,
                "style_sha256": style_sha256, "data_digest": data_digest}

    log(f"{config['name']}: {config['arch']} net, style {style_path.name} at {style.shape[-1]}x{style.shape[-2]}, "
        f"{len(train_files)} training photos ({len(held_out)} more held out for previews), "
        f"{config['size']} px crops, batch {config['batch_size']} x {world_size} process(es), "
        f"steps {step} -> {total_steps}, lr {config['lr']:g} {config['lr_schedule']}"
        f"{', warm-up %d steps' % config['warmup_steps'] if config['warmup_steps'] else ''}"
        f"{', starting from ' + config['init_from'] if initial_weights is not None else ''}"
        f"{' (its colour skip added)' if initial_weights is not None and grown else ''}"
        f"{', colour skip started at %g' % config['color_skip_start'] if config['color_skip_start'] is not None else ''}"
        f", {device.type}"
        f"{', VGG in ' + str(amp_dtype).removeprefix('torch.') if amp_dtype else ', float32'}"
        f"{', channels_last' if channels_last else ''}"
        f"{', style net compiled' if config['compile'] else ''}")
    if bad_files:
        log(f"skipped {len(bad_files)} unreadable files: {', '.join(map(str, bad_files[:3]))}"
            f"{' ...' if len(bad_files) > 3 else ''}")

    # ------------------------------------------------------------------ the loop
    stop = StopRequest()
    bar = tqdm(total=total_steps, initial=step, disable=not master, unit="step", dynamic_ncols=True)
    batches = iter(loader)
    decode_failures = 0
    last_saved = step if resuming else None
    loss_watch = LossWatch()
    images_per_s = 0.0
    tick = time.perf_counter()
    while step < total_steps:
        images, failures = next(batches)
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        output = model(images)  # the style net itself stays fp32: in bf16 it learned measurably worse
        with autocast():        # VGG, most of the compute, runs in reduced precision
            terms = loss_fn(output, loss_fn.content_targets(images), style_grams)
        temporal = torch.zeros((), device=device)
        if config["temporal_weight"]:
            # Its own generator, seeded by the step, so a resumed run draws the same motions.
            motions = torch.Generator().manual_seed(config["seed"] * 1_000_003 + step)
            temporal = config["temporal_weight"] * stability_loss(model, images, output, motions,
                                                                  config["temporal_mode"],
                                                                  config["temporal_batch"] or None)
        # One all-reduce carries the logged losses, the failure count and the stop request, so that
        # every process sees the same numbers and leaves the loop at the same step.
        stats = torch.stack([terms.content.detach(), terms.style.detach(), terms.tv.detach(),
                             temporal.detach()]).float()
        stats = torch.cat([stats, torch.tensor([float(failures.sum()), float(stop.signal is not None)],
                                               device=device)])
        if world_size > 1:
            dist.all_reduce(stats)
            stats[:4] /= world_size
        content, style_loss, tv, temporal_loss, failed, stopping = stats.tolist()
        total = content + style_loss + tv + temporal_loss
        if not math.isfinite(total):
            bar.close()
            kept = f"{ckpt_file} (step {last_saved}) is kept" if last_saved is not None else "no checkpoint was saved"
            raise UserError(f"the loss became {total} at step {step + 1} (content {content:.4g}, style "
                            f"{style_loss:.4g}, tv {tv:.4g}); stopped, {kept}. Try a lower --lr")
        if loss_watch.add(total):
            bar.close()
            if last_saved is None:
                kept, advice = "no checkpoint was saved", "Try a lower --lr"
            else:
                kept = f"{ckpt_file} (step {last_saved}) is kept"
                advice = f"Go on at a lower rate in a new run: --init-from {ckpt_file} --lr {config['lr'] / 2:g}"
            raise UserError(f"the loss broke down at step {step + 1}: {loss_watch.mean:.4g} on average over the "
                            f"last {loss_watch.window} steps, against {loss_watch.best:.4g} at best; stopped, {kept}. "
                            + advice)
        optimizer.zero_grad(set_to_none=True)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, total_steps)
        scaler.scale(terms.total + temporal).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        decode_failures += int(failed)

        now = time.perf_counter()
        images_per_s, tick = global_batch / (now - tick), now
        if master:
            losses_log.write(step, content, style_loss, tv, temporal_loss, total, images_per_s)
            if tensorboard:
                for key, value in (("content", content), ("style", style_loss), ("tv", tv),
                                   ("temporal", temporal_loss), ("total", total)):
                    tensorboard.add_scalar(f"loss/{key}", value, step)
                tensorboard.add_scalar("images_per_s", images_per_s, step)
            bar.set_postfix_str(f"content {content:.3g} style {style_loss:.3g} tv {tv:.3g} "
                                f"temporal {temporal_loss:.3g} total {total:.3g} | {images_per_s:.1f} img/s", refresh=False)
            bar.update()
            if previews is not None and (step % config["preview_every"] == 0 or step == total_steps):
                grid = save_preview(net, previews, out_dir / "previews" / f"step_{step:06d}.png", memory_format)
                if tensorboard:
                    tensorboard.add_image("preview", grid, step, dataformats="HWC")
            # A periodic save waits while the loss is well above its best (a breakdown may be starting:
            # the checkpoint from before it is the one to keep); the last save and a stop's always happen.
            periodic = step % config["checkpoint_every"] == 0 and not loss_watch.rising
            if periodic or step == total_steps or stopping:
                if not all(torch.isfinite(p).all() for p in net.parameters()):  # never save a broken net
                    kept = f"{ckpt_file} (step {last_saved}) is kept" if last_saved is not None else "nothing saved"
                    raise UserError(f"the weights became NaN/inf at step {step}; stopped, {kept}. Try a lower --lr")
                save_checkpoint(ckpt_file, make_checkpoint())
                last_saved = step
        if stopping:
            break
    bar.close()
    del batches  # shut the loader's workers down before the slow wrap-up

    # ------------------------------------------------------------------ wrap-up
    if world_size > 1:
        dist.barrier()  # nobody exits (and so gets the rest killed by torchrun) before rank 0 has saved
        dist.destroy_process_group()
    if decode_failures:
        log(f"{decode_failures} samples came from files that failed to decode and were replaced by other "
            "images (a damaged file counts each time it is drawn)")
    if master:
        losses_log.close()
        if tensorboard:
            tensorboard.close()
        plot = plot_losses(out_dir / "loss.csv", out_dir / "loss.png")
        if plot:
            log(f"loss plot: {plot}")
    if stop.signal is not None:
        log(f"stopped by {signal.Signals(stop.signal).name} at step {step}; checkpoint saved to {ckpt_file}; "
            f"continue with: python tools/train.py --resume {ckpt_file}")
        return 128 + stop.signal
    log(f"done: step {step}, checkpoint {ckpt_file}")
    if master and config["export"]:
        model_path = Path(config["models_dir"]) / f"{config['name']}.onnx"
        model_path.parent.mkdir(parents=True, exist_ok=True)
        # A resumed run replaces the model its earlier part exported; a new run checked up front.
        report = export_checkpoint(ckpt_file, model_path, overwrite=True)
        log(f"model: {report.path} ({report.precision}, {report.size_bytes / 1e6:.1f} MB, "
            f"{report.min_psnr_db:.1f} dB PSNR against the fp32 net)")
    return 0


# ====================================================================== helpers


def starting_net(path: Path) -> dict:
    """What --init-from starts from: a run's checkpoint, or an exported model (a shipped style).

    Returns arch, net_config, the state dict, and the steps and stages (realtime_style.checkpoint.training_stages)
    already behind the net.
    """
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise UserError(f"--init-from {path} does not exist")
        net, metadata = net_from_onnx(path)
        steps = int(metadata.get("train_steps_total") or metadata.get("train_steps") or 0)
        if metadata.get("train_stages"):
            stages = json.loads(metadata["train_stages"])
        else:  # a model exported before stages were recorded: its whole training as one stage
            hardware = metadata.get("train_hardware_total") or metadata.get("train_hardware") or "unknown"
            stages = [{"style": metadata.get("display_name") or path.stem, "steps": steps, "hardware": hardware}]
        return {"arch": metadata.get("arch", "?"), "net_config": plain(net.config.to_dict()),
                "model": net.state_dict(), "steps": steps, "stages": stages}
    checkpoint = load_checkpoint(path)
    steps = int(checkpoint["step"]) + int(checkpoint["config"].get("earlier_steps", 0))
    return {"arch": checkpoint["arch"], "net_config": checkpoint["net_config"], "model": checkpoint["model"],
            "steps": steps, "stages": training_stages(checkpoint["config"], int(checkpoint["step"]))}


def resume_path(explicit: dict) -> Path:
    """--resume CKPT, or the checkpoint in --out-dir, or in runs/NAME."""
    if explicit["resume"]:
        return Path(explicit["resume"])
    if "out_dir" in explicit:
        return Path(explicit["out_dir"]) / CHECKPOINT
    if "name" in explicit:
        return Path("runs") / explicit["name"] / CHECKPOINT
    raise UserError("--resume needs a checkpoint path, --out-dir or --name to find one")


def merge_resumed_config(checkpoint: dict, explicit: dict, path: Path) -> dict:
    """The checkpoint's settings, with the options that do not change the result taken from the command line."""
    saved = {**BEFORE_OPTION, **checkpoint["config"]}
    if "arch" in explicit:
        check_arch(checkpoint, explicit["arch"], path)
    else:
        check_arch(checkpoint, saved["arch"], path)
    for key in RUN_DEFINING:
        if key in explicit and explicit[key] != saved.get(key, DEFAULTS[key]):
            raise UserError(f"--{key.replace('_', '-')} {explicit[key]}: {path} was trained with "
                            f"{saved.get(key, DEFAULTS[key])}, and a resumed run keeps its settings")
    config = {**DEFAULTS, **saved, **explicit, "resume": str(path), "overwrite": False}
    if "steps" in explicit or "epochs" in explicit:
        config["epochs" if "steps" in explicit else "steps"] = None
    config["out_dir"] = str(explicit.get("out_dir") or path.parent)
    return config


def learning_rate(config: dict, step: int, total_steps: int) -> float:
    """The rate for step ``step`` (0-based). Cosine decay settles the net at the end of a run; at a
    constant 1e-3 a 128 px mosaic run collapsed past 2,000 steps (docs/training.md). A warm-up
    spares a trained net Adam's first steps, which move every weight by about the full rate."""
    rate = config["lr"]
    if config["lr_schedule"] == "cosine":
        final = config["lr"] * FINAL_LR_FRACTION
        rate = final + (config["lr"] - final) * 0.5 * (1 + math.cos(math.pi * min(step / total_steps, 1.0)))
    warmup = config.get("warmup_steps") or 0
    return rate * min(1.0, (step + 1) / warmup) if warmup else rate


def check_values(config: dict) -> None:
    """Options argparse cannot check alone, as one-line errors."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", config["name"]):
        raise UserError(f"--name {config['name']!r}: use letters, digits, '.', '_' and '-' only")
    if config["steps"] is None and config["epochs"] is None:
        config["steps"] = DEFAULT_STEPS
    for key in ("batch_size", "size", "style_size", "checkpoint_every", "preview_every"):
        if config[key] < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1")
    if config["size"] < 16:
        raise UserError("--size must be at least 16 pixels (VGG pools the image four times)")
    if (config["steps"] or 1) < 1 or (config["epochs"] or 1) <= 0 or config["workers"] < 0:
        raise UserError("--steps, --epochs and --workers must be positive")
    if config["warmup_steps"] < 0:
        raise UserError("--warmup-steps must be 0 or more")
    if not 0 <= config["temporal_batch"] <= config["batch_size"]:
        raise UserError(f"--temporal-batch must be between 0 (all) and the batch size ({config['batch_size']})")
    numbers = (config["lr"], config["content_weight"], config["style_weight"], config["tv_weight"])
    if not all(math.isfinite(x) for x in numbers) or config["lr"] <= 0 or min(numbers) < 0:
        raise UserError("--lr must be positive and the loss weights non-negative (and all finite)")
    skip_start = config.get("color_skip_start")
    if skip_start is not None:
        if not ARCHITECTURES[config["arch"]].color_skip:
            raise UserError(f"--color-skip-start: the {config['arch']} net has no colour skip (the lite net has)")
        low, high = COLOR_SKIP_START_RANGE
        if not low <= skip_start <= high:
            raise UserError(f"--color-skip-start must be between {low:g} and {high:g}")


def check_fresh_outputs(out_dir: Path, model: Path | None, overwrite: bool) -> None:
    """A new run must not silently replace an old run or a trained model."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir} is a file")
    if overwrite:
        return
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} already holds a run: --resume to continue it, --overwrite to start over, "
                        "or pick another --name/--out-dir")
    if model is not None and model.exists():
        raise UserError(f"model {model} already exists: --overwrite to replace it, or pick another --name")


def compiled(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """--compile: the training passes of the style net through TorchInductor, one graph per batch shape
    (the step's batch and the stability term's). Previews and export use the plain net."""
    if device.type == "cpu" and not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")):
        raise UserError("--compile on a CPU needs a C++ compiler (g++ or clang++; e.g. apt install g++), "
                        "or leave --compile out")
    return torch.compile(model, dynamic=False)


def remove_run_files(out_dir: Path) -> None:
    """--overwrite: delete what an earlier run wrote here (and nothing else)."""
    for pattern in (CHECKPOINT, "loss.csv", "loss.png", "config.json", "previews/step_*.png",
                    "tensorboard/events.out.tfevents.*"):
        for path in out_dir.glob(pattern):
            path.unlink()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Precision for the loss network: bf16 where the hardware has it (no loss scaling), else fp16 on CUDA.

    Only VGG runs in it. On CPU, bf16 for everything was 24% faster per step than bf16 VGG alone
    but learned worse (mean loss over steps 101-150 of a lite net at 128 px: +15% and +31% over
    float32 on two seeds, while bf16 VGG alone was within seed noise of float32).
    """
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None  # MPS: autocast support varies by macOS and torch version


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: without them oneDNN emulates bf16 and VGG runs far slower than in float32.

    On a 2-core AVX2 CPU (AMD EPYC) a lite-net step (batch 4, 128 px) took 138 s with bf16 VGG and
    2.6 s in float32 (docs/training.md); on CPUs with AVX-512 BF16, bf16 halves the step time.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


class StopRequest:
    """Ctrl-C / SIGTERM: note it, let the loop finish its step and save. A second Ctrl-C aborts."""

    def __init__(self):
        self.signal: int | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"\n{signal.Signals(signum).name}: finishing this step, then saving a checkpoint "
              "(Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)


class LossWatch:
    """The mean loss over a sliding window of steps, and whether it has broken down (risen above
    ``factor`` times the lowest such mean). A mean, not a step: single steps vary by half and more."""

    def __init__(self, window: int = BREAKDOWN_WINDOW, factor: float = BREAKDOWN_FACTOR,
                 rising_factor: float = RISING_FACTOR):
        self.window, self.factor, self.rising_factor = window, factor, rising_factor
        self.recent: collections.deque[float] = collections.deque(maxlen=window)
        self.mean = self.best = math.inf

    def add(self, total: float) -> bool:
        """Count one step's loss; True once the run has broken down."""
        self.recent.append(total)
        if len(self.recent) < self.window:
            return False
        self.mean = sum(self.recent) / self.window
        self.best = min(self.best, self.mean)
        return self.mean > self.factor * self.best

    @property
    def rising(self) -> bool:
        """Well above the best mean: a bump, or the start of a breakdown."""
        return self.mean > self.rising_factor * self.best


class LossLog:
    """loss.csv: one row per step. On resume, rows past the checkpoint (steps to be redone) are dropped."""

    FIELDS = ("step", "content", "style", "tv", "temporal", "total", "images_per_s")

    def __init__(self, path: Path, resume_at: int | None = None):
        rows = []
        if resume_at is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_at]
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, self.FIELDS)
        self.writer.writeheader()
        self.writer.writerows({k: r.get(k, "") for k in self.FIELDS} for r in rows)
        self.file.flush()

    def write(self, step: int, content: float, style: float, tv: float, temporal: float, total: float,
              images_per_s: float):
        self.writer.writerow({"step": step, "content": f"{content:.6g}", "style": f"{style:.6g}",
                              "tv": f"{tv:.6g}", "temporal": f"{temporal:.6g}", "total": f"{total:.6g}", "images_per_s": f"{images_per_s:.3f}"})
        self.file.flush()

    def close(self):
        self.file.close()


def open_tensorboard(log_dir: Path, purge_step: int | None):
    """A SummaryWriter if the tensorboard package is installed; None otherwise (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(log_dir), purge_step=purge_step)


@torch.no_grad()
def save_preview(net: torch.nn.Module, photos: torch.Tensor, path: Path,
                 memory_format: torch.memory_format) -> np.ndarray:
    """Held-out photos above, their stylized versions below: one PNG per preview step."""
    net.eval()
    try:
        styled = net(photos.contiguous(memory_format=memory_format))
    finally:
        net.train()
    rows = [torch.cat(list(batch.float().clamp(0, 1)), dim=2) for batch in (photos, styled)]
    grid = to_uint8(torch.cat(rows, dim=1).permute(1, 2, 0).cpu().numpy())
    save_image(path, grid)
    return grid


def plot_losses(csv_path: Path, png_path: Path) -> Path | None:
    """loss.png from loss.csv: matplotlib if installed, else a plain PIL drawing (no hard dependency)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) < 2:
        return None
    steps = [int(r["step"]) for r in rows]
    series = {key: [float(r.get(key) or 0) for r in rows] for key in ("total", "content", "style", "tv", "temporal")}
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError:
        save_image(png_path, draw_plot(steps, series))
        return png_path
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, values in series.items():
        ax.plot(steps, values, label=key, linewidth=1)
    ax.set(xlabel="step", ylabel="loss (weighted)", yscale="log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(png_path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return png_path


COLORS = {"total": (0, 0, 0), "content": (31, 119, 180), "style": (214, 39, 40), "tv": (44, 160, 44),
          "temporal": (148, 103, 189)}


def draw_plot(steps: list[int], series: dict[str, list[float]], width: int = 800, height: int = 500) -> np.ndarray:
    """Log-scale line plot with PIL: axes, decade grid lines, step labels, a legend."""
    from PIL import Image, ImageDraw

    left, right, top, bottom = 60, 20, 20, 40
    positive = [v for values in series.values() for v in values if v > 0 and math.isfinite(v)]
    lo = math.floor(math.log10(min(positive))) if positive else -1
    hi = math.ceil(math.log10(max(positive))) if positive else 1
    hi = max(hi, lo + 1)
    x0, x1 = steps[0], max(steps[-1], steps[0] + 1)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def xy(step: float, value: float) -> tuple[float, float]:
        fx = (step - x0) / (x1 - x0)
        fy = (math.log10(value) - lo) / (hi - lo)
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    for decade in range(lo, hi + 1):
        _, y = xy(x0, 10.0 ** decade)
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((4, y - 6), f"1e{decade}", fill="black")
    for i in range(5):
        s = x0 + (x1 - x0) * i / 4
        x, _ = xy(s, 10.0 ** lo)
        draw.text((x - 10, height - bottom + 6), f"{round(s)}", fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((width // 2 - 10, height - 16), "step", fill="black")
    for n, (key, values) in enumerate(series.items()):
        points = [xy(s, v) for s, v in zip(steps, values, strict=True) if v > 0 and math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=COLORS[key], width=1)
        draw.text((width - right - 80, top + 6 + 14 * n), f"-- {key}", fill=COLORS[key])
    return np.asarray(image)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        rank = int(os.environ.get("RANK", "0"))
        print(f"{PROG}: error: {'' if rank == 0 else f'[rank {rank}] '}{exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing saved since the last checkpoint", file=sys.stderr)
        sys.exit(130)
