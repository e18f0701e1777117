"""Checkpoint -> ONNX style model (fp16 by default), checked against the torch fp32 net.

The graph holds the net's body only: its input sides must be multiples of 4
and at least 8. The runtime pads frames by reflection and crops back, so the
graph has no shape-dependent control flow and every H x W works. fp16 is
checked, not assumed: the exported model runs in ONNX Runtime on real photos,
an fp16 emulation of the net runs beside it, and both must match the fp32
torch net to at least 40 dB PSNR, or nothing is written.
"""

from __future__ import annotations

import copy
import datetime
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from realtime_style import __version__
from realtime_style.checkpoint import (describe_stages, load_checkpoint, net_from_checkpoint, training_hardware,
                                       training_stages)
from realtime_style.errors import UserError
from realtime_style.files import atomic_output, check_output_path
from realtime_style.images import load_image
from realtime_style.padding import MIN_SIDE, MULTIPLE, padded_side
from realtime_style.transformer_net import TransformerNet, reflect_pad_to
from realtime_style.weights import KERAS_FILE, KERAS_MD5

OPSET = 17
MIN_PSNR_DB = 40.0
INPUT_NAME, OUTPUT_NAME = "image", "stylized"
PARITY_DIR = Path(__file__).parent / "data" / "parity"
INPUT_SPEC = (f"RGB, NCHW, values in [0, 1]; height and width multiples of {MULTIPLE}, "
              f"at least {MIN_SIDE} (pad by reflection, crop the output back)")


@dataclass
class ExportReport:
    path: Path
    precision: str
    psnr_db: list[float]        # per parity photo, ONNX Runtime vs torch fp32
    size_bytes: int

    @property
    def min_psnr_db(self) -> float:
        return min(self.psnr_db)


class _Body(nn.Module):
    """The exported graph: TransformerNet.body, for sides that are already multiples of 4."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.body(image)


def export_checkpoint(checkpoint_path: str | os.PathLike, output_path: str | os.PathLike,
                      fp16: bool = True, overwrite: bool = False,
                      parity_images: list[str | os.PathLike] | None = None,
                      min_psnr_db: float = MIN_PSNR_DB,
                      describe: dict[str, str] | None = None) -> ExportReport:
    """`rtstyle export`: write an ONNX style model for a training checkpoint.

    ``describe`` overrides the descriptive metadata (name, display_name,
    style_credit, style_license) taken from the training options.
    """
    output = check_output_path(output_path, (checkpoint_path,), overwrite)
    if output.suffix != ".onnx":
        raise UserError(f"{output}: a style model must be an .onnx file")
    checkpoint = load_checkpoint(checkpoint_path)
    net = net_from_checkpoint(checkpoint)
    onnx_bytes = onnx_model_bytes(net, fp16)
    photos = [load_image(p).rgb for p in (parity_images or sorted(PARITY_DIR.glob("*.jpg")))]
    psnrs = parity_psnrs(net, onnx_bytes, photos, fp16)
    worst = min(psnrs)
    if worst < min_psnr_db:
        raise UserError(f"refusing to write {output}: the {'fp16' if fp16 else 'fp32'} ONNX model differs "
                        f"from the torch fp32 net ({worst:.1f} dB PSNR < {min_psnr_db:.0f} dB)")
    overrides = {key: value for key, value in (describe or {}).items() if value}
    # Into the config as well, so that this run's entry in train_stages carries the given display name.
    checkpoint = {**checkpoint, "config": {**checkpoint["config"], **overrides}}
    metadata = model_metadata(checkpoint, "fp16" if fp16 else "fp32", worst)
    metadata.update(overrides)
    with atomic_output(output) as tmp:
        _save_with_metadata(onnx_bytes, metadata, tmp)
    return ExportReport(output, metadata["precision"], psnrs, output.stat().st_size)


def onnx_model_bytes(net: TransformerNet, fp16: bool) -> bytes:
    """Trace the net's body to ONNX with dynamic batch, height and width."""
    body = _Body(copy.deepcopy(net).eval().cpu())
    example = torch.rand(1, 3, 64, 64)
    if fp16:
        body, example = body.half(), example.half()
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(body, (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic})
    return buffer.getvalue()


def parity_psnrs(net: TransformerNet, onnx_bytes: bytes, photos: list[np.ndarray], fp16: bool) -> list[float]:
    """Per photo, the worst PSNR (dB, peak 1.0) of the ONNX model and, for fp16, of the fp16
    emulation, each against the torch fp32 net. One ORT session and one emulated net serve all."""
    import onnxruntime as ort

    net = net.float().eval()
    session = ort.InferenceSession(onnx_bytes, providers=_providers(ort))
    wanted = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    emulated = _fp16_emulated(net) if fp16 else None
    scores = []
    for rgb in photos:
        x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()
        h, w = x.shape[-2:]
        padded = reflect_pad_to(x, padded_side(h), padded_side(w))
        with torch.no_grad():
            reference = net(x)[0].numpy()
            candidates = [session.run(None, {INPUT_NAME: padded.numpy().astype(wanted)})[0][0, :, :h, :w]]
            if emulated is not None:
                candidates.append(emulated(x.half().float())[0].numpy())
        scores.append(min(psnr(candidate, reference) for candidate in candidates))
    return scores


def _fp16_emulated(net: TransformerNet) -> TransformerNet:
    """The net with fp16 weights and every layer's output rounded to fp16.

    ONNX Runtime's CPU provider quietly computes fp16 models in fp32, so on a
    machine without a GPU the ONNX check alone would never see an activation
    overflow past fp16's 65504. Rounding each layer's output to fp16 (where
    overflow becomes inf, then NaN in instance norm) shows what a GPU would do.
    """
    emulated = copy.deepcopy(net)
    with torch.no_grad():
        for tensor in emulated.state_dict().values():
            tensor.copy_(tensor.half().float())
    for module in emulated.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda _m, _i, out: out.half().float())
    return emulated


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB: uint8 images peak at 255, float ones at 1; -inf if the output has NaN or inf."""
    peak = 255.0 if output.dtype == np.uint8 else 1.0
    mse = float(np.mean((output.astype(np.float64) - np.asarray(reference, np.float64)) ** 2))
    if not math.isfinite(mse):
        return float("-inf")
    return float("inf") if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def _providers(ort) -> list[str]:
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def model_metadata(checkpoint: dict, precision: str, psnr_db: float) -> dict[str, str]:
    """What `rtstyle styles` shows and what a later reader needs to reproduce or compare the model."""
    config = checkpoint["config"]
    name = checkpoint.get("name") or config.get("name") or checkpoint["style_name"]
    stages = training_stages(config, int(checkpoint["step"]))
    return {
        "name": str(name),
        "display_name": str(config.get("display_name") or str(name).replace("_", " ").title()),
        "style_image": str(checkpoint["style_name"]),
        "style_sha256": str(checkpoint["style_sha256"]),
        "style_credit": str(config.get("style_credit") or "unknown"),
        "style_license": str(config.get("style_license") or "unknown"),
        "arch": str(checkpoint["arch"]),
        "net_config": json.dumps(checkpoint["net_config"]),
        "train_size": str(config.get("size", "")),
        "train_steps": str(int(checkpoint["step"])),
        # With --init-from, the steps of the runs this one started from as well.
        "train_steps_total": str(int(checkpoint["step"]) + int(config.get("earlier_steps", 0))),
        # What the steps ran on: this run's machines; then each run of the --init-from chain, oldest first.
        "train_hardware": training_hardware(config),
        "train_hardware_total": describe_stages(stages),
        "train_stages": json.dumps(stages),
        "train_config": json.dumps(config, sort_keys=True, default=str),
        "loss": json.dumps(checkpoint["loss_weights"], sort_keys=True),
        "vgg": f"VGG19 Caffe weights ({KERAS_FILE}, md5 {KERAS_MD5}), convs to conv5_1",
        "precision": precision,
        "fp16_psnr_db": f"{psnr_db:.2f}" if precision == "fp16" else "",
        "input": INPUT_SPEC,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rtstyle_version": __version__,
    }


def _save_with_metadata(onnx_bytes: bytes, metadata: dict[str, str], path: Path) -> None:
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    model.producer_name, model.producer_version = "rtstyle", __version__
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
