"""ONNX export with the fp16 parity gate, and finding styles by name."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import assert_one_line_error, run_cli
from realtime_style.checkpoint import capture_rng, plain, save_checkpoint
from realtime_style.errors import UserError
from realtime_style.export import export_checkpoint
from realtime_style.loss_weights import LossWeights
from realtime_style.styles import installed_styles, read_metadata, resolve_style
from realtime_style.transformer_net import ARCHITECTURES, build_net


def make_checkpoint(path, arch="lite", scale_first_conv: float = 1.0, seed: int = 0):
    torch.manual_seed(seed)
    net = build_net(arch)
    with torch.no_grad():
        net.encoder[0][0][1].weight.mul_(scale_first_conv)
    save_checkpoint(path, {
        "model": net.state_dict(), "optimizer": {}, "step": 123, "rng": capture_rng(), "arch": arch,
        "net_config": plain(ARCHITECTURES[arch].to_dict()), "loss_weights": LossWeights().to_dict(),
        "config": {"name": "tiny", "size": 64, "style_license": "CC0", "style_credit": "a test"},
        "style_name": "tiny", "style_sha256": "0" * 64,
    })
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    report = export_checkpoint(make_checkpoint(folder / "tiny.pt"), folder / "tiny.onnx")
    return report


def test_fp16_export_runs_any_padded_size_and_batch(exported):
    assert exported.precision == "fp16" and exported.min_psnr_db >= 40
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float16)"
    for shape in [(1, 3, 8, 8), (2, 3, 40, 36), (1, 3, 120, 200)]:
        out = session.run(None, {"image": np.random.rand(*shape).astype(np.float16)})[0]
        assert out.shape == shape and 0 <= out.min() and out.max() <= 1


def test_metadata_describes_the_model(exported):
    meta = read_metadata(exported.path)
    assert meta["name"] == "tiny" and meta["arch"] == "lite" and meta["train_steps"] == "123"
    assert meta["style_license"] == "CC0" and meta["style_sha256"] == "0" * 64
    assert meta["precision"] == "fp16" and float(meta["fp16_psnr_db"]) >= 40
    for key in ("display_name", "train_config", "loss", "vgg", "created", "net_config", "input"):
        assert meta[key], key


def test_export_descriptions_override_the_training_runs(tmp_path):
    report = export_checkpoint(make_checkpoint(tmp_path / "c.pt"), tmp_path / "c.onnx",
                               describe={"display_name": "Tiny (lite)", "style_license": "", "style_credit": None})
    meta = read_metadata(report.path)
    assert meta["display_name"] == "Tiny (lite)"
    assert json.loads(meta["train_stages"])[-1]["style"] == "Tiny (lite)"  # not the run name's "Tiny"
    assert "123 Tiny (lite) steps" in meta["train_hardware_total"]
    assert meta["style_license"] == "CC0" and meta["style_credit"] == "a test"  # empty ones keep the run's


def test_parity_gate_refuses_a_model_that_fp16_breaks(tmp_path):
    # Activations past fp16's 65504 overflow to inf and instance norm turns them into NaN.
    broken = make_checkpoint(tmp_path / "broken.pt", scale_first_conv=1e6)
    with pytest.raises(UserError, match="PSNR"):
        export_checkpoint(broken, tmp_path / "broken.onnx")
    assert not (tmp_path / "broken.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["broken.pt"]  # no temporary file left either
    fp32 = export_checkpoint(broken, tmp_path / "broken32.onnx", fp16=False)  # fp32 has the range
    assert fp32.min_psnr_db > 60


def test_export_cli_bad_input(tmp_path):
    make_checkpoint(tmp_path / "c.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "exists.onnx").write_bytes(b"keep")
    assert_one_line_error(run_cli("export", tmp_path / "missing.pt", tmp_path / "a.onnx"), "does not exist")
    assert_one_line_error(run_cli("export", tmp_path / "junk.pt", tmp_path / "a.onnx"), "checkpoint")
    assert_one_line_error(run_cli("export", tmp_path / "c.pt", tmp_path / "exists.onnx"), "--overwrite")
    assert_one_line_error(run_cli("export", tmp_path / "c.pt", tmp_path / "a.png"), ".onnx")
    assert (tmp_path / "exists.onnx").read_bytes() == b"keep"
    ok = run_cli("export", tmp_path / "c.pt", tmp_path / "a.onnx")
    assert ok.returncode == 0 and "dB PSNR" in ok.stdout


def test_styles_are_found_by_name_with_suggestions(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("RTSTYLE_MODELS", str(exported.path.parent))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert "tiny" in [s.name for s in installed_styles()]
    assert resolve_style("tiny") == exported.path
    assert resolve_style(str(exported.path)) == exported.path
    with pytest.raises(UserError, match="did you mean 'tiny'"):
        resolve_style("tinny")
    with pytest.raises(UserError, match="does not exist"):
        resolve_style(str(tmp_path / "nope.onnx"))
    listing = run_cli("styles", env={"RTSTYLE_MODELS": str(exported.path.parent), "XDG_DATA_HOME": str(tmp_path)})
    line = next(line for line in listing.stdout.splitlines() if line.startswith("tiny"))
    assert "lite" in line and "64 px" in line and "CC0" in line and "MB" in line
