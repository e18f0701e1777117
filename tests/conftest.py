"""Shared fixtures: real VGG19 weights (when fetched), the shared data folder, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def vgg_weights_path() -> Path:
    """The verified VGG19 weights from the cache; never downloads during tests.

    `bash .ci/run` fetches them first, so in CI a missing file is a failure, not a skip.
    """
    from realtime_style.errors import UserError
    from realtime_style.weights import vgg19_weights

    try:
        return vgg19_weights(sources=(), log=lambda message: None)
    except UserError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"VGG19 weights missing in CI: {exc}")
        pytest.skip("VGG19 weights not fetched (run `rtstyle weights`)")


@pytest.fixture(scope="session")
def vgg(vgg_weights_path):
    from realtime_style.vgg import load_vgg19

    return load_vgg19(vgg_weights_path)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `rtstyle ARGS` as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "realtime_style", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          cwd=cwd or ROOT, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Bad input: non-zero exit, exactly one line on stderr, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
