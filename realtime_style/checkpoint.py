"""Training checkpoints: plain dicts that ``torch.load(..., weights_only=True)`` reads safely.

Only tensors and plain containers go in (no pickled classes), so loading a
checkpoint from someone else cannot run code. Layout (FORMAT_VERSION 1):

    model          state_dict of the TransformerNet
    optimizer      Adam state_dict
    scaler         GradScaler state_dict, or None
    step           optimizer steps completed
    rng            see capture_rng()
    arch           "standard" | "lite"
    net_config     NetConfig.to_dict(), lists for tuples
    loss_weights   LossWeights.to_dict()
    config         the training options, as a plain dict
    style_name     stem of the style image file
    style_sha256   sha256 of the style image file
    data_digest    sha256 of the training file list (see dataset.files_digest)
    format_version, torch_version

Export code needs only ``load_checkpoint(path)`` and ``net_from_checkpoint(ckpt)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime_style.errors import UserError
from realtime_style.files import atomic_output
from realtime_style.transformer_net import ARCHITECTURES, NetConfig, TransformerNet

FORMAT_VERSION = 1
REQUIRED_KEYS = ("model", "optimizer", "step", "rng", "arch", "net_config", "loss_weights", "config",
                 "style_name", "style_sha256")


def training_hardware(config: Mapping[str, Any]) -> str:
    """What a run's steps ran on: its config's ``hardware`` list (a resumed run may move)."""
    return "; ".join(config.get("hardware", [])) or "unknown"


def training_stages(config: Mapping[str, Any], steps: int) -> list[dict[str, Any]]:
    """Every run behind a net, oldest first: its --init-from chain's, then this one's ``steps``.

    A stage is {"style", "steps", "hardware"}, and "color_skip_start" where the run set a lite net's
    colour skip; stored as the model's ``train_stages`` so that a net fine-tuned from another style
    says how many steps each style and each machine gave it, and later runs that go on from it keep
    the skip start its style needs (tools/device_kit.py's recipe).
    """
    earlier = config.get("earlier_stages")
    if earlier is None and int(config.get("earlier_steps", 0)):  # a checkpoint from before stages were kept
        earlier = [{"style": "earlier", "steps": int(config["earlier_steps"]),
                    "hardware": config.get("earlier_hardware") or "unknown"}]
    style = config.get("display_name") or str(config.get("name") or "?").replace("_", " ").title()
    this = {"style": str(style), "steps": int(steps),
            "hardware": training_hardware(config)}
    if config.get("color_skip_start") is not None:
        this["color_skip_start"] = float(config["color_skip_start"])
    return [*(earlier or []), this]


def describe_stages(stages: list[Mapping[str, Any]]) -> str:
    """One line per machine run: "cpu: X (5,000 Mosaic steps); cuda: Y (905 Candy + 500 Starry Night steps)".

    Back-to-back stages on one machine share its name, and those of one style on it add up.
    """
    groups: list[tuple[str, list[list]]] = []  # (hardware, [[style, steps], ...])
    for stage in stages:
        hardware, style, steps = str(stage["hardware"]), str(stage["style"]), int(stage["steps"])
        if not groups or groups[-1][0] != hardware:
            groups.append((hardware, []))
        styles = groups[-1][1]
        if styles and styles[-1][0] == style:
            styles[-1][1] += steps
        else:
            styles.append([style, steps])
    return "; ".join(f"{hardware} ({' + '.join(f'{steps:,} {style}' for style, steps in styles)} steps)"
                     for hardware, styles in groups) or "unknown"


def plain(value: Any) -> Any:
    """Convert to what weights_only loading accepts: tuples -> lists, paths -> str, numpy -> python."""
    if isinstance(value, Mapping):
        return {k if type(k) in (str, int) else str(k): plain(v) for k, v in value.items()}  # Adam keys are ints
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if value is None or type(value) in (str, int, float, bool) or isinstance(value, torch.Tensor):
        return value
    if isinstance(value, bool):
        return bool(value)
    for kind in (str, int, float):  # subclasses (torch.__version__, IntEnum) would pickle as classes
        if isinstance(value, kind):
            return kind(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def capture_rng() -> dict:
    """Every global RNG state as tensors and plain values, for an exact resume."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, mt_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "state": list(mt_state), "gauss_next": gauss_next},
    }


def restore_rng(state: Mapping) -> None:
    """Inverse of capture_rng(); CUDA states are restored only where as many GPUs are visible."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping) -> Path:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ValueError(f"checkpoint lacks {missing}")
    record = plain({**checkpoint, "format_version": FORMAT_VERSION, "torch_version": torch.__version__})
    with atomic_output(path) as tmp:
        torch.save(record, tmp)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint on the CPU, safely (weights_only), or raise UserError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and unpickler-policy errors all land here
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        reason = next((line.strip() for line in lines if "Unsupported global" in line), lines[0])
        raise UserError(f"{path} is not a readable training checkpoint ({reason})") from None
    if not isinstance(checkpoint, dict) or any(k not in checkpoint for k in REQUIRED_KEYS):
        raise UserError(f"{path} is not a training checkpoint of this program (keys missing)")
    if checkpoint.get("format_version", 0) > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer rtstyle (checkpoint format "
                        f"{checkpoint['format_version']}); upgrade to read it")
    return checkpoint


def check_arch(checkpoint: Mapping, arch: str, path: str | os.PathLike = "checkpoint") -> None:
    """Refuse a checkpoint whose architecture is not ``arch``, in one line."""
    if checkpoint["arch"] != arch:
        raise UserError(f"{path} holds a {checkpoint['arch']!r} net, not {arch!r} "
                        f"(drop --arch or pass --arch {checkpoint['arch']})")
    if arch in ARCHITECTURES and plain(ARCHITECTURES[arch].to_dict()) != checkpoint["net_config"]:
        raise UserError(f"{path}: the {arch!r} architecture has changed since this checkpoint was "
                        f"written ({checkpoint['net_config']} then, {plain(ARCHITECTURES[arch].to_dict())} now)")


def grows_color_skip(net_config: Mapping, arch: str) -> bool:
    """Whether a net of ``net_config`` is the ``arch`` net without its colour skip: a lite net trained
    before the skip existed, which can still start a run (--init-from), the skip at its start value."""
    now = plain(ARCHITECTURES[arch].to_dict()) if arch in ARCHITECTURES else {}
    return bool(now.get("color_skip")) and not net_config.get("color_skip") \
        and {**net_config, "color_skip": now["color_skip"]} == now


def net_from_checkpoint(checkpoint: Mapping) -> TransformerNet:
    """The trained net, in eval mode, on the CPU, built as the checkpoint says it was."""
    net = TransformerNet(NetConfig.from_dict(checkpoint["net_config"]))
    net.load_state_dict(checkpoint["model"])
    return net.eval()
