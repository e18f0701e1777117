"""The Gatys optimisation on tiny images, with the real VGG19 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from realtime_style import color
from realtime_style.errors import UserError
from realtime_style.gatys import GatysConfig, check_fits, run_gatys
from realtime_style.images import load_image
from realtime_style.losses import PerceptualLoss

pytestmark = pytest.mark.vgg
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def images(shared_data):
    content = load_image(shared_data / "eval" / "kodak24" / "kodim23.png").rgb
    style = load_image(shared_data / "styles" / "starry_night.jpg").rgb
    return content, style


@pytest.fixture(scope="module")
def loss_fn(vgg):
    return PerceptualLoss(vgg)


@pytest.mark.parametrize("optimizer,iters", [("lbfgs", 15), ("adam", 15)])
def test_gatys_lowers_the_style_loss(images, loss_fn, optimizer, iters):
    config = GatysConfig(iters=iters, size=48, optimizer=optimizer, lr=0.05 if optimizer == "adam" else None)
    result = run_gatys(*images, loss_fn, config, CPU, progress=False)
    assert result.image.shape == (32, 48, 3)
    assert len(result.history) == iters + 1
    assert result.first["content"] == 0  # started from the content image
    assert result.last["style"] < 0.5 * result.first["style"]
    assert result.last["total"] < result.first["total"]


def test_lbfgs_goes_back_to_its_best_image_when_it_overshoots(images, loss_fn):
    # Unit steps 50 times too long: fixed-step L-BFGS overshoots, and the run must notice, return to
    # its best image with a fresh memory, and never report or return worse than its best.
    result = run_gatys(*images, loss_fn, GatysConfig(iters=12, size=48, lr=50), CPU, progress=False)
    totals = [h["total"] for h in result.history]
    assert result.restarts > 0
    assert len(totals) == 13 and all(later <= earlier for earlier, later in zip(totals, totals[1:]))
    assert totals[-1] < totals[0]


def test_same_seed_same_result_from_noise(images, loss_fn):
    config = GatysConfig(iters=3, size=32, init="noise", seed=7)
    a = run_gatys(*images, loss_fn, config, CPU, progress=False).image
    b = run_gatys(*images, loss_fn, config, CPU, progress=False).image
    np.testing.assert_array_equal(a, b)
    c = run_gatys(*images, loss_fn, GatysConfig(iters=3, size=32, init="noise", seed=8), CPU,
                  progress=False).image
    assert np.abs(a - c).mean() > 0.01


def test_preserve_color_keeps_the_content_colours(images, loss_fn):
    config = GatysConfig(iters=5, size=48, preserve_color=True)
    result = run_gatys(*images, loss_fn, config, CPU, progress=False)
    content = load_resized(images[0], result.image.shape)
    chroma = lambda rgb: color.rgb_to_yiq(rgb)[..., 1:]  # noqa: E731
    assert np.abs(chroma(result.image) - chroma(content)).mean() < 0.02


def test_coarse_to_fine_ends_at_full_size(images, loss_fn):
    snapshots = []
    config = GatysConfig(iters=4, size=64, passes=2, snapshot_every=2)
    result = run_gatys(*images, loss_fn, config, CPU, on_snapshot=lambda i, img: snapshots.append((i, img.shape)),
                       progress=False)
    assert result.image.shape == (43, 64, 3)
    assert snapshots == [(2, (43, 64, 3)), (4, (43, 64, 3))]  # final pass only


def test_too_large_is_refused_before_allocating():
    with pytest.raises(UserError, match="--size"):
        check_fits(100_000, 100_000, CPU)


def load_resized(rgb: np.ndarray, shape) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((shape[1], shape[0]), Image.Resampling.LANCZOS),
                      dtype=np.float32) / 255
