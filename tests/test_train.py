"""tools/train.py end to end, as a user runs it: a subprocess on tiny synthetic data.

Lite net, 64 px crops, batch 2: each run is a few seconds, most of it start-up.
Needs the real VGG19 weights; never downloads them (skips instead).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from realtime_style.checkpoint import (describe_stages, load_checkpoint, net_from_checkpoint, plain, save_checkpoint,
                                       training_stages)
from realtime_style.errors import UserError
from realtime_style.transformer_net import ARCHITECTURES, COLOR_SKIP_START, build_net
from realtime_style.weights import vgg19_weights

try:  # explicit path, env var or cache only: tests never download
    VGG_WEIGHTS = vgg19_weights(sources=(), log=lambda message: None)
except UserError as exc:
    if os.environ.get("CI"):  # as in conftest.py: CI fetches the weights first, so missing is a failure
        pytest.fail(f"VGG19 weights missing in CI: {exc}", pytrace=False)
    pytest.skip("VGG19 weights not fetched (run `rtstyle weights`): the training tests need the real VGG19",
                allow_module_level=True)

pytestmark = [pytest.mark.vgg, pytest.mark.slow]

TRAIN = Path(__file__).resolve().parent.parent / "tools" / "train.py"
GOOD_IMAGES = 10
TRAIN_IMAGES = GOOD_IMAGES + 1 - 4  # + the truncated file (passes the scan), - 4 held out for previews
TINY = ["--size", "64", "--batch-size", "2", "--arch", "lite", "--style-size", "96",
        "--checkpoint-every", "5", "--preview-every", "10"]


def synthetic_photo(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """A smooth gradient with a few flat rectangles: photo-like enough for VGG, tiny to store."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([x, y, 1 - x * y], axis=2) * rng.uniform(0.4, 1.0, 3)
    for _ in range(3):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        base[top:top + height // 3, left:left + width // 3] = rng.uniform(0, 1, 3)
    return Image.fromarray((base * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """data/ (10 photos, some smaller than the crop, a garbage file and a truncated JPEG), style.png."""
    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    data = root / "data"
    (data / "nested").mkdir(parents=True)
    for i in range(GOOD_IMAGES):
        height, width = (40, 56) if i % 3 == 0 else (96, 128)  # 40 px < 64 px crop: upscaled
        synthetic_photo(rng, height, width).save(data / ("nested" if i % 2 else "") / f"photo{i:02d}.jpg")
    (data / "garbage.jpg").write_bytes(b"this is not a JPEG")  # found by the up-front scan
    buf = io.BytesIO()
    synthetic_photo(rng, 96, 96).save(buf, "JPEG")
    (data / "zz_truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # fails on decode
    (data / "notes.txt").write_text("not an image suffix: ignored")
    stripes = np.zeros((96, 96, 3), np.uint8)
    stripes[:, ::8] = (230, 40, 20)
    stripes[::12, :] = (20, 60, 220)
    Image.fromarray(stripes).save(root / "style.png")
    return root


def subprocess_env() -> dict[str, str]:
    # One compute thread: on a small shared machine, two OpenMP threads competing with any other
    # load run many times slower; one thread keeps these tests fast and their timing stable.
    return {**os.environ, "RTSTYLE_VGG19_WEIGHTS": str(VGG_WEIGHTS), "OMP_NUM_THREADS": "1"}


def train(workdir: Path, *args: str, timeout: float = 300, module_run: list[str] | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run tools/train.py in ``workdir`` (so runs/ and models/ land there)."""
    env = env or subprocess_env()
    command = [sys.executable, *(module_run or []), str(TRAIN), *args]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def fresh(workdir: Path, name: str, *extra: str) -> list[str]:
    return ["--style", "style.png", "--data", "data", "--name", name, *TINY, *extra]


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train.py: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = model_state(a), model_state(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.allclose(sa[key], sb[key], rtol=1e-5, atol=1e-6), key


@pytest.fixture(scope="module")
def straight(workdir: Path) -> subprocess.CompletedProcess:
    """The reference: 20 uninterrupted steps."""
    result = train(workdir, *fresh(workdir, "straight", "--steps", "20", "--workers", "0"))
    assert_ok(result)
    return result


def test_tiny_run_writes_a_checkpoint_logs_and_previews(workdir: Path, straight):
    run = workdir / "runs" / "straight"
    ckpt = load_checkpoint(run / "checkpoint.pt")
    raw = torch.load(run / "checkpoint.pt", weights_only=True)  # the safe loader reads it as-is
    assert raw.keys() == ckpt.keys()
    assert ckpt["step"] == 20 and ckpt["arch"] == "lite" and ckpt["style_name"] == "style"
    assert ckpt["net_config"] == plain(ARCHITECTURES["lite"].to_dict())
    assert ckpt["config"]["batch_size"] == 2 and ckpt["config"]["data"] == [str(workdir / "data")]
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    assert ckpt["loss_weights"]["version"]
    assert len(ckpt["style_sha256"]) == 64
    net = net_from_checkpoint(ckpt)
    out = net(torch.rand(1, 3, 30, 42))
    assert out.shape == (1, 3, 30, 42) and torch.isfinite(out).all()

    rows = (run / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,content,style,tv,temporal,total,images_per_s" and len(rows) == 21
    first, last = (float(r.split(",")[5]) for r in (rows[1], rows[-1]))  # total
    assert last < first, "the loss should fall over 20 steps"
    assert sorted(p.name for p in (run / "previews").iterdir()) == ["step_000010.png", "step_000020.png"]
    with Image.open(run / "previews" / "step_000020.png") as grid:
        assert grid.size == (4 * 64, 2 * 64)  # 4 held-out photos, above their stylized versions
    assert (run / "loss.png").stat().st_size > 0
    assert "done: step 20" in straight.stdout


def test_tiny_run_exports_a_model_onnx_runtime_runs(workdir: Path, straight):
    import onnxruntime as ort

    from realtime_style.styles import read_metadata

    model = workdir / "models" / "straight.onnx"
    assert "model: models/straight.onnx (fp16" in straight.stdout
    meta = read_metadata(model)
    assert meta["train_steps"] == "20" and meta["arch"] == "lite" and meta["name"] == "straight"
    # What it trained on, so that step counts can be compared: this test runs on the CPU.
    assert meta["train_hardware"].startswith("cpu: ") and "cores" in meta["train_hardware"]
    # No earlier runs behind it: one stage, this run's.
    assert json.loads(meta["train_stages"]) == [{"style": "Straight", "steps": 20, "hardware": meta["train_hardware"]}]
    assert meta["train_hardware_total"] == f"{meta['train_hardware']} (20 Straight steps)"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": np.random.rand(1, 3, 32, 48).astype(np.float16)})[0]
    assert out.shape == (1, 3, 32, 48) and np.isfinite(out).all()


def test_stability_term_is_trained_and_logged(workdir: Path):
    on = train(workdir, *fresh(workdir, "steady", "--steps", "4", "--workers", "0", "--temporal-weight", "1000",
                               "--no-export"))
    assert_ok(on)
    off = train(workdir, *fresh(workdir, "unsteady", "--steps", "4", "--workers", "0", "--temporal-weight", "0",
                                "--no-export"))
    assert_ok(off)
    column = {name: [float(r.split(",")[4]) for r in (workdir / "runs" / name / "loss.csv").read_text().splitlines()[1:]]
              for name in ("steady", "unsteady")}
    assert all(v > 0 for v in column["steady"]) and all(v == 0 for v in column["unsteady"])
    assert load_checkpoint(workdir / "runs" / "steady" / "checkpoint.pt")["config"]["temporal_weight"] == 1000


def test_temporal_batch_is_kept_and_old_checkpoints_resume_with_the_whole_batch(workdir: Path):
    assert_ok(train(workdir, *fresh(workdir, "partial", "--steps", "2", "--workers", "0", "--temporal-batch", "1",
                                    "--no-export")))
    ckpt = workdir / "runs" / "partial" / "checkpoint.pt"
    assert load_checkpoint(ckpt)["config"]["temporal_batch"] == 1
    too_many = train(workdir, *fresh(workdir, "too-many", "--steps", "2", "--temporal-batch", "3", "--no-export"))
    assert too_many.returncode == 1
    assert_one_line_error(too_many, "--temporal-batch must be between 0 (all) and the batch size (2)")

    # A checkpoint from before the option took the term on every image, and a resumed run keeps that.
    old = load_checkpoint(ckpt)
    del old["config"]["temporal_batch"]
    torch.save(old, ckpt)
    changed = train(workdir, "--resume", str(ckpt), "--steps", "3", "--temporal-batch", "1")
    assert changed.returncode == 1
    assert_one_line_error(changed, "--temporal-batch 1: ", "trained with 0")
    assert_ok(train(workdir, "--resume", str(ckpt), "--steps", "3", "--workers", "0"))
    assert load_checkpoint(ckpt)["config"]["temporal_batch"] == 0


def test_compiled_style_net_trains_the_same_losses(workdir: Path):
    """--compile changes how the style net runs, not what it computes."""
    losses = {}
    for name, extra in (("eager", ()), ("compiled", ("--compile",))):
        # The stability term on the whole batch: one batch shape, one graph to compile (about a minute cold).
        result = train(workdir, *fresh(workdir, name, "--steps", "3", "--workers", "0", "--no-export",
                                       "--temporal-batch", "2", *extra), timeout=600)
        assert_ok(result)
        assert ("style net compiled" in result.stdout) == bool(extra)
        rows = (workdir / "runs" / name / "loss.csv").read_text().splitlines()[1:]
        losses[name] = [[float(v) for v in row.split(",")[1:6]] for row in rows]
    compiled, eager = np.array(losses["compiled"]), np.array(losses["eager"])
    assert compiled.shape == (3, 5)
    # The first step's terms agree to float32 rounding (amplified by VGG's bf16); Adam then carries the
    # rounding into the weights, and the totals stay within a percent.
    assert np.allclose(compiled[0], eager[0], rtol=1e-3)
    assert np.allclose(compiled[:, 4], eager[:, 4], rtol=1e-2)

    # Without a C++ compiler the CPU backend cannot build its kernels: say so before any work.
    no_compiler = {**subprocess_env(), "PATH": str(workdir / "empty-bin")}
    no_compiler.pop("CXX", None)
    result = train(workdir, *fresh(workdir, "no-cxx", "--steps", "1", "--compile"), env=no_compiler)
    assert_one_line_error(result, "--compile on a CPU needs a C++ compiler")
    assert not (workdir / "runs" / "no-cxx" / "checkpoint.pt").exists()


def test_init_from_starts_from_another_runs_net(workdir: Path, straight):
    # With a vanishing learning rate one step cannot move the weights: what is left is the start.
    result = train(workdir, *fresh(workdir, "tuned", "--steps", "1", "--workers", "0", "--no-export",
                                   "--init-from", "runs/straight/checkpoint.pt", "--lr", "1e-12"))
    assert_ok(result)
    assert "starting from" in result.stdout
    config = load_checkpoint(workdir / "runs" / "tuned" / "checkpoint.pt")["config"]
    assert config["earlier_steps"] == 20
    assert config["warmup_steps"] == 30, "a fine-tune warms up unless told otherwise"
    assert load_checkpoint(workdir / "runs" / "straight" / "checkpoint.pt")["config"]["warmup_steps"] == 0
    assert_same_weights(workdir / "runs" / "straight" / "checkpoint.pt", workdir / "runs" / "tuned" / "checkpoint.pt")
    trained = model_state(workdir / "runs" / "straight" / "checkpoint.pt")
    torch.manual_seed(0)  # the seed the run used: what a run without --init-from would start from
    assert not all(torch.equal(trained[k], v) for k, v in build_net("lite").state_dict().items()), \
        "a random net must differ from the trained one, or the check above proves nothing"


def test_a_lite_net_from_before_the_colour_skip_starts_a_run_with_it_added(workdir: Path, straight):
    """The shipped lite zoo was retrained from lite nets without the skip: --init-from adds it."""
    old = load_checkpoint(workdir / "runs" / "straight" / "checkpoint.pt")
    old["model"] = {k: v for k, v in old["model"].items() if not k.startswith("color_skip.")}
    old["net_config"] = {k: v for k, v in old["net_config"].items() if k != "color_skip"}
    (workdir / "runs" / "old_lite").mkdir(parents=True, exist_ok=True)
    save_checkpoint(workdir / "runs" / "old_lite" / "checkpoint.pt", old)
    assert net_from_checkpoint(old).config.color_skip == 0  # it still exports as what it is

    result = train(workdir, *fresh(workdir, "grown", "--steps", "1", "--workers", "0", "--no-export",
                                   "--init-from", "runs/old_lite/checkpoint.pt", "--lr", "1e-12"))
    assert_ok(result)
    assert "colour skip added" in result.stdout
    grown = model_state(workdir / "runs" / "grown" / "checkpoint.pt")
    for key, value in old["model"].items():
        torch.testing.assert_close(grown[key], value, rtol=1e-5, atol=1e-6, msg=key)
    start = COLOR_SKIP_START * (torch.eye(3) - 1 / 3)
    torch.testing.assert_close(grown["color_skip.weight"][:, :, 0, 0], start, rtol=0, atol=1e-6)
    # Resuming it is another matter: a resumed run must be the same net.
    resumed = train(workdir, "--resume", "runs/old_lite/checkpoint.pt", "--steps", "2")
    assert_one_line_error(resumed, "architecture has changed")


def test_color_skip_start_replaces_the_starting_nets_skip(workdir: Path, straight):
    """Paintings whose palette is far from a photo's start the skip lower (docs/training.md)."""
    result = train(workdir, *fresh(workdir, "low_skip", "--steps", "1", "--workers", "0", "--no-export",
                                   "--init-from", "runs/straight/checkpoint.pt", "--color-skip-start", "0.25",
                                   "--lr", "1e-12", "--warmup-steps", "0"))
    assert_ok(result)
    assert "colour skip started at 0.25" in result.stdout
    assert load_checkpoint(workdir / "runs" / "low_skip" / "checkpoint.pt")["config"]["warmup_steps"] == 0
    trained = model_state(workdir / "runs" / "straight" / "checkpoint.pt")
    started = model_state(workdir / "runs" / "low_skip" / "checkpoint.pt")
    torch.testing.assert_close(started["color_skip.weight"][:, :, 0, 0], 0.25 * (torch.eye(3) - 1 / 3),
                               rtol=0, atol=1e-6)
    assert not torch.allclose(trained["color_skip.weight"], started["color_skip.weight"], atol=1e-3)
    for key, value in trained.items():
        if not key.startswith("color_skip."):
            torch.testing.assert_close(started[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_training_stages_describe_each_machine_of_a_chain():
    """--init-from chains list their stages in order; back-to-back stages on one machine share its name."""
    gpu, cpu = "cuda: NVIDIA H200, bf16", "cpu: AMD EPYC, 2 cores, 2 threads, VGG in float32"
    earlier = [{"style": "Mosaic", "steps": 20000, "hardware": gpu}, {"style": "Candy", "steps": 355, "hardware": cpu},
               {"style": "Candy", "steps": 550, "hardware": cpu}]
    stages = training_stages({"earlier_stages": earlier, "hardware": [cpu], "name": "starry_night"}, 500)
    assert stages[-1] == {"style": "Starry Night", "steps": 500, "hardware": cpu}
    assert describe_stages(stages) == f"{gpu} (20,000 Mosaic steps); {cpu} (905 Candy + 500 Starry Night steps)"
    # A checkpoint from before stages were kept: its earlier steps become one stage.
    old = training_stages({"earlier_steps": 5000, "earlier_hardware": gpu, "hardware": [cpu], "display_name": "X"}, 7)
    assert describe_stages(old) == f"{gpu} (5,000 earlier steps); {cpu} (7 X steps)"
    assert training_stages({}, 0) == [{"style": "?", "steps": 0, "hardware": "unknown"}]


def test_init_from_an_exported_model(workdir: Path, straight):
    """A shipped style (fp16 ONNX) is a valid start: its weights, upcast, are what training starts from."""
    from realtime_style.styles import read_metadata

    result = train(workdir, *fresh(workdir, "from_onnx", "--steps", "1", "--workers", "0", "--no-export",
                                   "--init-from", "models/straight.onnx", "--lr", "1e-12"))
    assert_ok(result)
    config = load_checkpoint(workdir / "runs" / "from_onnx" / "checkpoint.pt")["config"]
    assert config["earlier_steps"] == 20
    straight = read_metadata(workdir / "models" / "straight.onnx")
    assert config["earlier_stages"] == json.loads(straight["train_stages"])
    assert [stage["steps"] for stage in config["earlier_stages"]] == [20]
    hardware = straight["train_hardware"]
    assert describe_stages(training_stages(config, 1)) == f"{hardware} (20 Straight + 1 From Onnx steps)"
    trained = model_state(workdir / "runs" / "straight" / "checkpoint.pt")
    tuned = model_state(workdir / "runs" / "from_onnx" / "checkpoint.pt")
    for key, value in trained.items():  # fp16 in the file: equal to half precision, not bit for bit
        torch.testing.assert_close(tuned[key], value.half().float(), rtol=0, atol=1e-6, msg=key)
    wrong = train(workdir, *fresh(workdir, "from_onnx_std", "--steps", "1", "--workers", "0", "--no-export",
                                  "--init-from", "models/straight.onnx", "--arch", "standard"))
    assert wrong.returncode != 0 and "holds a 'lite' net" in wrong.stderr and "Traceback" not in wrong.stderr


def test_cosine_schedule_decays_to_a_tenth():
    spec = importlib.util.spec_from_file_location("train_script", TRAIN)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    config = {"lr": 1e-3, "lr_schedule": "cosine"}
    rates = [script.learning_rate(config, step, 100) for step in range(101)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[50] == pytest.approx(5.5e-4)
    constant = {"lr": 1e-3, "lr_schedule": "constant"}
    assert {script.learning_rate(constant, step, 100) for step in range(100)} == {1e-3}
    warm = {"lr": 1e-3, "lr_schedule": "cosine", "warmup_steps": 10}
    warmed = [script.learning_rate(warm, step, 100) for step in range(101)]
    assert warmed[0] == pytest.approx(1e-4) and all(a < b for a, b in zip(warmed[:10], warmed[1:10]))
    assert warmed[9] == pytest.approx(rates[9]) and warmed[10:] == rates[10:]  # then the schedule as before
    assert script.learning_rate({**constant, "warmup_steps": 4}, 1, 100) == pytest.approx(5e-4)


def test_corrupt_images_are_skipped_and_counted(straight):
    assert "skipped 1 unreadable files" in straight.stdout and "garbage.jpg" in straight.stdout
    # The truncated JPEG passes the scan, fails to decode in training, and is replaced and counted.
    assert "samples came from files that failed to decode and were replaced" in straight.stdout
    assert f"{TRAIN_IMAGES} training photos (4 more held out" in straight.stdout


def test_resume_continues_exactly(workdir: Path, straight):
    assert_ok(train(workdir, *fresh(workdir, "resumed", "--steps", "10", "--workers", "0")))
    ckpt = workdir / "runs" / "resumed" / "checkpoint.pt"
    assert load_checkpoint(ckpt)["step"] == 10
    shutil.copy(ckpt, workdir / "step10.pt")
    assert_ok(train(workdir, "--resume", str(ckpt), "--steps", "20", "--workers", "0"))
    assert_same_weights(workdir / "runs" / "straight" / "checkpoint.pt", ckpt)
    rows = (workdir / "runs" / "resumed" / "loss.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 21))

    # The data order does not depend on the DataLoader workers either.
    other = workdir / "runs" / "resumed-workers"
    other.mkdir(parents=True)
    shutil.copy(workdir / "step10.pt", other / "checkpoint.pt")
    assert_ok(train(workdir, "--resume", str(other / "checkpoint.pt"), "--steps", "20", "--workers", "2"))
    assert_same_weights(workdir / "runs" / "straight" / "checkpoint.pt", other / "checkpoint.pt")


def test_ctrl_c_saves_and_resume_matches(workdir: Path, straight):
    """Ctrl-C (to the whole process group, workers included) mid-run, then --resume to 20."""
    env = subprocess_env()
    args = fresh(workdir, "interrupted", "--steps", "20", "--workers", "2", "--checkpoint-every", "1000")
    proc = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=workdir, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    log = workdir / "runs" / "interrupted" / "loss.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > 3:  # header + 3 steps
            os.killpg(proc.pid, signal.SIGINT)
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    ckpt = workdir / "runs" / "interrupted" / "checkpoint.pt"
    assert proc.returncode == 128 + signal.SIGINT, f"{stdout}\n{stderr}"
    assert "stopped by SIGINT" in stdout and "--resume" in stdout
    assert "Traceback" not in stderr
    stopped_at = load_checkpoint(ckpt)["step"]
    assert 3 <= stopped_at < 20
    assert_ok(train(workdir, "--resume", str(ckpt), "--steps", "20", "--workers", "2"))
    assert_same_weights(workdir / "runs" / "straight" / "checkpoint.pt", ckpt)


def test_ddp_two_processes_on_gloo(workdir: Path):
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = train(workdir, *fresh(workdir, "ddp", "--epochs", "2", "--workers", "0", "--device", "cpu"),
                   module_run=torchrun)
    assert_ok(result)
    steps = -(-2 * TRAIN_IMAGES // 4)  # global batch: 2 per process x 2 processes
    ckpt = load_checkpoint(workdir / "runs" / "ddp" / "checkpoint.pt")
    assert ckpt["step"] == steps
    assert result.stdout.count("done: step") == 1, "only rank 0 reports"
    assert "batch 2 x 2 process(es)" in result.stdout
    rows = (workdir / "runs" / "ddp" / "loss.csv").read_text().splitlines()
    assert len(rows) == 1 + steps


def test_loss_watch_stops_a_breakdown_not_a_bump():
    """The breakdown stop (tools/train.py LossWatch) on loss curves shaped like the H200 runs'."""
    spec = importlib.util.spec_from_file_location("train_script", TRAIN)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(0)

    def first_alarm(curve) -> int | None:
        watch = script.LossWatch(window=100, factor=2.0)
        return next((i for i, total in enumerate(curve) if watch.add(float(total))), None)

    falling = 300 * np.exp(-np.arange(2000) / 150) + 100          # a run learning, then flat
    noisy = falling * rng.uniform(0.6, 1.4, falling.size)          # single steps vary by 40 % and more
    assert first_alarm(noisy) is None
    bump = noisy.copy()
    bump[1400:1500] *= 1.36                                        # starry_night's spike, which recovered
    assert first_alarm(bump) is None
    broken = noisy.copy()
    broken[1500:] *= np.linspace(1, 8, 500)                        # candy's: up and up
    alarm = first_alarm(broken)
    assert alarm is not None and 1500 < alarm < 1800
    watch = script.LossWatch(window=100, factor=2.0, rising_factor=1.25)
    rising = [step for step, total in enumerate(broken) if not watch.add(float(total)) and watch.rising]
    assert rising and 1500 < rising[0] < alarm  # periodic checkpoints stop before the run does
    assert first_alarm(noisy[:99] * 10) is None                    # no verdict before a whole window


def test_a_breakdown_stops_the_run_and_keeps_the_checkpoint_from_before(workdir: Path):
    """tools/train.py's own loop, with a LossWatch that reports a breakdown at step 7."""
    driver = workdir / "breakdown_driver.py"
    driver.write_text(f"""import importlib.util, sys
spec = importlib.util.spec_from_file_location("train_script", {str(TRAIN)!r})
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)

class BreaksAtSeven(train.LossWatch):
    rising = False
    def add(self, total):
        super().add(total)
        self.steps = getattr(self, "steps", 0) + 1
        return self.steps >= 7

train.LossWatch = BreaksAtSeven
try:
    sys.exit(train.main(sys.argv[1:]))
except train.UserError as exc:
    print("train.py: error:", exc, file=sys.stderr)
    sys.exit(1)
""")
    args = fresh(workdir, "breakdown", "--steps", "20", "--workers", "0", "--lr", "1e-3")
    result = subprocess.run([sys.executable, str(driver), *args], cwd=workdir, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: the loss broke down at step 7"), last
    ckpt = workdir / "runs" / "breakdown" / "checkpoint.pt"
    assert f"{ckpt.relative_to(workdir)} (step 5) is kept" in last and "--lr 0.0005" in last, last
    assert load_checkpoint(ckpt)["step"] == 5


def test_nonfinite_loss_stops_without_saving(workdir: Path):
    result = train(workdir, *fresh(workdir, "blowup", "--steps", "5", "--workers", "0",
                                   "--style-weight", "1e38"))
    # The progress bar was already up (stderr), so the error is the last line rather than the only one.
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: the loss became inf at step 1"), result.stderr
    assert "no checkpoint was saved" in last
    assert not (workdir / "runs" / "blowup" / "checkpoint.pt").exists()


@pytest.mark.parametrize("case", ["missing style", "missing data", "empty data", "corrupt data",
                                  "existing run", "existing model", "other arch", "no checkpoint",
                                  "init from other arch", "skip start without a skip", "negative warm-up"])
def test_bad_input_is_one_line_error(workdir: Path, straight, case: str):
    (workdir / "empty").mkdir(exist_ok=True)
    corrupt = workdir / "corrupt"
    corrupt.mkdir(exist_ok=True)
    (corrupt / "a.jpg").write_bytes(b"\xff\xd8 nope")
    (corrupt / "b.png").write_bytes(b"")
    (workdir / "models").mkdir(exist_ok=True)
    (workdir / "models" / "taken.onnx").write_bytes(b"onnx")
    args, needles = {
        "missing style": (["--style", "nope.jpg", "--data", "data", "--name", "x"], ["nope.jpg", "no such file"]),
        "missing data": (["--style", "style.png", "--data", "nodata", "--name", "x"], ["nodata", "does not exist"]),
        "empty data": (["--style", "style.png", "--data", "empty", "--name", "x"], ["no images"]),
        "corrupt data": (["--style", "style.png", "--data", "corrupt", "--name", "x"], ["none of the 2"]),
        "existing run": (fresh(workdir, "straight", "--steps", "1"), ["already holds a run", "--overwrite"]),
        "existing model": (fresh(workdir, "taken", "--steps", "1"), ["models/taken.onnx", "--overwrite"]),
        "other arch": (["--resume", "runs/straight/checkpoint.pt", "--arch", "standard"], ["'lite' net"]),
        "no checkpoint": (["--resume", "--name", "never-ran"], ["does not exist"]),
        "init from other arch": (fresh(workdir, "x3", "--arch", "standard", "--init-from",
                                       "runs/straight/checkpoint.pt"), ["'lite' net", "pass --arch lite"]),
        "skip start without a skip": (fresh(workdir, "x4", "--arch", "standard", "--color-skip-start", "0.5"),
                                      ["--color-skip-start", "no colour skip"]),
        "negative warm-up": (fresh(workdir, "x5", "--warmup-steps", "-1"), ["--warmup-steps"]),
    }[case]
    assert_one_line_error(train(workdir, *args, timeout=120), *needles)
