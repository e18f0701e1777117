"""The style models in models/: complete metadata, both sizes, and they paint."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from realtime_style.checkpoint import describe_stages
from realtime_style.engine import StyleEngine
from realtime_style.styles import read_metadata, shipped_models_dir

MODELS = sorted(shipped_models_dir().glob("*.onnx"))
REQUIRED = ("name", "display_name", "style_image", "style_sha256", "style_credit", "style_license", "arch",
            "net_config", "train_size", "train_steps", "train_steps_total", "train_config", "loss", "vgg",
            "precision", "fp16_psnr_db", "input", "train_hardware_total", "train_stages")


def test_every_style_ships_as_a_standard_and_a_lite_net():
    names = {path.stem for path in MODELS}
    standard = {name for name in names if not name.endswith("_lite")}
    assert "mosaic" in standard  # the default style
    assert names == standard | {f"{name}_lite" for name in standard}


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_metadata_is_complete(path: Path):
    meta = read_metadata(path)
    missing = [key for key in REQUIRED if not meta.get(key) or meta[key] == "unknown"]
    assert not missing, missing
    assert meta["name"] == path.stem
    assert meta["arch"] == ("lite" if path.stem.endswith("_lite") else "standard")
    # The webcam overlay and `rtstyle image` show the display name: a lite net must say it is one.
    assert meta["display_name"].endswith(" (lite)") == path.stem.endswith("_lite"), meta["display_name"]
    assert meta["precision"] == "fp16" and float(meta["fp16_psnr_db"]) >= 40.0
    assert int(meta["train_steps_total"]) >= int(meta["train_steps"]) > 0
    stages = json.loads(meta["train_stages"])  # every run of its --init-from chain: steps, style, machine
    assert sum(stage["steps"] for stage in stages) == int(meta["train_steps_total"])
    assert stages[-1]["steps"] == int(meta["train_steps"])
    assert all(stage["hardware"].startswith(("cpu", "cuda")) for stage in stages)
    assert meta["train_hardware_total"] == describe_stages(stages)


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_trained_on_the_painting_it_names(path: Path, shared_data):
    meta = read_metadata(path)
    painting = shared_data / "styles" / f"{meta['style_image']}.jpg"
    assert hashlib.sha256(painting.read_bytes()).hexdigest() == meta["style_sha256"]


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_it_paints(path: Path):
    """A smooth gradient comes back the same size, finite, and visibly changed (strokes, palette)."""
    y, x = np.mgrid[0:96, 0:128]
    photo = np.stack([x * 2, y * 2, 255 - x], axis=-1).clip(0, 255).astype(np.uint8)
    styled = StyleEngine(path, device="cpu").stylize(photo)
    assert styled.shape == photo.shape and styled.dtype == np.uint8
    assert np.abs(styled.astype(np.float32) - photo).mean() > 10


def test_found_from_a_checkout_that_is_not_installed(monkeypatch):
    """As on the GPU machine (PYTHONPATH=., no pip install): models/ installs as realtime_style.models,
    so that package is missing there, and bench/perf.py once timed nothing for want of a model."""
    import sys

    from realtime_style.styles import installed_styles

    monkeypatch.setitem(sys.modules, "realtime_style.models", None)  # importing it now raises ImportError
    checkout_models = Path(__file__).resolve().parent.parent / "models"
    assert shipped_models_dir() == checkout_models
    found = {style.name: style.path for style in installed_styles()}
    assert found["mosaic"].parent == checkout_models and "mosaic_lite" in found
