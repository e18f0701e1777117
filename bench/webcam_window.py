"""Open the real webcam window on a virtual X display, press keys, and check screenshots of it.

    sudo apt-get install xvfb xdotool imagemagick       # once (Debian/Ubuntu)
    pip install opencv-python                            # a GUI build of OpenCV, in place of -headless
    python bench/webcam_window.py --out docs/img/webcam_window.jpg

Not part of the test suite: it needs an X server (Xvfb), xdotool to send keys, and OpenCV's GUI
build, none of which CI has. It starts `rtstyle webcam` on a video file, takes a screenshot of
the stylized view, presses `v` (split view) and takes another, then presses `q` and checks that
the loop quit with its summary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "video" / "box.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default=str(SOURCE))
    parser.add_argument("--out", type=Path, default=None, help="save the two screenshots side by side here")
    args = parser.parse_args()
    for tool in ("Xvfb", "xdotool", "import"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}: sudo apt-get install xvfb xdotool imagemagick")

    display = ":97"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24"], stderr=subprocess.DEVNULL)
    env = {**os.environ, "DISPLAY": display}
    try:
        time.sleep(1.5)
        loop = subprocess.Popen([sys.executable, "-m", "realtime_style", "webcam", "--source", args.source,
                                 "--max-size", "240", "--max-frames", "2000"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        window = wait_for_window(env)
        time.sleep(4)
        stylized = screenshot(env)
        subprocess.run(["xdotool", "key", "--window", window, "v"], env=env, check=True)
        time.sleep(2)
        split = screenshot(env)
        subprocess.run(["xdotool", "key", "--window", window, "q"], env=env, check=True)
        out, err = loop.communicate(timeout=30)
    finally:
        xvfb.terminate()
    print(out.strip())
    assert loop.returncode == 0 and "(quit)" in out, err
    region = content_box(stylized)
    a, b = crop(stylized, region), crop(split, region)
    half = a.shape[1] // 2
    left_change = np.abs(a[:, :half].astype(float) - b[:, :half]).mean()
    right_change = np.abs(a[:, half:].astype(float) - b[:, half:]).mean()
    print(f"window content {region[2] - region[0]}x{region[3] - region[1]} px; after 'v' the left half changed "
          f"by {left_change:.1f} levels (now the camera image), the right half by {right_change:.1f}")
    assert a.std() > 20, "the window shows a flat image"
    assert left_change > right_change, "split view did not put the original on the left"
    if args.out:
        Image.fromarray(np.concatenate([a, np.full((a.shape[0], 8, 3), 255, np.uint8), b], axis=1)).save(args.out)
        print(f"wrote {args.out}")


def wait_for_window(env: dict) -> str:
    for _ in range(100):
        found = subprocess.run(["xdotool", "search", "--name", "rtstyle"], env=env, capture_output=True, text=True)
        if found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.2)
    raise SystemExit("the rtstyle window never appeared (is OpenCV's GUI build installed?)")


def screenshot(env: dict) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "screen.png"
        subprocess.run(["import", "-display", env["DISPLAY"], "-window", "root", str(path)], env=env, check=True)
        return np.asarray(Image.open(path).convert("RGB"))


def content_box(screen: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box of the non-black pixels: the window on the otherwise black root."""
    ys, xs = np.nonzero(screen.max(axis=2) > 12)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def crop(screen: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return screen[y0:y1, x0:x1]


if __name__ == "__main__":
    main()
