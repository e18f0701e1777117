"""The GPU-machine kit: VGG19's float16 copy, packing for the device tool, and the time-boxed trainer.

The trainer runs here on the CPU, for a few steps at a tiny size, so that the script a GPU session
depends on cannot rot while no session has a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realtime_style import weights
from realtime_style.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kit = load_script(ROOT / "tools" / "device_kit.py")


def photo(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """Smooth colour with noise: something VGG and JPEG treat like a photo."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([x, y, 1 - x * y], axis=2) * rng.uniform(0.4, 1.0, 3) + rng.normal(0, 0.05, (height, width, 3))
    return Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def half_weights(vgg_weights_path, tmp_path_factory) -> Path:
    return weights.write_half_copy(tmp_path_factory.mktemp("vgg") / weights.HALF_FILE, source=vgg_weights_path)


@pytest.mark.vgg
def test_half_copy_is_pinned_and_close_to_the_float32_weights(half_weights, vgg_weights_path, tmp_path):
    from safetensors.numpy import save_file

    full = weights.load_converted(vgg_weights_path)
    half = weights.load_converted(half_weights)  # raises unless it hashes as pinned
    assert half_weights.stat().st_size < 0.55 * vgg_weights_path.stat().st_size
    for name, array in full.items():
        assert half[name].dtype == np.float16
        assert np.abs(half[name].astype(np.float32) - array).max() <= 1e-3 * np.abs(array).max()
    half["conv1_1.bias"] = half["conv1_1.bias"] + np.float16(0.01)   # one changed weight
    save_file(half, str(tmp_path / "changed.safetensors"))
    with pytest.raises(UserError, match="hash"):
        weights.load_converted(tmp_path / "changed.safetensors")


@pytest.mark.vgg
def test_half_copy_gives_the_same_losses_as_float32(half_weights, vgg):
    """The perceptual loss through the float16 weights is the float32 one to within 0.1 %."""
    import torch

    from realtime_style.vgg import load_vgg19

    half_vgg = load_vgg19(half_weights)
    image = torch.from_numpy(np.asarray(photo(np.random.default_rng(1), 96, 128), np.float32) / 255)
    image = image.permute(2, 0, 1)[None]
    layers = ("relu1_1", "relu3_1", "relu5_1")
    with torch.no_grad():
        a, b = vgg(image, layers), half_vgg(image, layers)
    for layer in layers:
        assert next(half_vgg.parameters()).dtype == torch.float32
        assert (a[layer] - b[layer]).norm() <= 1e-3 * a[layer].norm(), layer


def test_hiding_models_takes_them_out_of_what_travels_and_restore_puts_them_back(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    for name in ("mosaic", "mosaic_lite", "candy"):
        (repo / "models" / f"{name}.onnx").write_bytes(b"x" * 1000)
    (repo / "README.md").write_text("hi\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    monkeypatch.setattr(kit, "ROOT", repo)
    monkeypatch.setattr(kit, "EXCLUDE", repo / ".git" / "info" / "exclude")

    travels = kit.travelling_bytes()
    assert kit.hide_models(keep=("mosaic",)) == ["models/candy.onnx", "models/mosaic_lite.onnx"]
    assert kit.travelling_bytes() == travels - 2000
    assert all((repo / "models" / f"{n}.onnx").exists() for n in ("candy", "mosaic_lite"))  # still on disk
    with pytest.raises(UserError, match="restore"):
        kit.hide_models(keep=())
    kit.restore()
    assert kit.travelling_bytes() == travels
    (repo / "models" / "candy.onnx").write_bytes(b"y" * 10)  # a staged change would not survive restore
    subprocess.run([*git, "add", "models/candy.onnx"], check=True)
    with pytest.raises(UserError, match="staged"):
        kit.hide_models(keep=())
    subprocess.run([*git, "reset", "-q"], check=True)
    subprocess.run([*git, "checkout", "-q", "--", "models/candy.onnx"], check=True)
    assert subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout == ""
    assert kit.hidden_models() == []


def test_packed_photos_fit_the_budget(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    (tmp_path / "shared" / "train").mkdir(parents=True)
    for i in range(12):
        photo(rng, 96, 128).save(tmp_path / "shared" / "train" / f"p{i:02d}.jpg", quality=95)
    (tmp_path / "shared" / "train" / "broken.jpg").write_bytes(b"not a JPEG")
    monkeypatch.setattr(kit, "SHARED", tmp_path / "shared")
    count, used = kit.pack_photos(tmp_path / "all", budget=10**9)
    assert count == 12
    budget = used // 2
    count, used = kit.pack_photos(tmp_path / "half", budget=budget)
    files = list((tmp_path / "half").iterdir())
    assert 3 <= count <= 9 and len(files) == count
    assert used == sum(f.stat().st_size for f in files) <= budget


def test_recipe_comes_from_the_shipped_model():
    recipe = kit.recipe("candy")
    assert recipe["style"] == "styles/candy.jpg" and recipe["size"] == 256 and recipe["steps"] == 20_000
    assert recipe["style_weight"] > 0 and "BSD" in recipe["style_license"] and recipe["arch"] == "standard"
    lite = kit.recipe("wave_lite")
    assert lite["style"] == "styles/wave.jpg" and lite["arch"] == "lite"
    with pytest.raises(UserError, match="no shipped model"):
        kit.recipe("no_such_style")
    with pytest.raises(UserError, match="--lr 2.0"):  # refused before anything is packed or hidden
        kit.run_recipes(["candy"], lr=2.0)


def test_color_skip_start_sets_the_lite_runs_start_and_nothing_else():
    """Shipped lite nets trained before 2026-12-05 record no skip start: a from-scratch run is told it."""
    standard, lite = kit.run_recipes(["candy", "candy_lite"], color_skip_start=0.5)
    assert lite["color_skip_start"] == 0.5 and "color_skip_start" not in standard
    with pytest.raises(UserError, match="only lite nets"):
        kit.run_recipes(["candy"], color_skip_start=0.5)
    with pytest.raises(UserError, match="between 0 and 2"):
        kit.run_recipes(["candy_lite"], color_skip_start=3.0)
    with pytest.raises(UserError, match="--init-from"):
        kit.run_recipes(["candy_lite"], init_from=ROOT / "models", color_skip_start=0.5)
    started = kit.run_recipes(["candy_lite"], init_from=ROOT / "models")[0]
    assert started["init_from"] == "init/candy_lite.onnx" and "color_skip_start" not in started


def test_lite_recipe_keeps_the_skip_start_of_the_run_that_set_it(tmp_path, monkeypatch):
    """A lite net trained further from itself records no skip start of its own: the recipe takes the
    start of the earlier run that set it, so a run from scratch starts its skip where that style needs."""
    import onnx

    from realtime_style.checkpoint import training_stages

    config = {"display_name": "Wave (lite)", "hardware": ["cpu: test"]}
    assert "color_skip_start" not in training_stages(config, 10)[-1]
    set_it = training_stages({**config, "color_skip_start": 0.25}, 300)
    assert set_it[-1]["color_skip_start"] == 0.25
    stages = training_stages({**config, "earlier_stages": set_it}, 1200)  # went on from that net

    model = onnx.load(str(ROOT / "models" / "wave_lite.onnx"))
    meta = {p.key: p for p in model.metadata_props}
    train_config = json.loads(meta["train_config"].value)
    train_config["color_skip_start"] = None
    meta["train_config"].value = json.dumps(train_config)
    meta["train_stages"].value = json.dumps(stages)
    (tmp_path / "models").mkdir()
    onnx.save(model, str(tmp_path / "models" / "wave_lite.onnx"))
    monkeypatch.setattr(kit, "ROOT", tmp_path)
    assert kit.recipe("wave_lite")["color_skip_start"] == 0.25
    meta["train_stages"].value = json.dumps(training_stages(config, 1200))  # no run recorded one
    onnx.save(model, str(tmp_path / "models" / "wave_lite.onnx"))
    assert "color_skip_start" not in kit.recipe("wave_lite")  # train.py's default for a new skip applies


@pytest.mark.vgg
@pytest.mark.slow
def test_device_trainer_trains_stops_at_the_deadline_and_exports(half_weights, tmp_path):
    carry = tmp_path / "carry"
    (carry / "train").mkdir(parents=True)
    (carry / "styles").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        photo(rng, 48, 64).save(carry / "train" / f"{i}.jpg")
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = (230, 40, 20)
    Image.fromarray(stripes).save(carry / "styles" / "stripes.jpg")
    (carry / weights.HALF_FILE).symlink_to(half_weights)
    # One run that ends by itself, one that only the deadline stops.
    recipes = [{"name": name, "style": "styles/stripes.jpg", "size": 32, "steps": steps, "style_size": 64,
                "style_weight": 10.0, "display_name": name.title(), "style_license": "test licence"}
               for name, steps in (("short", 2), ("long", 100_000))]
    (carry / "init").mkdir()  # the short one goes on from the shipped standard net, as `--init-from models` packs it
    (carry / "init" / "short.onnx").symlink_to(ROOT / "models" / "mosaic.onnx")
    recipes[0]["init_from"] = "init/short.onnx"
    recipes[0]["lr"] = 5e-4  # as `device_kit.py train --lr` packs it
    (carry / "recipes.json").write_text(json.dumps(recipes))
    out = tmp_path / "out"
    # As on the GPU machine: no PyAV (a module of that name that fails to import stands first on the path).
    (tmp_path / "no_pyav" / "av").mkdir(parents=True)
    (tmp_path / "no_pyav" / "av" / "__init__.py").write_text("raise ImportError('no PyAV on the GPU machine')\n")
    path = os.pathsep.join(filter(None, [str(tmp_path / "no_pyav"), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "device_train.py"), "--carry", str(carry),
                             "--work", str(tmp_path / "work"), "--out", str(out), "--minutes", "0.4",
                             "--device", "cpu", "--workers", "0", "--checkpoint-every", "5"],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path})
    assert result.returncode == 0, result.stdout + result.stderr
    with tarfile.open(out / "models.tar") as tar:
        assert sorted(tar.getnames()) == ["long.onnx", "short.onnx"]
        tar.extractall(tmp_path / "models", filter="data")
    from realtime_style.styles import read_metadata

    short, long = (read_metadata(tmp_path / "models" / f"{n}.onnx") for n in ("short", "long"))
    assert short["train_steps"] == "2" and short["style_license"] == "test licence"
    assert json.loads(short["train_config"])["lr"] == 5e-4 and json.loads(long["train_config"])["lr"] == 1e-3
    shipped = read_metadata(ROOT / "models" / "mosaic.onnx")
    assert int(short["train_steps_total"]) == int(shipped["train_steps_total"]) + 2
    assert 2 < int(long["train_steps"]) < 100_000 and long["train_size"] == "32"
    summary = (out / "summary.md").read_text()
    assert "| short | 0 | 2 |" in summary and "| long | 130 |" in summary
    with tarfile.open(out / "runs.tar") as tar:
        assert {"short/loss.csv", "long/loss.csv", "long/train.log"} <= set(tar.getnames())

    # What comes back where an export fails on the GPU machine: the net without Adam's moments,
    # which exports here to the same model.
    trainer = load_script(ROOT / "bench" / "device_train.py")
    checkpoint = tmp_path / "work" / "runs" / "long" / "checkpoint.pt"
    slim = trainer.slim_checkpoint(checkpoint, tmp_path / "long.pt")
    assert slim.stat().st_size < 0.5 * checkpoint.stat().st_size
    exported = subprocess.run([sys.executable, "-m", "realtime_style", "export", str(slim),
                               str(tmp_path / "again.onnx")], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    assert read_metadata(tmp_path / "again.onnx")["train_steps"] == long["train_steps"]
