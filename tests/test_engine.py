"""The engine on the shipped mosaic model: real ONNX Runtime sessions, real photos."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from realtime_style.engine import (BYTES_PER_PIXEL_CHANNEL, DEFAULT_MEMORY_BUDGET, GPU_MEMORY_BUDGET,
                                   MAX_FRAMES_IN_FLIGHT, StyleControls, StyleEngine, contrast_weight,
                                   gpu_memory_budget, upsample)
from realtime_style.errors import UserError
from realtime_style.export import psnr
from realtime_style.images import load_image, resize_long_side
from realtime_style.padding import padded_side
from conftest import ROOT

PHOTO = ROOT / "samples" / "kodim23.jpg"


@pytest.fixture(scope="module")
def engine() -> StyleEngine:
    return StyleEngine("mosaic", device="cpu")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return resize_long_side(load_image(PHOTO).rgb, 192)


def test_cpu_engine_matches_the_torch_fp32_net(engine, photo):
    torch = pytest.importorskip("torch")
    from realtime_style.backends import TorchBackend, load_model_fp32

    # The reference: the net rebuilt in torch fp32 from the file's weights, run on the padded photo.
    reference_engine = StyleEngine("mosaic", device="cpu", backend="torch")
    assert isinstance(reference_engine.backend, TorchBackend)
    assert reference_engine.backend.dtype == torch.float32
    assert "CPU fp32" in engine.backend.description
    ours, reference = engine.stylize(photo), reference_engine.stylize(photo)
    assert psnr(ours, reference) >= 50.0
    # ...and the CPU path really runs an fp32 graph (upcast once at load).
    model = load_model_fp32(engine.path)
    assert {t.data_type for t in model.graph.initializer} == {1}


def test_any_frame_size_comes_back_the_same_size(engine):
    for height, width in [(1, 1), (7, 13), (33, 17), (64, 96)]:
        frame = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        out = engine.stylize(frame)
        assert out.shape == frame.shape and out.dtype == np.uint8


def test_padding_reflects_so_the_crop_matches_a_larger_frame(engine, photo):
    # A frame whose sides are already multiples of 4 goes through unpadded; cutting one pixel
    # forces padding, and the result must still look like the same picture.
    frame = photo[:128, :188]
    assert padded_side(127) == 128
    full = engine.stylize(frame)
    cut = engine.stylize(frame[:127, :187])
    assert psnr(cut[:120, :180], full[:120, :180]) > 25.0


def test_strength_blends_between_input_and_style(engine, photo):
    styled = engine.stylize(photo).astype(np.float32)
    assert np.array_equal(engine.stylize(photo, StyleControls(strength=0.0)), photo)
    half = engine.stylize(photo, StyleControls(strength=0.5)).astype(np.float32)
    expected = (photo.astype(np.float32) + styled) / 2
    assert np.abs(half - expected).mean() < 1.0
    assert np.abs(styled - photo).mean() > 10.0  # the style does change the picture


def test_a_near_black_frame_stays_dark_instead_of_flashing(engine, photo):
    """Instance norm paints a near-black frame out of its noise alone, a different bright picture for each
    noise draw; the contrast gate keeps it what it is (docs/temporal.md)."""
    black = np.zeros_like(photo)
    assert np.array_equal(engine.stylize(black), black)
    rng = np.random.default_rng(0)
    dim = [np.clip(photo * 0.03 + rng.normal(0, 1.5, photo.shape), 0, 255).round().astype(np.uint8) for _ in range(2)]
    ungated = StyleControls(contrast_gate=False)
    flashing = [engine.stylize(frame, ungated).astype(np.float32) for frame in dim]
    gated = [engine.stylize(frame).astype(np.float32) for frame in dim]
    assert np.abs(flashing[0] - flashing[1]).mean() > 15.0  # what the gate is for
    assert flashing[0].mean() > 50.0
    assert np.abs(gated[0] - gated[1]).mean() < 3.0
    assert np.abs(gated[0] - dim[0]).mean() < 2.0


def test_the_contrast_gate_leaves_ordinary_photos_alone_and_fades_in_between(engine, photo):
    assert contrast_weight(photo) == 1.0
    assert np.array_equal(engine.stylize(photo), engine.stylize(photo, StyleControls(contrast_gate=False)))
    weights = [contrast_weight((photo * scale).astype(np.uint8)) for scale in (0.02, 0.1, 0.15, 0.3)]
    assert weights[0] == 0.0 and 0.0 < weights[1] < weights[2] < 1.0 and weights[3] == 1.0
    faded = (photo * 0.1).astype(np.uint8)
    half = engine.stylize(faded).astype(np.float32)
    full = engine.stylize(faded, StyleControls(contrast_gate=False)).astype(np.float32)
    expected = faded + weights[1] * (full - faded)
    assert np.abs(half - expected).mean() < 1.0


def test_preserve_color_keeps_the_input_chroma(engine, photo):
    from realtime_style.color import rgb_to_yiq

    kept = engine.stylize(photo, StyleControls(preserve_color=True))
    styled = engine.stylize(photo)
    chroma = lambda image: rgb_to_yiq(image.astype(np.float32) / 255)[..., 1:]  # noqa: E731
    assert np.abs(chroma(kept) - chroma(photo)).mean() < 0.5 * np.abs(chroma(styled) - chroma(photo)).mean()
    luma = lambda image: rgb_to_yiq(image.astype(np.float32) / 255)[..., 0]  # noqa: E731
    assert np.abs(luma(kept) - luma(styled)).mean() < 0.02


def test_processing_size_changes_the_look_not_the_output_size(engine, photo):
    controls = StyleControls(max_size=96)
    assert controls.processing_size(photo.shape[1], photo.shape[0]) == (96, 64)
    assert StyleControls(scale=0.5).processing_size(200, 100) == (100, 50)
    small = engine.stylize(photo, controls)
    assert small.shape == photo.shape
    assert psnr(small, engine.stylize(photo)) < 30.0  # bigger strokes: a different picture


def test_batch_equals_single_frames(engine, photo):
    frames = np.stack([photo, photo[::-1].copy()])
    batch = engine.stylize_batch(frames)
    assert psnr(batch[0], engine.stylize(frames[0])) > 50
    assert psnr(batch[1], engine.stylize(frames[1])) > 50


def test_stream_keeps_order_and_tags_and_matches_single_frames(engine, photo):
    """Several frames run at once on the CPU; what comes out must still be each frame's own result, in order."""
    frames = [np.roll(photo, 17 * i, axis=1) for i in range(7)]
    out = list(engine.stylize_stream((frame, i) for i, frame in enumerate(frames)))
    assert [tag for _, tag, _ in out] == list(range(7))
    assert engine.frames_in_flight(photo.shape[1], photo.shape[0]) == min(os.cpu_count() or 1, MAX_FRAMES_IN_FLIGHT)
    assert engine.frames_in_flight(8000, 8000) == 1  # tiled frames run one at a time, on every core
    for (frame, _, styled), original in zip(out, frames):
        assert frame is original
        assert psnr(styled, engine.stylize(original)) > 45  # fewer threads may reorder float sums


def test_stream_passes_a_failing_frame_on():
    engine = StyleEngine("mosaic_lite", device="cpu")
    frames = [(np.zeros((32, 32, 3), np.uint8), 0), (np.zeros((32, 32), np.uint8), 1)]
    with pytest.raises(ValueError, match="uint8 frames"):
        list(engine.stylize_stream(frames))


def test_tiles_blend_without_seams(engine):
    """A frame over the memory budget runs in overlapping tiles; the result stays close to the whole."""
    image = load_image(PHOTO).rgb  # 768 x 512
    whole = engine.stylize(image)
    budget = 320 * 320 * BYTES_PER_PIXEL_CHANNEL * 32  # the standard net's first layer has 32 channels
    tiled_engine = StyleEngine("mosaic", device="cpu", memory_budget=budget)
    assert tiled_engine.max_tile_pixels == 320 * 320
    tiled = tiled_engine.stylize(image)
    assert tiled.shape == whole.shape
    # Each tile draws its own strokes (instance norm sees only the tile), so compare the regions'
    # tones, not the strokes: blurred, the shipped mosaic measured 22.5 dB.
    blur = lambda rgb: cv2.GaussianBlur(rgb, (0, 0), 3)  # noqa: E731
    assert psnr(blur(tiled), blur(whole)) > 20.0
    # No seam: the jump across any column stays like the photo's own column-to-column change.
    jumps = np.abs(np.diff(tiled.astype(np.float32), axis=1)).mean(axis=(0, 2))
    assert jumps.max() < 4 * np.median(jumps) + 10


def test_the_tiling_budget_fits_the_device(engine):
    """A GPU tiles within half of what its card has free (at most 4 GB); the CPU keeps its own budget."""
    assert gpu_memory_budget(None) == GPU_MEMORY_BUDGET                 # free memory unknown
    assert gpu_memory_budget(140 * 2**30) == GPU_MEMORY_BUDGET          # an H200: the fixed budget
    assert gpu_memory_budget(3 * 2**30) == pytest.approx(1.5 * 2**30)  # a small, busy laptop card: half
    assert engine.backend.free_memory() is None
    assert engine.max_tile_pixels == int(DEFAULT_MEMORY_BUDGET / (BYTES_PER_PIXEL_CHANNEL * 32))


def test_bad_controls_and_models_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="strength"):
        StyleControls(strength=1.5).check()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model at all")
    with pytest.raises(UserError, match="not a usable ONNX model"):
        StyleEngine(broken)
    with pytest.raises(UserError, match="did you mean"):
        StyleEngine("mosaik")


def _has_cuda_ort() -> bool:
    from realtime_style.backends import ort_providers

    return "CUDAExecutionProvider" in ort_providers()


@pytest.mark.skipif(not _has_cuda_ort(), reason="no CUDA build of ONNX Runtime on this machine")
def test_gpu_engine_matches_the_torch_fp32_net(photo):
    pytest.importorskip("torch")
    gpu = StyleEngine("mosaic", device="cuda")
    reference = StyleEngine("mosaic", device="cpu", backend="torch")
    assert "float16" in gpu.backend.description
    assert psnr(gpu.stylize(photo), reference.stylize(photo)) >= 40.0  # fp16 against fp32


def test_reduced_processing_size_upsamples_smoothly_to_the_frame():
    """--scale 0.5 runs the net on a quarter of the pixels and brings the result back bicubically."""
    y, x = np.mgrid[0:64, 0:64]
    small = np.stack([x / 63, y / 63, np.full_like(x, 0.5, dtype=float)], axis=2).astype(np.float32)
    big = upsample(small, 128, 96)
    assert big.shape == (96, 128, 3) and big.dtype == np.float32
    assert big.min() >= 0.0 and big.max() <= 1.0
    # A ramp stays a ramp: bicubic reproduces linear gradients away from the borders.
    ramp = np.linspace(0, 1, 128)
    assert np.abs(big[48, 8:-8, 0] - ramp[8:-8]).max() < 0.02


def test_torch_backend_stylizes_whole_frames_on_its_device_as_the_engine_would(photo):
    """The fused path (padding, net, blend and rounding where the net runs) against the engine's own steps."""
    pytest.importorskip("torch")
    torch_engine = StyleEngine("mosaic", device="cpu", backend="torch")
    assert torch_engine.backend.free_memory() is None  # not on a GPU: the CPU's tiling budget ...
    assert torch_engine.blend_device is None           # ... and the stabilizer blends on the host
    frames = np.stack([photo[:101, :143], photo[-101:, -143:]])  # both need padding
    weights = np.array([1.0, 0.4], np.float32)
    fused = torch_engine.backend.stylize_frames(frames, weights)
    steps = StyleEngine._finish(torch_engine._run_padded(frames), frames, False, weights)
    assert fused.dtype == np.uint8 and fused.shape == frames.shape
    assert np.abs(fused.astype(int) - steps).max() <= 1
    # The engine hands it whole frames, with strength times the contrast gate as the weights.
    calls = []
    run_fused = torch_engine.backend.stylize_frames
    torch_engine.backend.stylize_frames = lambda f, w, small: calls.append(w.tolist()) or run_fused(f, w, small)
    dark = (frames * 0.02).astype(np.uint8)  # contrast about 1: the gate gives it nothing
    by_engine = torch_engine.stylize_batch(np.concatenate([frames, dark[:1]]), StyleControls(strength=0.4))
    assert calls == [pytest.approx([0.4, 0.4, 0.0])]
    assert np.array_equal(by_engine[:2], run_fused(frames, np.full(2, 0.4, np.float32)))
    assert np.array_equal(by_engine[2], dark[0])
    torch_engine.stylize(photo, StyleControls(preserve_color=True))  # colour preservation: the engine's steps
    torch_engine.stylize(photo, StyleControls(scale=1.5))           # a net bigger than the frame: the same
    assert len(calls) == 1
    # At a reduced scale the engine shrinks on the host, and the device enlarges and blends: as the host would.
    half = StyleControls(scale=0.5, strength=0.8)
    by_device = torch_engine.stylize(photo, half)
    assert len(calls) == 2
    by_host = StyleEngine("mosaic", device="cpu", controls=half).stylize(photo)  # ONNX Runtime, the host's steps
    assert psnr(by_device, by_host) > 40  # the backends differ: fp16-trained weights run in fp32 in both
    small = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    steps = StyleEngine._finish(upsample(torch_engine._run_padded(small[None])[0], *photo.shape[1::-1])[None],
                                photo[None], False, np.full(1, 0.8, np.float32))[0]
    assert np.abs(by_device.astype(int) - steps).max() <= 1  # the same backend: to within rounding
