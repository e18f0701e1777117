"""tools/gallery.py: the README's gallery and docs/styles.md, from the shipped models."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from realtime_style.styles import read_metadata, shipped_models_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gallery  # noqa: E402


def test_gallery_pictures_every_shipped_style_and_leaves_the_rest_of_the_readme(tmp_path: Path, shared_data):
    readme = tmp_path / "README.md"
    before, after = "# title\n\nintro\n\n", "\n\n## Next\n\ntext\n"
    readme.write_text(before + gallery.MARKERS[0] + "\nstale\n" + gallery.MARKERS[1] + after)
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gallery.py"), "--readme", str(readme),
                             "--docs", str(tmp_path / "docs"), "--paintings", str(shared_data / "styles")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr

    models = sorted(p.stem for p in shipped_models_dir().glob("*.onnx"))
    standard = [name for name in models if not name.endswith("_lite")]
    assert standard, "no shipped styles to picture"
    text = readme.read_text()
    assert text.startswith(before) and text.endswith(after) and "stale" not in text
    for name in standard:
        assert f"![{name}](docs/img/gallery/{name}.jpg)" in text
        with Image.open(tmp_path / "docs" / "img" / "gallery" / f"{name}.jpg") as thumb:
            assert max(thumb.size) == gallery.THUMB_LONG_SIDE
        with Image.open(tmp_path / "docs" / "img" / "styles" / f"{name}.jpg") as grid:
            columns = 3 if f"{name}_lite" in models else 2  # photo, standard[, lite]
            assert grid.width == columns * gallery.CELL_LONG_SIDE + (columns - 1) * gallery.GAP
            assert grid.height > gallery.CELL_LONG_SIDE  # two photos, one above the other
        assert (tmp_path / "docs" / "img" / "styles" / f"{name}_painting.jpg").is_file()

    page = (tmp_path / "docs" / "styles.md").read_text()
    for name in models:  # every net, standard and lite, with the steps its metadata records
        steps = int(read_metadata(shipped_models_dir() / f"{name}.onnx")["train_steps_total"])
        assert f"| {name} | " in page and f"| {steps:,} |" in page
    untrained = [p.stem for p in (shared_data / "styles").glob("*.jpg") if p.stem not in standard]
    for name in untrained:
        assert name in page.split("Not trained yet:")[1].splitlines()[0]

    with Image.open(tmp_path / "docs" / "img" / "bunny_mosaic.jpg") as pair:  # the README's first picture
        frame_and_styled = np.asarray(pair.convert("RGB"), dtype=np.float32)
    with av.open(str(gallery.SAMPLE_CLIP)) as container:
        decoded = next(itertools.islice(container.decode(video=0), gallery.SAMPLE_FRAME, None))
        source = decoded.to_ndarray(format="rgb24").astype(np.float32)
    height, width = source.shape[:2]
    assert frame_and_styled.shape == (height, 2 * width, 3)
    frame, styled = frame_and_styled[:, :width], frame_and_styled[:, width:]
    assert np.abs(frame - source).mean() < 3, "the left half is the clip's frame (JPEG aside)"
    assert np.abs(styled - source).mean() > 10, "the right half must be stylized, not the frame again"

    gallery.replace_gallery(readme, standard)  # a second run changes nothing
    assert readme.read_text() == text


def test_gallery_refuses_a_readme_without_markers(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text("# no gallery here\n")
    with pytest.raises(SystemExit, match="gallery:start"):
        gallery.replace_gallery(readme, ["mosaic"])
    assert readme.read_text() == "# no gallery here\n"
