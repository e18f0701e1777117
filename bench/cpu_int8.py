"""Two more ways to a faster lite net on the CPU, measured: int8 weights and two frames in flight.

    python bench/cpu_int8.py models/mosaic_lite.onnx --size 320x240

1. ONNX Runtime static int8 quantization of every Conv (per-channel int8 weights, uint8 activations,
   QDQ and QOperator formats, calibrated on 16 training photos), timed against the fp32 model at the
   same size, with its PSNR against fp32 on six Kodak photos.
2. The fp32 model with one thread per frame and two frames at once (what `StyleEngine.stylize_stream`
   does for video) against one frame on both threads (what the webcam loop does).
Both at --size, 20 timed runs after 3 warm-ups; nothing else should be running.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realtime_style.backends import load_model_fp32
from realtime_style.export import psnr
from realtime_style.images import load_image

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
RUNS = 20


def batch(path: Path, width: int, height: int) -> np.ndarray:
    from PIL import Image
    image = Image.fromarray(load_image(path).rgb).resize((width, height), Image.BICUBIC)
    return (np.asarray(image, np.float32) / 255).transpose(2, 0, 1)[None]


def session(path: Path, threads: int):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as realtime_style.backends
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize(fp32: Path, calibration: list[np.ndarray], out_dir: Path) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    input_name = onnx.load(str(fp32)).graph.input[0].name

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self):
            x = next(self.batches, None)
            return None if x is None else {input_name: x}

    models = {}
    for quant_format in (QuantFormat.QDQ, QuantFormat.QOperator):
        out = out_dir / f"int8_{quant_format.name}.onnx"
        quantize_static(str(fp32), str(out), Photos(), quant_format=quant_format, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
        models[f"int8 {quant_format.name}"] = out
    return models


def timed(sess, inputs: list[np.ndarray], in_flight: int) -> tuple[float, float]:
    """(frames per second, p50 ms per frame) over RUNS frames, ``in_flight`` at a time."""
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: inputs[0]})

    def one(i: int) -> float:
        start = time.perf_counter()
        sess.run(None, {name: inputs[i % len(inputs)]})
        return time.perf_counter() - start

    with ThreadPoolExecutor(in_flight) as pool:
        start = time.perf_counter()
        seconds = list(pool.map(one, range(RUNS)))
        elapsed = time.perf_counter() - start
    return RUNS / elapsed, 1000 * float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT (default 320x240: the webcam at --scale 0.5)")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        measure(args.model, width, height, Path(tmp))


def measure(model: Path, width: int, height: int, work: Path) -> None:
    fp32 = work / "fp32.onnx"
    onnx.save(load_model_fp32(model), str(fp32))
    calibration = [batch(p, width, height) for p in sorted((SHARED / "train").rglob("*.jpg"))[:16]]
    kodak = [batch(p, width, height) for p in sorted((SHARED / "eval" / "kodak24").glob("*.png"))[:6]]
    models = {"fp32": fp32, **quantize(fp32, calibration, work)}

    reference = session(fp32, 2)
    name = reference.get_inputs()[0].name
    expected = [np.clip(reference.run(None, {name: x})[0], 0, 1) for x in kodak]
    print(f"{model.name} at {width}x{height}, ONNX Runtime CPU, 2 threads")
    print("| model | fps | p50 ms | PSNR vs fp32 dB |\n|---|---:|---:|---:|")
    base_fps = None
    for label, path in models.items():
        sess = session(path, 2)
        got = [np.clip(sess.run(None, {sess.get_inputs()[0].name: x})[0], 0, 1) for x in kodak]
        db = float(np.mean([psnr(a, b) for a, b in zip(got, expected)]))
        fps, p50 = timed(sess, kodak, 1)
        base_fps = base_fps or fps
        print(f"| {label} | {fps:.1f} ({fps / base_fps:.2f}x) | {p50:.1f} | {db:.1f} |", flush=True)
    print("\n| fp32 | fps | p50 ms per frame |\n|---|---:|---:|")
    for threads, in_flight in ((2, 1), (1, 1), (1, 2)):
        fps, p50 = timed(session(fp32, threads), kodak, in_flight)
        print(f"| {threads} thread(s) a frame, {in_flight} in flight | {fps:.1f} | {p50:.1f} |", flush=True)


if __name__ == "__main__":
    main()
