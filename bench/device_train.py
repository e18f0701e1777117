"""Train styles on a GPU machine within one call of the device tool, against the clock.

Runs on the device, over what `python tools/device_kit.py train STYLE ...` packed into .carry/
(that command prints the whole call):

    python3 bench/device_train.py --minutes 7 --out $OUT

Every recipe in .carry/recipes.json trains in its own process of tools/train.py, all at once, towards
the full recipe (20,000 steps at batch 4, 256 px). At the deadline the runs still going get SIGINT,
which makes train.py save its checkpoint and stop; every run is then exported to fp16 ONNX, its
metadata stating the steps and the machine. $OUT gets the models (models.tar), each run's log,
loss.csv, loss plot and last preview (runs.tar), and summary.md: steps reached, steps per second
and the mean losses of the last 100 steps, so the next session knows what a call buys.
A run cut short continues in a later call from its model: tools/train.py --init-from NAME.onnx.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from realtime_style.weights import HALF_FILE  # noqa: E402

# What comes back from the device: at most 8 files of 16 MiB each.
MAX_TAR_BYTES = 15 * 2**20
STOP_GRACE_S = 60       # all stopped runs together: each finishes its step and writes its checkpoint
EXPORT_S = 90           # all exports together, side by side
# `rtstyle export` without the CLI, which imports PyAV for its video options: the GPU machine has no
# PyAV, and on the first call (2026-12-04) every export there failed on that import.
EXPORT = ("import sys; from realtime_style.export import export_checkpoint; "
          "report = export_checkpoint(sys.argv[1], sys.argv[2]); "
          "print(f'wrote {report.path}; ONNX Runtime vs torch fp32: {min(report.psnr_db):.1f} dB PSNR at worst')")
RECIPE_OPTIONS = ("arch", "color_skip_start", "size", "steps", "lr", "style_weight", "content_weight", "tv_weight",
                  "content_layer", "style_size", "display_name", "style_credit", "style_license")


def train_command(recipe: dict, carry: Path, work: Path, args: argparse.Namespace) -> list[str]:
    """tools/train.py's options for one recipe (the command line overrides size and steps)."""
    options = {**recipe, "size": args.size or recipe["size"], "steps": args.steps or recipe["steps"]}
    command = [sys.executable, str(ROOT / "tools" / "train.py"), "--style", str(carry / recipe["style"]),
               "--name", recipe["name"], "--data", str(carry / "train"),
               "--out-dir", str(work / "runs" / recipe["name"]),
               "--no-export", "--overwrite", "--workers", str(args.workers), "--device", args.device,
               "--checkpoint-every", str(args.checkpoint_every), "--preview-every", str(args.checkpoint_every)]
    for key in RECIPE_OPTIONS:
        if options.get(key) is not None:
            command += ["--" + key.replace("_", "-"), str(options[key])]
    if recipe.get("init_from"):
        command += ["--init-from", str(carry / recipe["init_from"])]
    return command


def slim_checkpoint(checkpoint: Path, out: Path) -> Path:
    """The checkpoint without Adam's moments, a third of its size: enough to export the net on
    another machine (`rtstyle export`), or to start a run from it (`tools/train.py --init-from`)."""
    from realtime_style.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(checkpoint)
    state["optimizer"] = {"state": {}, "param_groups": state["optimizer"]["param_groups"]}
    return save_checkpoint(out, state)


def wait_all(processes: list[subprocess.Popen], deadline: float) -> None:
    """Wait for every process until one shared deadline, then kill what is left."""
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def losses_summary(loss_csv: Path, last: int = 100) -> dict:
    """Steps reached, and the means of the last ``last`` rows of a run's loss.csv."""
    if not loss_csv.is_file():
        return {"steps": 0}
    with loss_csv.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("images_per_s")]  # a run killed mid-write: a short line
    if not rows:
        return {"steps": 0}
    tail = rows[-last:]
    mean = {key: sum(float(r[key]) for r in tail) / len(tail) for key in ("content", "style", "temporal", "total",
                                                                            "images_per_s")}
    return {"steps": int(rows[-1]["step"]), **mean}


def pack(files: list[tuple[Path, str]], out: Path, stem: str) -> list[Path]:
    """Tar ``files`` (path, name inside) into as many tars under MAX_TAR_BYTES as needed."""
    tars, size, current = [], 0, None
    for path, name in files:
        if current is None or size + path.stat().st_size > MAX_TAR_BYTES:
            if current is not None:
                current.close()
            tars.append(out / f"{stem}{len(tars) + 1 if tars else ''}.tar")
            current, size = tarfile.open(tars[-1], "w"), 0
        current.add(path, arcname=name)
        size += path.stat().st_size
    if current is not None:
        current.close()
    return tars


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=7,
                        help="training time, start to stop (default 7: with the stop and the exports, at most "
                             "60 + 90 s, the call stays inside its 10 minutes)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "device_out")))
    parser.add_argument("--carry", type=Path, default=ROOT / ".carry")
    parser.add_argument("--work", type=Path, default=Path("/tmp/device_train"))
    parser.add_argument("--styles", nargs="+", help="only these of the packed recipes")
    parser.add_argument("--steps", type=int, help="instead of the recipe's (a smoke test)")
    parser.add_argument("--size", type=int, help="instead of the recipe's (a smoke test)")
    parser.add_argument("--workers", type=int, default=3, help="DataLoader workers per run (default 3)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    args = parser.parse_args()

    if not (args.carry / "recipes.json").is_file():
        sys.exit(f"device_train.py: error: no {args.carry / 'recipes.json'}: pack it first with "
                 "`python tools/device_kit.py train STYLE ...`")
    recipes = json.loads((args.carry / "recipes.json").read_text())
    if args.styles:
        recipes = [r for r in recipes if r["name"] in args.styles]
    if not recipes:
        sys.exit("device_train.py: error: no recipe to train")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.work.exists():  # a warm machine keeps /tmp: nothing of an earlier call may pass for this one's
        shutil.rmtree(args.work)
    (args.work / "runs").mkdir(parents=True)
    (args.work / "models").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RTSTYLE_VGG19_WEIGHTS": str(args.carry / HALF_FILE),
           "RTSTYLE_CACHE": str(args.work / "cache"), "PYTHONPATH": os.pathsep.join(
               [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}

    began = time.perf_counter()
    runs = {}
    for recipe in recipes:
        log = (args.work / "runs" / f"{recipe['name']}.log").open("w")
        runs[recipe["name"]] = (subprocess.Popen(train_command(recipe, args.carry, args.work, args), env=env,
                                                 stdout=log, stderr=subprocess.STDOUT), log)
    print(f"{len(runs)} runs started: {', '.join(runs)}", flush=True)
    deadline = began + args.minutes * 60
    while time.perf_counter() < deadline and any(p.poll() is None for p, _ in runs.values()):
        time.sleep(2)
    for process, _ in runs.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    wait_all([process for process, _ in runs.values()], time.perf_counter() + STOP_GRACE_S)
    for _, log in runs.values():
        log.close()
    trained_s = time.perf_counter() - began
    print(f"stopped after {trained_s:.0f} s", flush=True)

    exports = {}  # side by side, against one clock, so that a slow one cannot eat the call
    for name in runs:
        checkpoint = args.work / "runs" / name / "checkpoint.pt"
        if checkpoint.is_file():
            with (args.work / "runs" / name / "export.log").open("w") as log:  # the child keeps its own handle
                exports[name] = subprocess.Popen(
                    [sys.executable, "-c", EXPORT, str(checkpoint), str(args.work / "models" / f"{name}.onnx")],
                    env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_all(list(exports.values()), time.perf_counter() + EXPORT_S)

    lines = ["| style | exit | steps | img/s (last 100) | content | style | temporal | total | model |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    models, run_files = [], []
    for name, (process, _) in runs.items():
        run_dir = args.work / "runs" / name
        model = args.work / "models" / f"{name}.onnx"
        status = "no checkpoint"
        try:  # one broken run must not keep the others' results from coming back
            summary = losses_summary(run_dir / "loss.csv")
            if name in exports:
                status = model.name if exports[name].returncode == 0 else f"export failed ({exports[name].returncode})"
                if exports[name].returncode != 0:  # the training is not lost: the net comes back to export here
                    slim = slim_checkpoint(run_dir / "checkpoint.pt", args.work / "models" / f"{name}.pt")
                    models.append((slim, slim.name))
                    status += f", {slim.name} comes back instead"
                elif model.is_file():
                    models.append((model, model.name))
        except Exception as exc:  # noqa: BLE001 (reported in the summary instead)
            summary = {"steps": "?"}
            status += f"; {type(exc).__name__}: {str(exc)[:80]}".replace("|", "/").replace("\n", " ")
        numbers = " | ".join(f"{summary[k]:.4g}" if k in summary else "" for k in
                             ("images_per_s", "content", "style", "temporal", "total"))
        lines.append(f"| {name} | {process.returncode} | {summary['steps']} | {numbers} | {status} |")
        previews = sorted((run_dir / "previews").glob("*.png"))
        for path in [run_dir / "loss.csv", run_dir / "loss.png", run_dir / "export.log",
                     run_dir / "config.json", *previews[-1:]]:
            if path.is_file():
                run_files.append((path, f"{name}/{path.name}"))
        logfile = args.work / "runs" / f"{name}.log"
        run_files.append((logfile, f"{name}/train.log"))
    report = "\n".join([f"{len(runs)} runs at once for {trained_s:.0f} s on this machine:", "", *lines, ""])
    (args.out / "summary.md").write_text(report)
    print(report, flush=True)
    for tar in pack(models, args.out, "models") + pack(run_files, args.out, "runs"):
        print(f"{tar.name}: {tar.stat().st_size / 1e6:.1f} MB", flush=True)
    return 0 if models else 1


if __name__ == "__main__":
    sys.exit(main())
