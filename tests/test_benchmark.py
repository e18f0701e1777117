"""The benchmark runs (quick mode), and the lite net exports and runs in every backend here."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import run_cli

from realtime_style.backends import OrtCpuBackend, TorchBackend
from realtime_style.benchmark import conv_flops, model_for, time_frames
from realtime_style.export import psnr


def test_bench_quick_prints_every_table():
    result = run_cli("bench", "--quick")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| lite \| 160x120 \| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", result.stdout, re.M)
    backends = [r[0] for r in rows]
    assert "onnxruntime CPU" in backends and "torch eager fp32 (reference)" in backends
    assert all(0 < float(p50) <= float(p99) for _, p50, p99, _ in rows[:2])
    assert "`rtstyle video` fps" in result.stdout and "webcam fps" in result.stdout
    # The host's own work per frame, stage by stage (ms), and the rate each pipeline thread allows (fps).
    # (No GPU here: its stabilizer column is a dash.)
    host = re.search(r"^\| 160x120 \|((?: [\d.]+ \|){5}) - \|((?: [\d.]+ \|){5})$", result.stdout, re.M)
    assert host, result.stdout
    cells = [float(cell) for cell in (host.group(1) + host.group(2)).replace("||", "|").strip(" |").split(" | ")]
    assert all(ms >= 0 for ms in cells) and all(cells[i] > 0 for i in (3, 5, 9))  # the three threads' fps


def test_lite_net_exports_and_runs_in_every_cpu_backend(tmp_path):
    pytest.importorskip("torch")
    model = model_for("lite", tmp_path)  # an untrained lite net when no lite style is installed
    batch = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    ort_out = OrtCpuBackend(model).run(batch)
    torch_out = TorchBackend(model, "cpu").run(batch)
    assert ort_out.shape == torch_out.shape == batch.shape
    assert psnr(ort_out, torch_out) > 40  # fp16 weights in both; fp32 arithmetic in both


def test_flop_count_matches_the_architecture():
    standard = {"channels": [32, 64, 128], "residual_blocks": 5}
    lite = {"channels": [16, 32, 64], "residual_blocks": 3}
    assert conv_flops(standard, 640, 480) == pytest.approx(96e9, rel=0.1)
    assert conv_flops(lite, 640, 480) < conv_flops(standard, 640, 480) / 3
    assert conv_flops(standard, 1280, 960) == pytest.approx(4 * conv_flops(standard, 640, 480))


def test_whole_frame_timing_runs_the_backends_uint8_path(tmp_path):
    """The row a GPU backend gets beside its model-only one: uint8 frames in and out, odd sizes padded."""
    pytest.importorskip("torch")
    backend = TorchBackend(model_for("lite", tmp_path), "cpu")
    calls = []
    run_frames = backend.stylize_frames
    backend.stylize_frames = lambda frames, weights: calls.append(frames.shape) or run_frames(frames, weights)
    milliseconds = time_frames(backend, 90, 50, repeats=3)
    assert len(milliseconds) == 3 and (milliseconds > 0).all()
    assert calls == [(1, 50, 90, 3)] * 5  # two warm-up runs, then the timed ones
