"""`rtstyle image`: files, folders and globs in; alpha, orientation and sizes kept; inputs never touched."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, run_cli
from PIL import Image

from realtime_style.engine import StyleEngine
from realtime_style.errors import UserError
from realtime_style.export import psnr
from realtime_style.images import load_image
from realtime_style.stills import plan_jobs

PHOTO = ROOT / "samples" / "kodim23.jpg"


@pytest.fixture()
def small_photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.open(PHOTO).resize((96, 64)).save(path, quality=95)
    return path


def test_one_image_matches_the_engine(small_photo, tmp_path):
    out = tmp_path / "styled.png"
    result = run_cli("image", small_photo, "-o", out)
    assert result.returncode == 0, result.stderr
    styled = load_image(out).rgb
    expected = StyleEngine("mosaic", device="cpu").stylize(load_image(small_photo).rgb)
    assert styled.shape == (64, 96, 3)
    assert psnr(styled, expected) > 50  # PNG is lossless: the same pixels as the engine's


def test_a_black_image_stays_black_and_the_user_is_told_why(small_photo, tmp_path):
    Image.new("RGB", (48, 32)).save(tmp_path / "black.png")
    result = run_cli("image", tmp_path / "black.png", small_photo, "-o", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    assert not load_image(tmp_path / "out" / "black.png").rgb.any()
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert notes == ["note: black.png has almost no contrast, so it got 0% of the style "
                     "(at full style the net would paint its noise)"]


def test_alpha_passes_through_and_exif_rotation_is_honoured(tmp_path):
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = np.asarray(Image.open(PHOTO).resize((60, 40)))
    rgba[..., 3] = np.linspace(0, 255, 60, dtype=np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    rotated = Image.open(PHOTO).resize((60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise
    rotated.save(tmp_path / "turned.jpg", exif=exif)
    out = tmp_path / "out"
    result = run_cli("image", tmp_path / "alpha.png", tmp_path / "turned.jpg", "-o", out)
    assert result.returncode == 0, result.stderr
    alpha_out = load_image(out / "alpha.png")
    assert np.array_equal(alpha_out.alpha, rgba[..., 3])
    assert load_image(out / "turned.jpg").rgb.shape == (60, 40, 3)  # upright: portrait


def test_folders_and_globs_expand_and_inputs_stay_untouched(small_photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "b.png"):
        Image.open(small_photo).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    jobs = plan_jobs([str(folder), str(tmp_path / "*.jpg")], tmp_path / "out")
    assert [j.source.name for j in jobs] == ["a.jpg", "b.png", "photo.jpg"]
    assert [j.target.name for j in jobs] == ["a.jpg", "b.png", "photo.jpg"]
    result = run_cli("image", folder, "-o", tmp_path / "out", "--max-size", "32", "--strength", "0.5")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.png"]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_bad_image_arguments_are_refused_up_front(small_photo, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images in this folder"):
        plan_jobs([str(tmp_path / "empty")], tmp_path / "o")
    with pytest.raises(UserError, match="matches no images"):
        plan_jobs([str(tmp_path / "*.webp")], tmp_path / "o")
    existing = tmp_path / "exists.png"
    existing.write_bytes(b"keep")
    assert_one_line_error(run_cli("image", small_photo, "-o", existing), "already exists")
    assert_one_line_error(run_cli("image", small_photo, "-o", small_photo, "--overwrite"), "is also an input")
    assert_one_line_error(run_cli("image", tmp_path / "missing.jpg", "-o", tmp_path / "x.png"), "no such file")
    assert_one_line_error(run_cli("image", small_photo, "-o", tmp_path / "x.gif"), "unknown image type")
    assert_one_line_error(run_cli("image", small_photo, "-o", tmp_path / "x.png", "--style", "nope"), "unknown style")
    assert_one_line_error(run_cli("image", small_photo, small_photo.parent / "*.jpg", "-o", tmp_path / "new_folder",
                                  "--style", "nope"), "unknown style")
    assert not (tmp_path / "new_folder").exists()  # a failed run leaves no empty output folder behind
    assert existing.read_bytes() == b"keep"
