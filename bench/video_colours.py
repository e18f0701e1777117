"""docs/img/video_colours.jpg: the SMPTE bars of smpte-2997.mp4 as a player shows the input, an
output of `rtstyle video` from before its outputs named their YUV matrix, and one from now.

    VIDEOS=$(realpath ../shared/data/video)    # from the checkout's root
    git worktree add /tmp/before 513c3ab        # the code of before (a player reads its output as BT.709)
    (cd /tmp/before && python -m realtime_style video $VIDEOS/smpte-2997.mp4 /tmp/before.mp4 \
        --style mosaic_lite --strength 0 --duration 0.5)
    rtstyle video $VIDEOS/smpte-2997.mp4 /tmp/now.mp4 --style mosaic_lite --strength 0 --duration 0.5
    python bench/video_colours.py $VIDEOS/smpte-2997.mp4 /tmp/before.mp4 /tmp/now.mp4 docs/img/video_colours.jpg
    git worktree remove /tmp/before

Pixels are turned into RGB by the formula of each stream's matrix (tests/media.py), not by FFmpeg.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from media import yuv_to_rgb  # noqa: E402


def shown(path: Path, index: int = 11) -> np.ndarray:
    """Frame ``index`` as a player shows it: in the stream's matrix, or BT.709 for untagged HD."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = [f for _, f in zip(range(index + 1), container.decode(stream))][-1]
        tag = stream.codec_context.colorspace
        tag = {2: 1 if frame.width >= 1280 or frame.height > 576 else 6}.get(tag, tag)
        return yuv_to_rgb(frame, tag).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("before", type=Path)
    parser.add_argument("now", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    rows = []
    for path, label in [(args.source, "input (tagged BT.709)"),
                        (args.before, "before: written in BT.601, untagged"),
                        (args.now, "now: written in BT.709, tagged")]:
        bars = cv2.resize(shown(path)[40:600, 240:1680], (576, 120), interpolation=cv2.INTER_AREA)
        band = np.full((26, 576, 3), 255, np.uint8)
        cv2.putText(band, label, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        rows += [band, bars]
    picture = cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(args.out), picture, [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
