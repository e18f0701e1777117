"""Pack what a run on a GPU machine needs into .carry/, and print the call that makes it.

The device tool (a GPU machine that some sessions are lent, docs/training.md "On a GPU machine")
copies the checkout and the folders named in its `carry`, 64 MiB in all, with no internet there.
The checkout is 38 MB, 32 MB of it the shipped models, so a run that needs data has to leave
models behind. Two plans:

    python tools/device_kit.py train mosaic candy   # VGG19 in fp16, training photos, the style images
    python tools/device_kit.py train mosaic --init-from DIR   # going on from DIR/mosaic.onnx
    python tools/device_kit.py perf                 # the PyAV wheel for the machine's Python 3.12
    python tools/device_kit.py restore              # afterwards: the hidden models back in git's index

Packing takes the models the run does not need out of git's index (they stay on disk) and hides
them in .git/info/exclude, so that they do not travel; `restore` undoes that, and must run before
the next commit. Device time is short (15 minutes a session, each call at most 10), so each plan
is one call that does everything and brings its results back under $OUT.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_style.errors import UserError  # noqa: E402

CARRY = ROOT / ".carry"
EXCLUDE = ROOT / ".git" / "info" / "exclude"
BEGIN, END = "# device_kit: hidden from the device copy; python tools/device_kit.py restore", "# device_kit end"
LIMIT = 64 * 2**20           # what may travel in one call
MARGIN = 2 * 2**20           # for files that appear between packing and the call
SHARED = ROOT.parent / "shared" / "data"
TRAIN_SIZE, TRAIN_STEPS = 256, 20_000   # the full recipe of the style-set issue
PHOTO_QUALITY = 80           # re-encoding the training photos (short side 256, q88) to fit
PERF_MODELS = ("mosaic", "mosaic_lite")
# The lent machines' Python (3.12), for which PyAV's wheel is fetched.
WHEEL_ARGS = ["--no-deps", "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
              "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
              "--platform", "manylinux2014_x86_64"]
RECIPE_KEYS = ("arch", "color_skip_start", "style_weight", "content_weight", "tv_weight", "content_layer",
               "style_size", "display_name", "style_credit", "style_license")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def hidden_models() -> list[str]:
    """The paths between our markers in .git/info/exclude."""
    lines = EXCLUDE.read_text().splitlines() if EXCLUDE.exists() else []
    if BEGIN not in lines:
        return []
    return [line.lstrip("/") for line in lines[lines.index(BEGIN) + 1:lines.index(END)]]


def refuse_if_hidden() -> None:
    """A second packing would hide nothing new and lose the list of what the first one hid."""
    if hidden_models():
        raise UserError("models are already hidden from an earlier packing: run `python tools/device_kit.py "
                        "restore` first")


def hide_models(keep: tuple[str, ...]) -> list[str]:
    """Take every tracked model but ``keep`` out of the index and ignore it (the files stay on disk)."""
    refuse_if_hidden()
    staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", "models"], cwd=ROOT).returncode
    if staged:  # restore puts back HEAD's models: a staged change to one would be lost
        raise UserError("models/ has staged changes: commit or unstage them before packing")
    hide = [p for p in git("ls-files", "models/*.onnx").split() if Path(p).stem not in keep]
    lines = EXCLUDE.read_text().splitlines() if EXCLUDE.exists() else []
    if "/.carry/" not in lines:
        lines.append("/.carry/")
    EXCLUDE.parent.mkdir(parents=True, exist_ok=True)
    EXCLUDE.write_text("\n".join([*lines, BEGIN, *("/" + p for p in hide), END]) + "\n")
    if hide:
        git("rm", "--cached", "-q", "--", *hide)
    return hide


def restore() -> None:
    hidden = hidden_models()
    if hidden:
        git("reset", "-q", "--", *hidden)
    lines = EXCLUDE.read_text().splitlines() if EXCLUDE.exists() else []
    if BEGIN in lines:
        lines = lines[:lines.index(BEGIN)] + lines[lines.index(END) + 1:]
        EXCLUDE.write_text("\n".join(lines) + "\n")
    missing = [p for p in hidden if not (ROOT / p).exists()]
    print(f"{len(hidden)} models back in the index" + (f"; missing on disk: {', '.join(missing)}" if missing else ""))


def travelling_bytes() -> int:
    """What the device tool copies besides `carry`: tracked files, and untracked ones git does not ignore."""
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def recipe(name: str) -> dict:
    """A shipped model's net, loss weights and credits (``mosaic``, ``mosaic_lite``), at the full recipe's
    size and steps; ``style`` is its painting's file under .carry/styles."""
    from realtime_style.styles import read_metadata

    model = ROOT / "models" / f"{name}.onnx"
    if not model.is_file():
        raise UserError(f"no shipped model {model.relative_to(ROOT)}: its recipe is where the weights come from")
    meta = read_metadata(model)
    config = json.loads(meta["train_config"])
    found = {key: config[key] for key in RECIPE_KEYS if config.get(key) is not None}
    if config.get("arch") == "lite" and "color_skip_start" not in found:
        # A run that went on from a lite net kept its skip: the start is that of the run that set it.
        starts = [stage["color_skip_start"] for stage in json.loads(meta.get("train_stages") or "[]")
                  if stage.get("color_skip_start") is not None]
        if starts:
            found["color_skip_start"] = starts[-1]
    return {"name": name, "style": f"styles/{Path(config['style']).name}", "size": TRAIN_SIZE, "steps": TRAIN_STEPS,
            **found}


def pack_photos(folder: Path, budget: int, seed: int = 0) -> tuple[int, int]:
    """As many training photos as fit in ``budget`` bytes, in a fixed random order, re-encoded."""
    from PIL import Image, ImageOps

    from realtime_style.dataset import find_images

    photos = find_images([SHARED / "train"])
    random.Random(seed).shuffle(photos)
    folder.mkdir(parents=True)
    used = count = 0
    for i, path in enumerate(photos):
        try:
            with Image.open(path) as im:
                data = io.BytesIO()
                ImageOps.exif_transpose(im).convert("RGB").save(data, "JPEG", quality=PHOTO_QUALITY)
        except OSError:
            continue  # unreadable: the training loader would skip it too
        if used + data.tell() > budget:
            break
        (folder / f"{i:05d}.jpg").write_bytes(data.getvalue())
        used, count = used + data.tell(), count + 1
    return count, used


def run_recipes(styles: list[str], init_from: Path | None = None, lr: float | None = None,
                color_skip_start: float | None = None) -> list[dict]:
    """The shipped models' recipes with the call's options applied, checked before anything is packed.

    ``init_from``: a folder of models (NAME.onnx) the runs start from instead of random weights;
    ``lr``: every run's learning rate instead of tools/train.py's default (1e-3);
    ``color_skip_start``: where the lite runs' colour skip starts, for lite nets whose recipe does not say
    (those trained before 2026-12-05 record none; models/README.md gives the start each style used)."""
    from realtime_style.transformer_net import COLOR_SKIP_START_RANGE

    recipes = [recipe(style) for style in styles]
    if color_skip_start is not None:
        lites = [r for r in recipes if r.get("arch") == "lite"]
        if not lites:
            raise UserError("--color-skip-start: only lite nets have a colour skip; name one, e.g. mosaic_lite")
        if init_from is not None:
            raise UserError("--color-skip-start: with --init-from each run goes on with its starting net's skip")
        low, high = COLOR_SKIP_START_RANGE
        if not low <= color_skip_start <= high:
            raise UserError(f"--color-skip-start {color_skip_start}: give a start between {low:g} and {high:g}, "
                            "such as 0.25")
        for r in lites:
            r["color_skip_start"] = color_skip_start
    if lr is not None:
        if not 0 < lr < 1:
            raise UserError(f"--lr {lr}: give a learning rate between 0 and 1, such as 5e-4")
        for r in recipes:
            r["lr"] = lr
    if init_from is not None:
        for r in recipes:
            if not (init_from / f"{r['name']}.onnx").is_file():
                raise UserError(f"--init-from {init_from}: no {r['name']}.onnx there")
            r["init_from"] = f"init/{r['name']}.onnx"
            r.pop("color_skip_start", None)  # the starting net's own skip goes on
    return recipes


def pack_train(recipes: list[dict], init_from: Path | None = None) -> str:
    """Packs .carry for bench/device_train.py: the recipes (run_recipes, given the same ``init_from``),
    VGG19 in fp16, the paintings, the starting nets and as many training photos as fit; returns the
    device command."""
    from realtime_style.weights import HALF_FILE, write_half_copy

    paintings = {SHARED / r["style"] for r in recipes}
    for painting in paintings:
        if not painting.is_file():
            raise UserError(f"no style image {painting}")
    reset_carry()
    hidden = hide_models(keep=PERF_MODELS)  # the default style stays, for a quick check there
    write_half_copy(CARRY / HALF_FILE)
    (CARRY / "styles").mkdir()
    for painting in paintings:
        shutil.copy2(painting, CARRY / "styles")
    if init_from is not None:
        (CARRY / "init").mkdir()
        for r in recipes:
            shutil.copy2(init_from / f"{r['name']}.onnx", CARRY / "init")
    (CARRY / "recipes.json").write_text(json.dumps(recipes, indent=2) + "\n")
    budget = LIMIT - MARGIN - travelling_bytes() - folder_bytes(CARRY)
    count, used = pack_photos(CARRY / "train", budget)
    print(f"packed {len(recipes)} recipes, VGG19 in fp16 and {count} training photos ({used / 1e6:.1f} MB); "
          f"{len(hidden)} models hidden, {', '.join(PERF_MODELS)} travel")
    # The GPU's load every 10 s beside the training (on 2026-12-04 four runs kept it at 100 %).
    return ("export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD; nvidia-smi -L; (nvidia-smi --query-gpu=timestamp,"
            "utilization.gpu,memory.used --format=csv -l 10 > $OUT/gpu_util.csv 2>&1 &); "
            "python3 bench/device_train.py --minutes 7 --out $OUT")


def pack_perf() -> str:
    reset_carry()
    hidden = hide_models(keep=PERF_MODELS)
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", *WHEEL_ARGS, "-d",
                              str(CARRY / "wheels"), "av>=18"], capture_output=True, text=True)
    if fetched.returncode:
        raise UserError("pip could not download PyAV's wheel for Python 3.12: "
                        + (fetched.stderr.strip().splitlines() or ["no message"])[-1])
    print(f"packed the PyAV wheel; {len(hidden)} models hidden, {', '.join(PERF_MODELS)} travel")
    return ("python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/wheels/*.whl && "
            "export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && nvidia-smi -L && "
            "python3 -c 'import onnxruntime as o; print(o.get_available_providers())' && "
            "python3 bench/perf.py 2>&1 | tee $OUT/perf.md")


def reset_carry() -> None:
    if CARRY.exists():
        shutil.rmtree(CARRY)
    CARRY.mkdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="plan", required=True)
    train = sub.add_parser("train", help="train styles for the full recipe, against the clock")
    train.add_argument("styles", nargs="+", help="names of shipped models, e.g. mosaic candy mosaic_lite")
    train.add_argument("--init-from", type=Path, metavar="DIR",
                       help="start each run from DIR/NAME.onnx (models/, or the models.tar of an earlier call, "
                            "unpacked), instead of random weights")
    train.add_argument("--lr", type=float, help="learning rate of every run (default: tools/train.py's, 1e-3; "
                                                "candy's run broke down at that rate after 2,700 steps)")
    train.add_argument("--color-skip-start", type=float, metavar="K",
                       help="start of the lite runs' colour skip, as tools/train.py's option (default: the one "
                            "the shipped lite net recorded, else train.py's; models/README.md lists each style's)")
    sub.add_parser("perf", help="bench/perf.py's GPU rows and end-to-end runs")
    sub.add_parser("restore", help="put the models hidden by a packing back in git's index")
    args = parser.parse_args()
    if args.plan == "restore":
        restore()
        return 0
    refuse_if_hidden()  # before the try below, whose restore would un-hide the earlier packing's models
    if args.plan == "train":  # bad names and options are refused before anything is hidden
        recipes = run_recipes(args.styles, args.init_from, args.lr, args.color_skip_start)
    try:
        command = pack_train(recipes, args.init_from) if args.plan == "train" else pack_perf()
        total = travelling_bytes() + folder_bytes(CARRY)
        if total > LIMIT:
            raise UserError(f"{total / 2**20:.1f} MiB would travel, over the 64 MiB a call takes")
    except BaseException:  # Ctrl-C too: nothing stays hidden from git after a failed packing
        restore()
        raise
    print(f"{total / 2**20:.1f} MiB travel. The call (device tool, `run`), then `python tools/device_kit.py restore`:")
    print(json.dumps({"command": command, "carry": [".carry"], "timeout_s": 600}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"device_kit.py: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("device_kit.py: interrupted; the models are back in git's index", file=sys.stderr)
        sys.exit(130)
