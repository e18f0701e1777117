#!/usr/bin/env python
"""Pictures of the installed styles: the README's gallery and docs/styles.md.

    python tools/gallery.py                  # after training or replacing a style

Writes, for every style NAME shipped in models/ (and NAME_lite beside it, when there is one):
- docs/img/gallery/NAME.jpg: the bundled sample photo in that style, small, for the README's
  gallery (between its "gallery" markers, which this rewrites);
- docs/img/styles/NAME.jpg: two Kodak photos, each beside its standard and lite versions, and
  docs/img/styles/NAME_painting.jpg, the painting, for docs/styles.md (written whole);
- docs/img/bunny_mosaic.jpg: a frame of the bundled clip beside the same frame in the default
  style, as the README's first command makes it.
Every picture goes through the runtime's engine (ONNX Runtime on the CPU), as a user gets it.
The paintings come from ../shared/data/styles; without it the painting column is left out.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

import av
import numpy as np

from realtime_style.engine import StyleEngine
from realtime_style.images import load_image, resize_long_side, save_image
from realtime_style.styles import DEFAULT_STYLE, StyleModel, shipped_models_dir
from realtime_style.video import frame_to_rgb

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
GALLERY_PHOTO = ROOT / "samples" / "kodim23.jpg"
SAMPLE_CLIP = ROOT / "samples" / "big_buck_bunny_5s.mp4"
SAMPLE_FRAME = 60         # 2.4 s in: the rabbit stretching
STYLE_PHOTOS = [SHARED / "eval" / "kodak24" / name for name in ("kodim15.png", "kodim05.png")]
RUN_LONG_SIDE = 512       # the nets paint at this size, as bench/quality.py measures them
CELL_LONG_SIDE = 320      # and are shown at this size in docs/styles.md
THUMB_LONG_SIDE = 200     # README gallery
GAP = 4
MARKERS = ("<!-- gallery:start -->", "<!-- gallery:end -->")
GALLERY_BLOCK = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.S)
PER_ROW = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paintings", type=Path, default=SHARED / "styles", help="folder with the style images")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    if not args.readme.is_file() or not GALLERY_BLOCK.search(args.readme.read_text()):
        parser.error(f"{args.readme} has no {MARKERS[0]} ... {MARKERS[1]} block to fill")  # before writing anything

    # The shipped models only, not a user's own ($RTSTYLE_MODELS, ~/.local/share/rtstyle/models).
    styles = {p.stem: StyleModel(p.stem, p) for p in sorted(shipped_models_dir().glob("*.onnx"))}
    standard = [s for name, s in styles.items() if not name.endswith("_lite")]
    (args.docs / "img" / "gallery").mkdir(parents=True, exist_ok=True)
    (args.docs / "img" / "styles").mkdir(parents=True, exist_ok=True)

    gallery_photo = resize_long_side(load_image(GALLERY_PHOTO).rgb, RUN_LONG_SIDE)
    save_image(args.docs / "img" / "gallery" / "photo.jpg", shrink(gallery_photo, THUMB_LONG_SIDE), quality=85)
    photos = [resize_long_side(load_image(p).rgb, RUN_LONG_SIDE) for p in STYLE_PHOTOS if p.is_file()]
    sections = []
    for style in standard:
        lite = styles.get(f"{style.name}_lite")
        engines = [StyleEngine(style.path, device="cpu")] + ([StyleEngine(lite.path, device="cpu")] if lite else [])
        thumb = shrink(engines[0].stylize(gallery_photo), THUMB_LONG_SIDE)
        save_image(args.docs / "img" / "gallery" / f"{style.name}.jpg", thumb, quality=85)
        if photos:
            rows = [[shrink(p, CELL_LONG_SIDE)] + [shrink(e.stylize(p), CELL_LONG_SIDE) for e in engines]
                    for p in photos]
            save_image(args.docs / "img" / "styles" / f"{style.name}.jpg", grid(rows), quality=82)
        painting = find_painting(args.paintings, engines[0].metadata)
        if painting is not None:
            save_image(args.docs / "img" / "styles" / f"{style.name}_painting.jpg",
                       shrink(painting, CELL_LONG_SIDE), quality=85)
        sections.append(style_section([e.metadata for e in engines], painting is not None, bool(photos)))
        print(f"{style.name}: done{' (no lite net)' if lite is None else ''}")

    save_image(args.docs / "img" / "bunny_mosaic.jpg", sample_frame_pair(styles[DEFAULT_STYLE]), quality=85)
    (args.docs / "styles.md").write_text(styles_page(sections, standard, args.paintings))
    replace_gallery(args.readme, [s.name for s in standard])
    print(f"wrote {args.docs / 'styles.md'} and the gallery in {args.readme}")


def sample_frame_pair(style: StyleModel) -> np.ndarray:
    """The README's first picture: a frame of the bundled clip and the same frame stylized at its own size."""
    with av.open(str(SAMPLE_CLIP)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == SAMPLE_FRAME:
                rgb = frame_to_rgb(frame)
                break
        else:
            raise SystemExit(f"{SAMPLE_CLIP} has no frame {SAMPLE_FRAME}")
    return np.concatenate([rgb, StyleEngine(style.path, device="cpu").stylize(rgb)], axis=1)


def shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Downscale for display (never up): the nets run at RUN_LONG_SIDE, the page shows less."""
    return resize_long_side(rgb, min(long_side, max(rgb.shape[:2])))


def grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Cells side by side, rows one above the other, white gaps; cells padded to the largest."""
    height = max(c.shape[0] for r in rows for c in r)
    width = max(c.shape[1] for r in rows for c in r)
    columns = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (height + GAP) - GAP, columns * (width + GAP) - GAP, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            y, x = i * (height + GAP), j * (width + GAP)
            canvas[y:y + cell.shape[0], x:x + cell.shape[1]] = cell
    return canvas


def find_painting(folder: Path, metadata: dict[str, str]) -> np.ndarray | None:
    for suffix in (".jpg", ".jpeg", ".png"):
        path = folder / f"{metadata.get('style_image', '')}{suffix}"
        if path.is_file():
            return load_image(path).rgb
    return None


def training_line(meta: dict[str, str]) -> str:
    steps = meta.get("train_steps_total") or meta.get("train_steps") or "?"
    hardware = meta.get("train_hardware_total") or "not recorded (see models/README.md)"
    return (f"| {meta['name']} | {meta.get('arch', '?')} | {int(steps):,} | {meta.get('train_size', '?')} px | "
            f"{hardware} | {meta.get('fp16_psnr_db', '?')} dB |")


def style_section(metas: list[dict[str, str]], painting: bool, photos: bool) -> str:
    """A style's part of docs/styles.md, from the metadata of its standard net (and lite net, if any)."""
    meta, name, lite = metas[0], metas[0]["name"], len(metas) > 1
    lines = [f"## {meta.get('display_name', name)}", ""]
    if painting:
        lines += [f"![the painting](img/styles/{name}_painting.jpg)", ""]
    lines += [f"{meta.get('style_credit', 'unknown')}. Licence: {meta.get('style_license', 'unknown')}.", ""]
    if photos:
        columns = "photo, standard net" + (", lite net" if lite else " (no lite net yet)")
        lines += [f"![{name}: {columns}](img/styles/{name}.jpg)", "",
                  f"*Columns: {columns}. `rtstyle image photo.jpg -o out.png --style {name}`.*", ""]
    lines += ["| model | net | steps | trained at | trained on | fp16 vs fp32 |", "|---|---|---:|---|---|---:|",
              *map(training_line, metas)]
    return "\n".join(lines) + "\n"


def styles_page(sections: list[str], standard: list[StyleModel], paintings: Path) -> str:
    trained = {s.name for s in standard}
    missing = sorted(p.stem for p in paintings.glob("*.jpg") if p.stem not in trained) if paintings.is_dir() else []
    head = ["# Styles", "",
            "Every shipped style, on two Kodak photos the nets never saw in training (run at 512 px on the "
            "long side through ONNX Runtime on the CPU, shown at 320 px). The lite net is the one the webcam "
            "uses on a CPU ([performance.md](performance.md)). Steps and hardware are what each model's "
            "metadata records; `rtstyle styles` lists them too. Quality numbers: [quality.md](quality.md).", "",
            "*Generated by `python tools/gallery.py`; do not edit by hand.*", ""]
    if missing:
        head += [f"Not trained yet: {', '.join(missing)}.", ""]
    return "\n".join(head) + "\n" + "\n".join(sections)


def replace_gallery(readme: Path, names: list[str]) -> None:
    """The README's table of thumbnails, headed by the --style names, between MARKERS."""
    cells = [("photo", "docs/img/gallery/photo.jpg")] + [(f"`{n}`", f"docs/img/gallery/{n}.jpg") for n in names]
    table = []
    for start in range(0, len(cells), PER_ROW):
        chunk = cells[start:start + PER_ROW]
        table.append("| " + " | ".join(label for label, _ in chunk) + " |")
        if start == 0:
            table.append("|" + "---|" * len(chunk))
        table.append("| " + " | ".join(f"![{label.strip('`')}]({path})" for label, path in chunk) + " |")
    block = "\n".join([MARKERS[0], *table, MARKERS[1]])
    text = readme.read_text()
    if not GALLERY_BLOCK.search(text):
        raise SystemExit(f"{readme} has no {MARKERS[0]} ... {MARKERS[1]} block to fill")
    readme.write_text(GALLERY_BLOCK.sub(lambda _: block, text))

if __name__ == "__main__":
    main()
