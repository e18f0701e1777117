"""Backends run a style net on a padded float batch; `open_backend` picks one.

- ONNX Runtime on the CPU: the fp16 model is upcast to fp32 once at load, because
  the CPU provider has no fp16 convolutions and would otherwise cast around every
  node on every frame.
- ONNX Runtime with CUDA or TensorRT: fp16, input and output bound to GPU buffers
  that are allocated once per frame size (I/O binding), so a frame costs one
  upload and one download.
- PyTorch: rebuilds the net from the ONNX file's weights, for machines that have
  torch with CUDA but not the GPU build of ONNX Runtime.

Every backend takes (N, 3, H, W) float32 in [0, 1] with H and W multiples of 4 and
returns the same shape. The PyTorch backend also stylizes uint8 frames whole
(`stylize_frames`): on a GPU, 8-bit pixels cross the bus and the rest runs there.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from realtime_style.errors import UserError
from realtime_style.files import cache_dir
from realtime_style.padding import padded_side

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
BACKENDS = ("auto", "onnxruntime", "torch")


class Backend(Protocol):
    description: str
    on_gpu: bool  # frames of the size the memory budget allows live in GPU memory, not the host's

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def free_memory(self) -> int | None: ...  # bytes free on the GPU; None on the CPU or where unknown


def open_backend(path: str | os.PathLike, device: str = "auto", backend: str = "auto",
                 threads: int | None = None) -> Backend:
    """The backend for ``device`` ("auto" takes the fastest this machine has)."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise UserError(f"unknown --device {device!r}; choose from {', '.join(DEVICES)} (or cuda:N)")
    if backend not in BACKENDS:
        raise UserError(f"unknown --backend {backend!r}; choose from {', '.join(BACKENDS)}")
    providers = ort_providers()
    if backend == "torch":
        return TorchBackend(path, "cpu" if device == "cpu" else _torch_cuda_device(device))
    if device == "auto":
        if "CUDAExecutionProvider" in providers:
            device = "cuda"
        elif backend == "auto" and torch_has_cuda():
            return TorchBackend(path, "cuda")
        else:
            device = "cpu"
    if device == "cpu":
        return OrtCpuBackend(path, threads)
    wanted = "TensorrtExecutionProvider" if device == "tensorrt" else "CUDAExecutionProvider"
    if wanted not in providers:
        if backend == "auto" and device != "tensorrt" and torch_has_cuda():
            return TorchBackend(path, _torch_cuda_device(device))
        raise UserError(f"--device {device}: this ONNX Runtime has no {wanted} (it has "
                        f"{', '.join(providers)}); install the GPU build: pip uninstall onnxruntime && "
                        "pip install onnxruntime-gpu")
    return OrtGpuBackend(path, device)


def ort_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def load_model_fp32(path: str | os.PathLike):
    """The ONNX model with every fp16 weight, constant and graph input/output upcast to fp32."""
    import onnx
    from onnx import numpy_helper

    model = _load_onnx(path)
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    for tensor in model.graph.initializer:
        if tensor.data_type == fp16:
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == fp16:
                attribute.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attribute.t).astype(np.float32)))
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == fp16:
                attribute.i = fp32
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        if value.type.tensor_type.elem_type == fp16:
            value.type.tensor_type.elem_type = fp32
    return model


def _load_onnx(path: str | os.PathLike):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UserError(f"{path}: not a usable ONNX model ({str(exc).splitlines()[0][:200]})") from None


def _session(model: bytes | str, providers: list, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no provider-fallback chatter on the user's terminal
    # Idle worker threads sleep instead of spinning: the decoder and encoder threads of `rtstyle
    # video` need those cores. On 2 cores, lite net at 640x480: video 8.6-8.9 -> 9.7-9.9 fps, the
    # net alone unchanged (11.5-12.4 fps either way; docs/performance.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:
        raise UserError(f"ONNX Runtime cannot load the style model ({str(exc).splitlines()[0][:200]})") from None


class OrtCpuBackend:
    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        model = load_model_fp32(path)
        self.session = _session(model.SerializeToString(), ["CPUExecutionProvider"], threads)
        self.input_name = self.session.get_inputs()[0].name
        count = threads or os.cpu_count()
        self.description = f"onnxruntime CPU fp32 ({count} threads)"
        self.on_gpu = False

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]

    def free_memory(self) -> int | None:
        return None


class OrtGpuBackend:
    """fp16 on the GPU, with input and output buffers that live on the device."""

    def __init__(self, path: str | os.PathLike, device: str):
        import onnxruntime as ort

        self.device_id = int(device.split(":")[1]) if ":" in device else 0
        cuda = ("CUDAExecutionProvider", {"device_id": self.device_id, "cudnn_conv_algo_search": "EXHAUSTIVE",
                                          "do_copy_in_default_stream": True})
        providers = [cuda, "CPUExecutionProvider"]
        if device == "tensorrt":
            cache = cache_dir() / "tensorrt"
            cache.mkdir(parents=True, exist_ok=True)
            providers.insert(0, ("TensorrtExecutionProvider", {
                "device_id": self.device_id, "trt_fp16_enable": True, "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache)}))
        self.session = _session(str(path), providers)
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0]
        self.dtype = np.float16 if "float16" in self.input.type else np.float32
        self.binding = self.session.io_binding()
        self._buffers: dict[tuple[int, ...], tuple] = {}
        self._ort = ort
        self.on_gpu = True
        used = self.session.get_providers()[0].replace("ExecutionProvider", "")
        self.description = f"onnxruntime {used} {np.dtype(self.dtype).name} (GPU {self.device_id})"

    def run(self, batch: np.ndarray) -> np.ndarray:
        shape = batch.shape
        if shape not in self._buffers:  # once per frame size: a video or webcam has one
            self._buffers.clear()
            inp = self._ort.OrtValue.ortvalue_from_shape_and_type(shape, self.dtype, "cuda", self.device_id)
            out = self._ort.OrtValue.ortvalue_from_shape_and_type(shape, self.dtype, "cuda", self.device_id)
            self.binding.bind_ortvalue_input(self.input.name, inp)
            self.binding.bind_ortvalue_output(self.output.name, out)
            self._buffers[shape] = (inp, out)
        inp, out = self._buffers[shape]
        inp.update_inplace(np.ascontiguousarray(batch, self.dtype))
        self.session.run_with_iobinding(self.binding)
        return out.numpy().astype(np.float32)

    def free_memory(self) -> int | None:
        """From nvidia-smi: ONNX Runtime does not tell, and importing torch for it would take a CUDA context.

        nvidia-smi numbers the cards its own way and ignores CUDA_VISIBLE_DEVICES, through which
        CUDA's device ids map onto its ids (or UUIDs); where that map says nothing, None.
        """
        import subprocess

        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        if "CUDA_VISIBLE_DEVICES" in os.environ and self.device_id >= len(visible):
            return None
        card = visible[self.device_id] if visible else str(self.device_id)
        try:
            result = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits",
                                     "-i", card], capture_output=True, text=True, timeout=10)
            return int(result.stdout.split()[0]) * 2**20 if result.returncode == 0 else None
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            return None


class TorchBackend:
    """The net rebuilt in PyTorch from the ONNX file's weights, in float32 unless ``half``.

    Float32 on CUDA too: on an H200 (2026-12-04, `python bench/perf.py --model-only`) it was as fast
    as fp16 with channels_last or faster at 640x480, and 1.1-1.5x faster at 1280x720 and 1920x1080,
    for both nets, with and without CUDA graphs. On a GPU, `stylize_frames` replays a CUDA graph per
    frame shape: there it gave the same pixels and was 1.02-2.5x faster (docs/performance.md, "The
    GPU path").
    """

    def __init__(self, path: str | os.PathLike, device: str, half: bool = False, cuda_graphs: bool = True):
        from realtime_style.errors import require_torch

        torch = require_torch("--backend torch")
        net, _ = net_from_onnx(path)
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if half else torch.float32
        self.net = net.eval().to(self.device, self.dtype)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # a video's frames all have one size: let cuDNN pick its kernels
        self.memory_format = torch.channels_last if half else torch.contiguous_format
        self.net = self.net.to(memory_format=self.memory_format)
        self.on_gpu = self.device.type == "cuda"
        self._host: dict[tuple, tuple] = {}  # pinned upload, download and blend-weight buffers, by frame shape
        self.cuda_graphs = cuda_graphs and self.on_gpu  # stylize_frames replays one graph per frame shape
        self._graphs: dict[tuple, object] = {}
        self.description = f"torch {self.device} {str(self.dtype).replace('torch.', '')}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device, self.dtype,
                                                                              non_blocking=True)
            return self.net.body(x.contiguous(memory_format=self.memory_format)).float().cpu().numpy()

    def free_memory(self) -> int | None:
        return int(self.torch.cuda.mem_get_info(self.device)[0]) if self.on_gpu else None

    def stylize_frames(self, frames: np.ndarray, weights: np.ndarray, small: np.ndarray | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 frames -> uint8, each blended with its input by its weight.

        The same steps as the engine's own path (reflection padding, the net, bringing the result
        to the frame's size, the blend, rounding), but on the device: a 1080p frame crosses the
        bus as 6 MB of uint8 each way instead of 25 MB of float32. ``small``: the frames as the
        engine shrank them for the net (--scale below 1, --max-size). Shrinking stays on the host, with
        the engine's own resize, because the net turns the slightest change of its input into
        other strokes; the bicubic enlargement and the blend, the costly part at full size, run
        here. One caller at a time: the host buffers are shared (the engine streams this backend
        one frame at a time).
        """
        shapes = (frames.shape, None if small is None else small.shape)
        buffers = self._buffers(*shapes)
        np.copyto(buffers.frames.numpy(), frames)  # frames may be read-only views, which torch will not wrap
        np.copyto(buffers.weights.numpy(), weights)
        if small is not None:
            np.copyto(buffers.small.numpy(), small)
        try:
            graph = self._graph_or_none(shapes) if self.cuda_graphs else None
            if graph is not None:
                with self.torch.cuda.device(self.device):  # a graph captures and replays on the current GPU
                    graph.replay()
            else:
                with self.torch.inference_mode():
                    self._device_steps(buffers)
        finally:  # also after an error: the next call must not overwrite a buffer still being copied
            if self.on_gpu:
                self.torch.cuda.current_stream(self.device).synchronize()
        return buffers.result.numpy().copy()

    def _device_steps(self, buffers: _HostBuffers) -> None:
        """Upload, pad, net, resize, blend, round, download: one call of stylize_frames."""
        torch = self.torch
        functional = torch.nn.functional
        n, h, w = buffers.frames.shape[:3]
        pixels = buffers.frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().mul_(1 / 255)
        if buffers.small is None:
            net_input = pixels
        else:
            net_input = buffers.small.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().mul_(1 / 255)
        work_h, work_w = net_input.shape[2:]
        pad_h, pad_w = padded_side(work_h) - work_h, padded_side(work_w) - work_w
        x = net_input.to(self.dtype)
        if pad_h or pad_w:
            x = functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        styled = self.net.body(x.contiguous(memory_format=self.memory_format))[:, :, :work_h, :work_w].float()
        if (work_h, work_w) != (h, w):  # as the engine's `upsample`: bicubic (a = -0.75, as OpenCV's), clipped
            styled = functional.interpolate(styled, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)
        weights = buffers.weights.to(self.device, non_blocking=True).view(n, 1, 1, 1)
        styled = pixels.add_(weights * (styled - pixels)).mul_(255).add_(0.5).clamp_(0, 255)
        buffers.result.copy_(styled.to(torch.uint8).permute(0, 2, 3, 1), non_blocking=True)

    def _graph_or_none(self, shapes: tuple):
        """The graph, or None from here on where the capture fails: the plain path does the same work."""
        try:
            with self.torch.cuda.device(self.device):
                return self._graph(shapes)
        except RuntimeError as exc:
            self.cuda_graphs = False
            self._graphs.clear()
            warnings.warn(f"CUDA graph capture failed ({str(exc).splitlines()[0][:160]}); running without",
                          RuntimeWarning, stacklevel=3)
            return None

    def _graph(self, shapes: tuple):
        """A CUDA graph of `_device_steps` for these frame shapes: every copy and kernel, one launch
        (the net's ~80 kernel launches cost the CPU time a small frame may not have)."""
        if shapes not in self._graphs:
            torch = self.torch
            buffers = self._buffers(*shapes)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.inference_mode(), torch.cuda.stream(side):
                for _ in range(3):  # cuDNN picks its kernels before the capture, which must not search
                    self._device_steps(buffers)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                self._device_steps(buffers)
            self._graphs[shapes] = graph
        return self._graphs[shapes]

    def _buffers(self, shape: tuple[int, ...], small_shape: tuple[int, ...] | None = None) -> _HostBuffers:
        """Host buffers for frames of these shapes, allocated once; pinned on CUDA, so copies are
        asynchronous (and can be captured in a CUDA graph)."""
        key = (shape, small_shape)
        if key not in self._host:
            torch = self.torch
            self._host.clear()  # a video or webcam has one frame size
            self._graphs.clear()  # their graphs copy from and to the buffers just dropped

            def host(*size: int, dtype=torch.uint8):
                return torch.empty(size, dtype=dtype, pin_memory=self.on_gpu)

            self._host[key] = _HostBuffers(host(*shape), host(*shape), host(shape[0], dtype=torch.float32),
                                           None if small_shape is None else host(*small_shape))
        return self._host[key]


@dataclass
class _HostBuffers:
    frames: object          # (N, H, W, 3) uint8: the frames in
    result: object          # (N, H, W, 3) uint8: the stylized frames out
    weights: object         # (N,) float32: each frame's blend weight
    small: object | None    # (N, h, w, 3) uint8: the frames at the net's size, where that differs


def net_from_onnx(path: str | os.PathLike) -> tuple:
    """(TransformerNet in fp32, the model's metadata) of an exported style model.

    Used by the torch backend and by `tools/train.py --init-from MODEL.onnx` (fine-tuning a
    shipped style: its fp16 weights are a good start, training goes on in fp32).
    """
    import torch
    from onnx import numpy_helper

    from realtime_style.transformer_net import NetConfig, TransformerNet

    model = _load_onnx(path)
    metadata = {p.key: p.value for p in model.metadata_props}
    try:
        net = TransformerNet(NetConfig.from_dict(json.loads(metadata["net_config"])))
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: no usable net_config in the model's metadata ({exc})") from None
    # The graph runs the net's convs and norms in the order the module declares them, so their
    # weights map onto the state dict by position. (Names are not reliable: the exporter merges
    # identical initializers, e.g. the ones and zeros of an untrained net's norms.)
    initializers = {t.name: t for t in model.graph.initializer}
    aliases = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Identity"}

    def weight(name: str):
        while name not in initializers and name in aliases:  # merged initializers hide behind Identity
            name = aliases[name]
        return initializers[name]

    tensors = [weight(name) for node in model.graph.node
               if node.op_type in ("Conv", "InstanceNormalization") for name in node.input[1:3]]
    keys = list(net.state_dict())
    state = {key: torch.from_numpy(numpy_helper.to_array(t).astype(np.float32)) for key, t in zip(keys, tensors)}
    try:
        if len(tensors) != len(keys):
            raise RuntimeError(f"{len(tensors)} weight tensors in the graph, {len(keys)} in the net")
        net.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"{path}: weights do not fit the {net.config} net ({str(exc)[:200]})") from None
    return net, metadata


def torch_has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _torch_cuda_device(device: str) -> str:
    if not torch_has_cuda():
        raise UserError(f"--device {device} --backend torch: PyTorch here has no CUDA")
    return device if device.startswith("cuda") else "cuda"

