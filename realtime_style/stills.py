"""`rtstyle image`: stylize image files, folders or globs through the engine."""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from realtime_style.engine import StyleEngine, contrast_weight
from realtime_style.errors import UserError
from realtime_style.files import check_output_path
from realtime_style.images import IMAGE_SUFFIXES, RGBImage, check_image_suffix, load_image, save_image


@dataclass
class Job:
    source: Path
    target: Path


def plan_jobs(inputs: list[str], output: str | os.PathLike, overwrite: bool = False) -> list[Job]:
    """Pair every input image with its output, checking all of them before any work.

    One input file and an output with an image suffix: that file. Otherwise the
    output is a folder (created if missing) and each result keeps its input's name.
    """
    sources = expand_inputs(inputs)
    output = Path(output)
    single = len(sources) == 1 and len(inputs) == 1 and Path(inputs[0]).is_file()
    if single and output.suffix:
        check_image_suffix(output)
        return [Job(sources[0], check_output_path(output, (sources[0],), overwrite))]
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} is a file; with several inputs, -o names a folder")
    names = [s.name for s in sources]
    clashes = {n for n in names if names.count(n) > 1}
    if clashes:
        raise UserError(f"several inputs are named {sorted(clashes)[0]}; they would write the same output")
    if not output.exists():  # created when the first result is written, so a failure leaves nothing
        parent = output.parent if str(output.parent) else Path(".")
        if not parent.is_dir():
            raise UserError(f"output folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise UserError(f"output folder {parent} is not writable")
        return [Job(s, output / s.name) for s in sources]
    return [Job(s, check_output_path(output / s.name, tuple(sources), overwrite)) for s in sources]


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given, folders' images (not recursive), globs expanded; in order, without repeats."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not images:
                raise UserError(f"{path}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
            found += images
        elif path.exists():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item) if Path(m).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise UserError(f"{item}: matches no images")
            found += matches
        else:
            raise UserError(f"{path}: no such file")
    unique: list[Path] = []
    for path in found:
        if path.resolve() not in {u.resolve() for u in unique}:
            unique.append(path)
    return unique


def stylize_images(jobs: list[Job], engine: StyleEngine, progress: bool = True) -> list[Path]:
    """Load, stylize and save each job; the alpha channel passes through untouched."""
    from tqdm import tqdm

    written = []
    for job in tqdm(jobs, unit="image", disable=not progress or len(jobs) < 2):
        image = load_image(job.source)
        styled = engine.stylize(image.rgb)
        weight = contrast_weight(image.rgb) * engine.controls.strength
        if engine.controls.contrast_gate and weight < engine.controls.strength:
            tqdm.write(f"note: {job.source.name} has almost no contrast, so it got {weight:.0%} of the style "
                       "(at full style the net would paint its noise)", file=sys.stderr)
        job.target.parent.mkdir(exist_ok=True)
        written.append(save_image(job.target, RGBImage(styled, image.alpha)))
    return written
