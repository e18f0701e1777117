"""Flicker: the warping-error metric on known motion, the run-time stabilizer, and the training loss."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import ROOT, run_cli
from media import make_clip, read_video

from realtime_style.engine import StyleEngine
from realtime_style.images import load_image, resize_long_side
from realtime_style.temporal import Stabilizer, warping_error
from realtime_style.video import VideoOptions, prepare_video, stylize_video


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return resize_long_side(load_image(ROOT / "samples" / "kodim23.jpg").rgb, 256)


# Each stabilizer test runs with the blend on the host (OpenCV) and in torch (here on the CPU; on a
# GPU machine, where the torch backend runs the net, the same code runs on the GPU).
BLENDS = [None, pytest.param("cpu", id="torch")]


def panning(photo: np.ndarray, frames: int = 6, step: int = 3) -> list[np.ndarray]:
    """A camera pan with a known flow: each frame is the photo shifted ``step`` pixels further."""
    width = photo.shape[1] - step * frames
    return [np.ascontiguousarray(photo[:, i * step: i * step + width]) for i in range(frames)]


def test_a_shifted_image_has_near_zero_warping_error(photo):
    frames = panning(photo)
    result = warping_error(frames, frames)
    assert result.pairs == 5 and result.valid > 0.8
    assert result.output < 2.0  # levels of 255: the flow explains the motion


def test_flicker_has_a_high_warping_error(photo):
    frames = panning(photo)
    rng = np.random.default_rng(0)
    flicker = [np.clip(f.astype(np.int16) + rng.integers(-40, 40, (1, 1, 3)) * (i % 2), 0, 255).astype(np.uint8)
               for i, f in enumerate(frames)]
    steady = warping_error(frames, frames).output
    assert warping_error(frames, flicker).output > 10 * max(steady, 0.5)


@pytest.mark.parametrize("device", BLENDS)
def test_stabilizer_damps_flicker_without_ghosting(photo, device):
    frames = panning(photo, frames=8)
    rng = np.random.default_rng(1)
    noisy = [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in frames]  # per-frame speckle
    stabilize = Stabilizer(0.6, device=device)
    smoothed = [stabilize(f, n) for f, n in zip(frames, noisy)]
    assert warping_error(frames, smoothed).output < 0.75 * warping_error(frames, noisy).output
    # A cut: nothing of the previous scene may be blended into a new one.
    other = np.ascontiguousarray(255 - frames[-1])
    after_cut = stabilize(other, other)
    assert np.abs(after_cut.astype(np.int16) - other).mean() < 3


@pytest.mark.parametrize("device", BLENDS)
def test_stabilizer_keeps_a_repainted_stroke_rather_than_averaging_two(photo, device):
    """Jitter is averaged away; a stroke the net painted differently is kept whole, not blended into mud."""
    repainted = ((photo.astype(np.int16) + 128) % 256).astype(np.uint8)  # 128 levels off everywhere
    stabilize = Stabilizer(device=device)
    stabilize(photo, photo)
    assert np.abs(stabilize(photo, repainted).astype(np.int16) - repainted).mean() < 3
    jittered = np.clip(photo.astype(np.int16) + 6, 0, 255).astype(np.uint8)
    stabilize = Stabilizer(device=device)
    stabilize(photo, photo)
    assert np.abs(stabilize(photo, jittered).astype(np.int16) - photo).mean() < 3  # pulled back most of the way


@pytest.mark.parametrize("device", BLENDS)
def test_stabilizer_keeps_a_panning_texture_sharp(photo, device):
    """The previous output is resampled every frame; a blurring resampler would wash the texture out over a pan."""
    def shifted(dx: float) -> np.ndarray:
        move = np.float32([[1, 0, dx], [0, 1, 0]])
        return cv2.warpAffine(photo, move, photo.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

    def sharpness(image: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F))[20:-20, 40:-40].mean())

    frames = [shifted(1.5 * i) for i in range(16)]  # half-pixel positions: the worst case for resampling
    stabilize = Stabilizer(device=device)
    last = [stabilize(f, f) for f in frames][-1]
    assert sharpness(last) > 0.9 * sharpness(frames[-1])  # bilinear resampling kept 79 % here


def test_the_torch_blend_matches_the_host_blend(photo):
    """The same flow, gates and cubic warp in torch as in OpenCV: equal to within rounding, frame after frame."""
    pytest.importorskip("torch")
    big = cv2.resize(photo, (640, 424), interpolation=cv2.INTER_CUBIC)  # wider than the flow: upsampled flow
    frames = panning(big, frames=10, step=5)
    rng = np.random.default_rng(2)
    styled = [np.clip(f + rng.normal(0, 10, f.shape), 0, 255).astype(np.uint8) for f in frames]
    host, torch_blend = Stabilizer(), Stabilizer(device="cpu")
    for frame, out in zip(frames, styled):
        a, b = host(frame, out).astype(np.int16), torch_blend(frame, out).astype(np.int16)
        assert np.abs(a - b).mean() < 0.05 and np.abs(a - b).max() <= 4  # measured: 0.001-0.004, at most 3
    assert np.abs(a - styled[-1]).mean() > 3  # and both did blend


@pytest.mark.parametrize("device", BLENDS)
def test_a_tracked_motion_is_blended_without_being_changed(photo, device):
    """`rtstyle video` tracks on one thread and blends on another: the motion handed over stays as it was."""
    frames = panning(photo, frames=2)  # under the flow's width: the motion is at full size, no copy between
    stabilize = Stabilizer(device=device)
    stabilize.blend(frames[0], stabilize.track(frames[0]))
    motion = stabilize.track(frames[1])
    weight = motion.weight.copy()
    stabilize.blend(np.ascontiguousarray(255 - frames[1]), motion)  # repainted everywhere: the gate acts
    assert np.array_equal(motion.weight, weight)


def test_rtstyle_video_is_stabilized_by_default(tmp_path, photo):
    """A still scene with sensor noise: the default output changes less from frame to frame than with it off."""
    still = np.ascontiguousarray(photo[:96, :128])
    rng = np.random.default_rng(2)
    noisy = [np.clip(still + rng.normal(0, 6, still.shape), 0, 255).astype(np.uint8) for _ in range(8)]
    src = make_clip(tmp_path / "in.mp4", size=(128, 96), pictures=noisy, audio=None)
    change = {}
    for name, extra in (("default", ()), ("off", ("--stabilize", "0"))):
        result = run_cli("video", str(src), str(tmp_path / f"{name}.mp4"), "--style", "mosaic_lite", "--quiet", *extra)
        assert result.returncode == 0, result.stderr
        frames = read_video(tmp_path / f"{name}.mp4")[1]
        assert len(frames) == len(noisy)
        change[name] = np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(frames, frames[1:])])
    assert change["default"] < 0.7 * change["off"]


def test_a_fade_from_black_stays_dark_in_rtstyle_video(tmp_path, photo):
    """The first frames of a fade are black plus codec noise, which a net would paint as a bright picture,
    a new one each frame; `rtstyle video` keeps them dark and paints the picture once it is there."""
    still = np.ascontiguousarray(photo[:96, :128]).astype(np.float32)
    rng = np.random.default_rng(3)
    levels = [0.0, 0.0, 0.01, 0.02, 0.03, 0.6, 1.0]
    pictures = [np.clip(still * level + rng.normal(0, 1.0, still.shape), 0, 255).astype(np.uint8) for level in levels]
    src = make_clip(tmp_path / "in.mp4", size=(128, 96), pictures=pictures, audio=None)
    result = run_cli("video", str(src), str(tmp_path / "out.mp4"), "--style", "mosaic", "--quiet")
    assert result.returncode == 0, result.stderr
    frames = read_video(tmp_path / "out.mp4")[1]
    assert len(frames) == len(levels)
    assert max(frame.mean() for frame in frames[:5]) < 8.0
    assert np.abs(frames[-1].astype(np.float32) - pictures[-1]).mean() > 10.0  # styled once there is a picture


def test_a_tiny_video_passes_through_the_default_stabilizer(tmp_path):
    """DIS flow refuses images under 12 pixels a side; such a clip must still convert, unstabilized."""
    src = make_clip(tmp_path / "in.mp4", size=(8, 8), audio=None)
    report = stylize_video(prepare_video(src, tmp_path / "out.mp4"), StyleEngine("mosaic_lite", device="cpu"),
                           progress=False)
    assert report.frames == len(read_video(tmp_path / "out.mp4")[1]) == 12


def test_video_stabilize_keeps_frames_and_timestamps(tmp_path):
    times = [0.0, 0.04, 0.1, 0.13, 0.2, 0.3]
    src = make_clip(tmp_path / "in.mp4", frame_times=times, size=(96, 64))
    job = prepare_video(src, tmp_path / "out.mp4", VideoOptions(stabilize=0.6))
    report = stylize_video(job, StyleEngine("mosaic", device="cpu"), progress=False)
    out_times, frames = read_video(tmp_path / "out.mp4")
    assert report.frames == len(frames) == len(times)
    assert out_times == pytest.approx(times, abs=1e-3)


@pytest.mark.parametrize("mode", ["motion", "noise", "local"])
def test_stability_loss_falls_on_a_tiny_run(mode):
    torch = pytest.importorskip("torch")
    from realtime_style.stability import stability_loss
    from realtime_style.transformer_net import build_net

    torch.manual_seed(0)
    net = build_net("lite").train()
    images = torch.rand(2, 3, 48, 48)
    images = torch.nn.functional.avg_pool2d(images, 5, 1, 2)  # smooth, photo-like content
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for step in range(30):
        generator = torch.Generator().manual_seed(step)
        loss = stability_loss(net, images, net(images), generator, mode)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


@pytest.mark.parametrize("mode", ["motion", "noise", "local"])
def test_stability_loss_on_part_of_the_batch_runs_the_net_on_that_part_only(mode):
    """--temporal-batch: the term on the first N images is the term of those N images alone."""
    torch = pytest.importorskip("torch")
    from realtime_style.stability import stability_loss
    from realtime_style.transformer_net import build_net

    torch.manual_seed(0)
    net = build_net("lite").eval()
    images = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 40, 40), 5, 1, 2)
    batches_seen = []
    net.register_forward_pre_hook(lambda module, args: batches_seen.append(args[0].shape[0]))
    with torch.no_grad():
        output = net(images)
        part = stability_loss(net, images, output, torch.Generator().manual_seed(3), mode, images_used=2)
        alone = stability_loss(net, images[:2], output[:2], torch.Generator().manual_seed(3), mode)
        whole = stability_loss(net, images, output, torch.Generator().manual_seed(3), mode, images_used=None)
    assert batches_seen == [4, 2, 2, 4]
    assert float(part) == pytest.approx(float(alone), rel=1e-5)
    assert float(part) != pytest.approx(float(whole), rel=1e-3)


@pytest.mark.parametrize("mode", ["motion", "noise", "local"])
def test_stability_loss_of_a_net_that_ignores_nothing_is_the_noise(mode):
    """A net that passes its input through moves exactly with it: only the added noise is left."""
    torch = pytest.importorskip("torch")
    from realtime_style.stability import NOISE, stability_loss

    images = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64), 5, 1, 2) * 0.8 + 0.1  # no clamping
    loss = stability_loss(lambda x: x, images, images, torch.Generator().manual_seed(0), mode)
    assert float(loss) == pytest.approx(NOISE ** 2, rel=0.1)
    with pytest.raises(ValueError, match="unknown stability mode"):
        stability_loss(lambda x: x, images, images, torch.Generator(), "blur")


def test_pasted_patch_is_masked_with_its_margin():
    """Only the pasted square changes, and the mask leaves out the square and MARGIN pixels around it."""
    torch = pytest.importorskip("torch")
    from realtime_style.stability import MARGIN, PATCH, paste_patch

    images = torch.rand(3, 3, 96, 128)
    changed, keep = paste_patch(images, torch.Generator().manual_seed(1))
    differs = (changed != images).any(1)
    for b in range(3):
        ys, xs = torch.nonzero(differs[b], as_tuple=True)
        side = max(int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1)
        assert PATCH[0] * 96 - 1 <= side <= PATCH[1] * 96 + 1  # one square of the stated size
        assert (keep[b, 0][differs[b]] == 0).all()  # never compared where the input changed
        away = keep[b, 0] == 1
        assert away.float().mean() > 0.5 and not differs[b][away].any()
        # the margin: a pixel MARGIN away from the square is masked, one MARGIN + 1 away is not
        assert keep[b, 0, ys.min(), max(0, int(xs.min()) - MARGIN)] == 0
        if xs.min() - MARGIN - 1 >= 0:
            assert keep[b, 0, ys.min(), xs.min() - MARGIN - 1] == 1
