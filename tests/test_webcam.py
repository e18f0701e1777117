"""The webcam loop with a video file standing in for the camera, headless (--no-window)."""

from __future__ import annotations

import re
import threading
import time

import cv2
import av
import numpy as np
import onnx
import pytest
from conftest import assert_one_line_error, run_cli
from media import make_clip, read_video

from realtime_style.engine import StyleControls, StyleEngine
from realtime_style.export import psnr
from realtime_style.styles import shipped_models_dir
from realtime_style.webcam import NewestFrame, ScaleGovernor, WebcamLoop, WebcamOptions


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("cam") / "camera.mp4", frames=60, size=(96, 64), fps=30, audio=None)


@pytest.fixture(scope="module")
def shifted_style(tmp_path_factory):
    """A second, visibly different style: mosaic with its last conv's bias raised."""
    folder = tmp_path_factory.mktemp("models")
    model = onnx.load(str(shipped_models_dir() / "mosaic.onnx"))
    last_bias = [t for t in model.graph.initializer if t.name.endswith(".bias") and t.dims == [3]][-1]
    values = onnx.numpy_helper.to_array(last_bias) + np.float16(0.4)
    last_bias.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float16), last_bias.name))
    for prop in model.metadata_props:
        if prop.key in ("name", "display_name"):
            prop.value = "shifted"
    onnx.save(model, str(folder / "shifted.onnx"))
    return folder / "shifted.onnx"


def source_frame(path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    for _ in range(index + 1):
        ok, bgr = capture.read()
        assert ok
    capture.release()
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_frames_are_stylized_like_the_engine(clip):
    engine = StyleEngine("mosaic", device="cpu")
    seen = []

    def grab(loop: WebcamLoop, shown: int) -> None:
        seen.append((loop.last_input_index, loop.last_shown.copy()))

    options = WebcamOptions(source=str(clip), window=False, max_frames=8, realtime_file=True)
    summary = WebcamLoop(engine, options, on_frame=grab).run()
    assert summary.frames_shown == 8 == len(seen)
    index, shown = seen[-1]
    original = source_frame(clip, index)
    assert psnr(shown, engine.stylize(original)) > 45  # the engine's output for that very frame
    assert psnr(shown, original) < 20                   # and not the camera image
    assert len({i for i, _ in seen}) == 8               # never the same frame twice


def test_record_and_summary_from_the_command_line(clip, tmp_path):
    out = tmp_path / "rec.mp4"
    result = run_cli("webcam", "--source", clip, "--no-window", "--max-frames", "12", "--record", out)
    assert result.returncode == 0, result.stderr
    match = re.search(r"(\d+) frames shown, (\d+) dropped, ([\d.]+) fps, latency p50 (\d+) ms / p95 (\d+) ms",
                      result.stdout)
    assert match, result.stdout
    # The standard net on a CPU, with the lite net installed: the command says how to keep up.
    assert "tip: on a CPU, `--style mosaic_lite` keeps up" in result.stderr
    assert re.search(r"scale [\d.]+ \(auto\)", result.stdout)  # no --scale: the loop picks it
    shown, dropped, fps, p50, p95 = (float(g) for g in match.groups())
    assert shown == 12 and dropped >= 0 and 0 < fps < 1000 and 0 < p50 <= p95 < 5000
    times, frames = read_video(out)
    assert len(frames) == 12 and frames[0].shape == (64, 96, 3)
    assert all(b > a for a, b in zip(times, times[1:]))  # real, rising timestamps
    assert times[-1] == pytest.approx(11 / fps, rel=0.5)
    with av.open(str(out)) as container:  # the YUV matrix is named, as in `rtstyle video`'s outputs: BT.601 below HD
        context = container.streams.video[0].codec_context
        assert (context.colorspace, context.color_range) == (6, 1)


def test_the_source_ending_finalizes_the_recording(tmp_path):
    short = make_clip(tmp_path / "short.mp4", frames=10, size=(64, 48), audio=None)
    out = tmp_path / "rec.mp4"
    result = run_cli("webcam", "--source", short, "--no-window", "--record", out, "--max-size", "32")
    assert result.returncode == 0, result.stderr
    assert "the file ended" in result.stdout and "(auto)" not in result.stdout  # --max-size fixes the scale
    assert len(read_video(out)[1]) == int(re.search(r"(\d+) frames shown", result.stdout).group(1)) > 0
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_style_switch_mid_run_keeps_the_loop_running(clip, shifted_style):
    controls = StyleControls()
    first = StyleEngine("mosaic", device="cpu", controls=controls)
    names = []

    def keys(loop: WebcamLoop, shown: int) -> None:
        names.append(loop.engine.name)
        if shown == 3:
            loop.handle_key("n")

    loop = WebcamLoop(first, WebcamOptions(source=str(clip), window=False, max_frames=40),
                      styles=["mosaic", "shifted"],
                      make_engine=lambda name: StyleEngine(shifted_style if name == "shifted" else name,
                                                           device="cpu", controls=controls),
                      on_frame=keys)
    summary = loop.run()
    # the clip plays at 30 fps like a camera: a busy machine drops frames and the file ends first
    assert summary.frames_shown == 40 or summary.ended_because == "the file ended"
    assert names[0] == "mosaic" and names[-1] == "shifted" and names.count("shifted") >= 10
    index, shown = loop.last_input_index, loop.last_shown
    original = source_frame(clip, index)
    assert psnr(shown, loop.engine.stylize(original)) > 45
    assert psnr(shown, first.stylize(original)) < 35


def test_keys_change_the_controls(clip, tmp_path):
    engine = StyleEngine("mosaic", device="cpu")
    loop = WebcamLoop(engine, WebcamOptions(source=str(clip), window=False, screenshot_dir=str(tmp_path)))
    for key in "--[c":
        loop.handle_key(key)
    assert loop.controls.strength == pytest.approx(0.8)
    assert loop.controls.scale == pytest.approx(0.85) and loop.controls.preserve_color
    loop.handle_key("v")
    assert loop.view == "split"
    loop.last_shown = np.zeros((8, 8, 3), np.uint8)
    assert loop.screenshot().exists()
    loop.handle_key("q")
    assert loop.quit


def settle(governor: ScaleGovernor, cost, frames: int = 400) -> list[float]:
    """The scales a governor picks when a frame at scale s takes cost(s) seconds."""
    return [governor.update(cost(governor.scale)) for _ in range(frames)]


def test_scale_governor_finds_the_largest_scale_that_keeps_up():
    camera = 1 / 30
    lite_on_avx2 = lambda s: 0.004 + 0.12 * s * s  # 34 ms at 0.5 (too slow), 23 ms at 0.4
    scales = settle(ScaleGovernor(camera), lite_on_avx2)
    assert scales[-1] == 0.4 and lite_on_avx2(0.4) < camera < lite_on_avx2(0.5)
    assert len(set(scales[10:])) == 1  # one jump down, then it stays: no hunting
    fast = settle(ScaleGovernor(camera, scale=0.25), lambda s: 0.002 + 0.01 * s * s)
    assert fast[-1] == 1.0 and fast == sorted(fast)  # a fast net climbs back to full resolution


def test_scale_governor_ignores_a_single_slow_frame():
    governor = ScaleGovernor(1 / 30)
    times = [0.01] * 20 + [0.5] + [0.01] * 20  # a style loading, the OS: one frame ten times too slow
    assert {governor.update(t) for t in times} == {1.0}


def test_auto_scale_keeps_up_with_the_camera(tmp_path):
    """No CPU runs the standard net at 320x240 in the 8 ms of a 120 fps camera: the loop lowers its scale."""
    clip = make_clip(tmp_path / "camera.mp4", frames=600, size=(320, 240), fps=120, audio=None)
    engine = StyleEngine("mosaic", device="cpu")
    options = WebcamOptions(source=str(clip), window=False, max_frames=20, auto_scale=True)
    loop = WebcamLoop(engine, options)
    summary = loop.run()
    assert summary.auto_scale and summary.scale < 1.0 and "(auto)" in summary.line()
    assert loop.last_shown.shape == (240, 320, 3)  # the picture keeps the camera's size
    fixed = WebcamLoop(engine, WebcamOptions(source=str(clip), window=False, max_frames=1)).run()
    assert not fixed.auto_scale


def test_newest_frame_drops_stale_frames_and_times_out():
    slot = NewestFrame()
    for i in range(5):
        slot.put(np.full((2, 2, 3), i, np.uint8), i)
    frame, _, index = slot.get(timeout=1)
    assert index == 4 and frame[0, 0, 0] == 4  # the four older frames were dropped, not queued
    began = time.perf_counter()
    assert slot.get(timeout=0.2) is None       # a stalled source: a timeout, not a hang
    assert 0.15 < time.perf_counter() - began < 2
    threading.Timer(0.1, slot.close, args=("gone",)).start()
    assert slot.get(timeout=5) is None and slot.reason == "gone"


def test_missing_camera_and_file_fail_cleanly(tmp_path):
    assert_one_line_error(run_cli("webcam", "--camera", "9", "--no-window"), "no camera found", "tried index 9")
    assert_one_line_error(run_cli("webcam", "--source", tmp_path / "nope.mp4", "--no-window"), "no such file")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert_one_line_error(run_cli("webcam", "--source", text, "--no-window"), "cannot be read as video")


def test_window_needs_a_gui_build(clip):
    if cv2.getBuildInformation().find("GUI:                           NONE") < 0:
        pytest.skip("this OpenCV has a GUI; the window itself is checked in bench/")
    assert_one_line_error(run_cli("webcam", "--source", clip, "--max-frames", "2"), "no window support")


def test_pause_holds_the_picture_and_records_nothing(clip, tmp_path):
    engine = StyleEngine("mosaic", device="cpu")

    def pause_once(loop: WebcamLoop, shown: int) -> None:
        if shown == 3:
            loop.handle_key(" ")
            threading.Timer(0.6, loop.handle_key, args=(" ",)).start()

    options = WebcamOptions(source=str(clip), window=False, max_frames=6, record=str(tmp_path / "rec.mp4"))
    summary = WebcamLoop(engine, options, on_frame=pause_once).run()
    assert summary.frames_shown == 6 and summary.seconds > 0.6
    assert len(read_video(tmp_path / "rec.mp4")[1]) == 6  # no duplicates of the paused frame
