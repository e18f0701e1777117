"""Small torch helpers shared by Gatys, training and export."""

from __future__ import annotations

import os

import numpy as np
import torch

from realtime_style.errors import UserError


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple's MPS, then the CPU; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: this PyTorch build sees no CUDA GPU (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: Apple's Metal backend is not available here (use --device cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device name (auto, cpu, cuda, cuda:N, mps)") from None


def describe_hardware(device: torch.device, amp_dtype: torch.dtype | None) -> str:
    """One line on what a run trained on, stored in the model: step counts only compare on like hardware."""
    precision = str(amp_dtype).removeprefix("torch.") if amp_dtype else "float32"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"cuda: {name}, VGG in {precision}"
    if device.type == "cpu":
        return f"cpu: {_cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, VGG in {precision}"
    return f"{device.type}, VGG in {precision}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "unknown CPU"


def image_to_tensor(rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 or float [0, 1] -> (1, 3, H, W) float32 on ``device``."""
    array = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].contiguous().to(device)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float -> (H, W, 3) float32 in [0, 1] on the CPU."""
    return tensor.detach()[0].clamp(0, 1).permute(1, 2, 0).float().cpu().numpy()


def available_memory_bytes(device: torch.device) -> int:
    """Free memory where tensors will live: GPU memory for CUDA, otherwise RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30  # macOS/Windows without /proc: assume a modest machine
