"""`rtstyle bench` (and bench/perf.py): how fast each backend runs each net on this machine.

One run prints a table: every backend available here (PyTorch eager fp32 as the reference a plain
implementation would be, ONNX Runtime on the CPU, ONNX Runtime CUDA/TensorRT fp16, PyTorch CUDA
fp16), each architecture, several frame sizes; p50/p99 ms per frame, fps, and the ratio to the
reference row of the same run. Then `rtstyle video` end to end and the webcam loop on a file
source. On a GPU it adds the FLOPs per frame and the achieved TFLOP/s next to the card's measured
fp16 matmul peak.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime_style.backends import OrtCpuBackend, OrtGpuBackend, TorchBackend, torch_has_cuda, ort_providers
from realtime_style.engine import StyleEngine
from realtime_style.padding import padded_side
from realtime_style.styles import installed_styles, read_metadata

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
ARCHS = ("standard", "lite")


@dataclass
class Timing:
    arch: str
    size: str
    backend: str
    ms: np.ndarray
    flops: float

    @property
    def p50(self) -> float:
        return float(np.percentile(self.ms, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.ms, 99))

    @property
    def fps(self) -> float:
        return 1000.0 / self.p50


def model_for(arch: str, folder: Path) -> Path:
    """A shipped model of this architecture, or an untrained one written to ``folder`` (needs torch).

    Weights do not change the cost, so an untrained net times an architecture no style ships in yet.
    """
    for style in installed_styles():
        if read_metadata(style.path).get("arch") == arch:
            return style.path
    import onnx

    from realtime_style.export import onnx_model_bytes
    from realtime_style.transformer_net import build_net

    net = build_net(arch).eval()
    model = onnx.load_from_string(onnx_model_bytes(net, fp16=True))
    onnx.helper.set_model_props(model, {"name": f"untrained_{arch}", "arch": arch,
                                        "net_config": json.dumps(net.config.to_dict())})
    path = folder / f"untrained_{arch}.onnx"
    onnx.save(model, str(path))
    return path


def backends_for(model: Path) -> list[tuple[str, object]]:
    """(label, backend) for every way this machine can run the model; the reference first."""
    found: list[tuple[str, object]] = []
    try:
        import torch

        has_torch_cuda = torch.cuda.is_available()
        # What a plain implementation runs: the torch net in fp32, on the GPU if there is one (on a GPU,
        # also what `--backend torch` and a GPU machine without ONNX Runtime's GPU build run).
        found.append(("torch eager fp32 (reference)", TorchBackend(model, "cuda" if has_torch_cuda else "cpu",
                                                                   cuda_graphs=False)))
    except ImportError:
        has_torch_cuda = False
    found.append(("onnxruntime CPU", OrtCpuBackend(model)))
    providers = ort_providers()
    if "CUDAExecutionProvider" in providers:
        found.append(("onnxruntime CUDA fp16", OrtGpuBackend(model, "cuda")))
    if "TensorrtExecutionProvider" in providers:
        found.append(("onnxruntime TensorRT fp16", OrtGpuBackend(model, "tensorrt")))
    if has_torch_cuda:  # the default on CUDA is the reference's float32: this row keeps fp16 measured beside it
        found.append(("torch CUDA fp16", TorchBackend(model, "cuda", half=True, cuda_graphs=False)))
    return found


def conv_flops(net_config: dict, width: int, height: int) -> float:
    """Multiply-adds x 2 of the net's convolutions on one frame (norms and activations are noise)."""
    c1, c2, c3 = net_config["channels"]
    full, half, quarter = width * height, width * height / 4, width * height / 16
    macs = (81 * 3 * c1 * full + 9 * c1 * c2 * half + 9 * c2 * c3 * quarter
            + net_config["residual_blocks"] * 2 * 9 * c3 * c3 * quarter
            + 9 * c3 * c2 * half + 9 * c2 * c1 * full + 81 * c1 * 3 * full)
    return 2.0 * macs


def time_backend(backend, width: int, height: int, repeats: int) -> np.ndarray:
    """Milliseconds per frame (padded as the engine pads it), after two warm-up runs at this size."""
    shape = (1, 3, padded_side(height), padded_side(width))
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    return _milliseconds(lambda: backend.run(batch), repeats)


def time_frames(backend, width: int, height: int, repeats: int) -> np.ndarray:
    """Milliseconds per frame of the backend's `stylize_frames`: a uint8 frame in and out, with the
    padding, blend and rounding where the net runs (what the engine gives a GPU backend)."""
    frame = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), np.uint8)
    weights = np.ones(1, np.float32)
    return _milliseconds(lambda: backend.stylize_frames(frame, weights), repeats)


def _graph_rows(backend, label: str, width: int, height: int, repeats: int, print_) -> list[tuple]:
    """The uint8 path replayed as a CUDA graph (TorchBackend's default on a GPU), with how far it strays
    from the plain one (the rows before it, timed without)."""
    if not hasattr(backend, "cuda_graphs"):
        return []
    frame = np.random.default_rng(1).integers(0, 256, (1, height, width, 3), np.uint8)
    weights = np.full(1, 0.75, np.float32)
    plain = backend.stylize_frames(frame, weights)
    backend.cuda_graphs = True
    try:
        differs = int(np.abs(backend.stylize_frames(frame, weights).astype(np.int16) - plain).max())
        if not backend.cuda_graphs:  # the capture failed, the backend said why and went on without
            return []
        return [(f"{label}, uint8 frames, CUDA graph (max diff {differs})",
                 time_frames(backend, width, height, repeats))]
    except Exception as exc:  # an experiment: say why, and keep measuring the rest
        print_(f"(CUDA graph of {label} at {width}x{height} failed: {str(exc).splitlines()[0][:200]})")
        return []
    finally:
        backend.cuda_graphs = False


def _milliseconds(step, repeats: int) -> np.ndarray:
    for _ in range(2):  # warm-up: first-call allocations, cuDNN's kernel search
        step()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        step()
        times.append((time.perf_counter() - began) * 1000)
    return np.asarray(times)


def gpu_peak_tflops() -> float | None:
    """The card's fp16 matmul throughput, measured (8192^3 matmuls), in TFLOP/s; None without CUDA torch."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.float16)
    b = torch.randn(n, n, device="cuda", dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(20):
        a @ b
    torch.cuda.synchronize()
    return 20 * 2 * n ** 3 / (time.perf_counter() - began) / 1e12


def run(archs: tuple[str, ...] = ARCHS, sizes: tuple[str, ...] = tuple(SIZES), repeats: int = 10,
        end_to_end: bool = True, print_=print) -> list[Timing]:
    """Measure and print the tables; returns the model-only timings."""
    timings: list[Timing] = []
    peak = gpu_peak_tflops()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {}
        for arch in archs:
            try:
                models[arch] = model_for(arch, tmp)
            except ImportError:
                print_(f"(no {arch} style is installed, and building an untrained {arch} net needs torch: skipped)")
        print_("| arch | size | backend | p50 ms | p99 ms | fps | x reference | GFLOP/frame | TFLOP/s |")
        print_("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for arch, model in models.items():
            config = json.loads(read_metadata(model)["net_config"])
            backends = backends_for(model)
            for size in sizes:
                width, height = SIZES[size] if size in SIZES else map(int, size.split("x"))
                flops = conv_flops(config, width, height)
                reference = None
                for label, backend in backends:
                    rows = [(label, time_backend(backend, width, height, repeats))]
                    if getattr(backend, "on_gpu", False) and hasattr(backend, "stylize_frames"):
                        rows.append((f"{label}, uint8 frames", time_frames(backend, width, height, repeats)))
                        rows += _graph_rows(backend, label, width, height, repeats, print_)
                    for row_label, milliseconds in rows:
                        t = Timing(arch, size, row_label, milliseconds, flops)
                        reference = reference or t
                        timings.append(t)
                        achieved = flops * t.fps / 1e12
                        print_(f"| {arch} | {size} | {row_label} | {t.p50:.1f} | {t.p99:.1f} | {t.fps:.2f} | "
                               f"{reference.p50 / t.p50:.2f} | {flops / 1e9:.1f} | {achieved:.2f} |")
        if peak:
            print_(f"\nGPU fp16 matmul peak, measured: {peak:.0f} TFLOP/s")
        if end_to_end:
            _end_to_end(models, sizes, tmp, print_)
    return timings


def _end_to_end(models: dict[str, Path], sizes: tuple[str, ...], tmp: Path, print_) -> None:
    """`rtstyle video` and the webcam loop on synthetic clips of each size (default device)."""
    from realtime_style.video import VideoOptions, prepare_video, stylize_video
    from realtime_style.webcam import WebcamLoop, WebcamOptions

    print_("\n| arch | size | engine | model-only fps | model-only fps, frames in flight | `rtstyle video` fps | "
           "video / model | `--stabilize 0` fps | video / model | webcam fps | webcam p50 / p95 ms |")
    print_("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch, model in models.items():
        engine = StyleEngine(model)
        for size in sizes:
            width, height = SIZES[size] if size in SIZES else map(int, size.split("x"))
            model_ms = time_backend(engine.backend, width, height, 5)
            model_fps = 1000 / float(np.median(model_ms))
            frames = max(10, min(120, round(model_fps * 8)))  # about 8 seconds of work
            in_flight, stream_fps = stream_throughput(engine, width, height, max(8, frames // 2))
            best_fps = max(model_fps, stream_fps)  # `rtstyle video` is measured against the faster way
            clip = synthetic_clip(tmp / f"clip_{size}.mp4", width, height, frames + 30)
            video_fps = []  # as users run it (stabilized), then without the stabilizer: the pipeline alone
            for stabilize in (VideoOptions.stabilize, 0.0):
                job = prepare_video(clip, tmp / f"out_{arch}_{size}.mp4", VideoOptions(
                    duration=frames / 30, overwrite=True, preset="veryfast", stabilize=stabilize))
                report = stylize_video(job, engine, progress=False)
                video_fps.append(report.frames / report.seconds)
            summary = WebcamLoop(engine, WebcamOptions(source=str(clip), window=False,
                                                       max_frames=max(5, frames // 2))).run()
            print_(f"| {arch} | {size} | {engine.backend.description} | {model_fps:.2f} | "
                   f"{stream_fps:.2f} ({in_flight} at once) | {video_fps[0]:.2f} | {video_fps[0] / best_fps:.0%} | "
                   f"{video_fps[1]:.2f} | {video_fps[1] / best_fps:.0%} | {summary.fps:.2f} | "
                   f"{summary.latency_ms(50):.0f} / {summary.latency_ms(95):.0f} |")
    host_work(sizes, tmp, print_)


def host_work(sizes: tuple[str, ...], tmp: Path | None = None, print_=print) -> None:
    """What `rtstyle video` does per frame besides the net, stage by stage, alone on this machine.

    Each thread of the pipeline (reader, main, writer) can go no faster than its own stages: on a
    GPU, where the net takes a few milliseconds, these set the end-to-end rate.
    """
    import av
    import cv2

    from realtime_style.temporal import Stabilizer
    from realtime_style.video import frame_to_rgb, rgb_to_frame, yuv_matrix

    if tmp is None:
        with tempfile.TemporaryDirectory() as folder:
            return host_work(sizes, Path(folder), print_)

    gpu = "cuda" if torch_has_cuda() else None  # where the torch backend runs the net, the blend runs beside it
    print_("\nThe video pipeline's own work per frame, each stage alone: the reader decodes and tracks the flow,\n"
           "the main thread runs the net and the stabilizer's blend, the writer encodes; the slowest bounds the rate.")
    print_("\n| size | decode ms | to RGB ms | flow ms | reader fps | blend ms | blend on GPU ms | "
           "main fps, net aside | to YUV ms | x264 veryfast ms | x264 medium ms | writer fps (medium) |")
    print_("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        width, height = SIZES[size] if size in SIZES else map(int, size.split("x"))
        # Less noise than the end-to-end clip: x264's cost grows with it, and 8 levels is a dark room's camera.
        clip = synthetic_clip(tmp / f"host_clip_{size}.mp4", width, height, 40, noise=2.0)
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            began = time.perf_counter()
            decoded = list(container.decode(stream))
            decode_ms = (time.perf_counter() - began) * 1000 / len(decoded)
        frames, rgb_ms = timed(frame_to_rgb, decoded)
        # The stabilizer in its two halves, as `rtstyle video` runs them: the flow on the reader thread,
        # the blend beside the net. The timed passes start with a jump from the last frame to the first
        # (a cut): the same work as any other frame.
        motions, flow_ms = timed(Stabilizer().track, frames)
        styled = [cv2.GaussianBlur(f, (5, 5), 0) for f in frames]  # a stand-in for the net's output
        blend_ms = {}
        for device in (None, gpu) if gpu else (None,):
            stabilizer = Stabilizer(device=device)
            blend_ms[device] = timed(lambda pair: stabilizer.blend(*pair), list(zip(styled, motions)))[1]
        main_ms = blend_ms[gpu] if gpu else blend_ms[None]
        yuv, yuv_ms = timed(lambda f: rgb_to_frame(f, yuv_matrix(None, width, height)), frames)
        encode_ms = {}
        for preset in ("veryfast", "medium"):
            with av.open(str(tmp / f"host_{size}.mp4"), "w") as out:
                v = out.add_stream("libx264", rate=30)
                v.width, v.height, v.pix_fmt = width, height, "yuv420p"
                v.options = {"preset": preset, "crf": "18"}
                began = time.perf_counter()
                for i, frame in enumerate(yuv):
                    frame.pts = i
                    out.mux(v.encode(frame))
                out.mux(v.encode(None))
                encode_ms[preset] = (time.perf_counter() - began) * 1000 / len(yuv)
        reader_fps, writer_fps = 1000 / (decode_ms + rgb_ms + flow_ms), 1000 / (yuv_ms + encode_ms["medium"])
        gpu_cell = f"{main_ms:.1f}" if gpu else "-"
        print_(f"| {size} | {decode_ms:.1f} | {rgb_ms:.1f} | {flow_ms:.1f} | {reader_fps:.0f} | {blend_ms[None]:.1f} | "
               f"{gpu_cell} | {1000 / main_ms:.0f} | {yuv_ms:.1f} | {encode_ms['veryfast']:.1f} | "
               f"{encode_ms['medium']:.1f} | {writer_fps:.0f} |")


def timed(stage, items: list) -> tuple[list, float]:
    """stage(item) for each item, and the median milliseconds one took.

    Timed on a second pass whose results are dropped at once: the first pass's results hold new
    memory, and touching it for the first time cost more than the stage itself (2-12 ms against
    1 ms for a 1920x1080 frame's colour conversion on our CPU), which a running pipeline, reusing
    its buffers, does not pay.
    """
    results = [stage(item) for item in items]
    times = []
    for item in items:
        began = time.perf_counter()
        stage(item)
        times.append(time.perf_counter() - began)
    return results, float(np.median(times)) * 1000


def stream_throughput(engine: StyleEngine, width: int, height: int, frames: int) -> tuple[int, float]:
    """Frames in flight and fps of `StyleEngine.stylize_stream` alone, on frames already in memory."""
    in_flight = engine.frames_in_flight(width, height)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), np.uint8) for _ in range(min(frames, 4))]
    for _ in engine.stylize_stream((images[0], None) for _ in range(in_flight)):  # warm every thread
        pass
    began = time.perf_counter()
    for _ in engine.stylize_stream((images[i % len(images)], i) for i in range(frames)):
        pass
    return in_flight, frames / (time.perf_counter() - began)


def synthetic_clip(path: Path, width: int, height: int, frames: int, fps: int = 30, noise: float = 8.0) -> Path:
    """A clip with motion and noise (its standard deviation in levels), so that every frame differs as a
    camera's would."""
    import av

    if path.exists():
        return path
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            base = 127 + 100 * np.sin((x + 3 * i) / 37.0)[..., None] * np.cos((y - 2 * i) / 23.0)[..., None]
            image = np.clip(base + rng.normal(0, noise, (height, width, 3)), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path
