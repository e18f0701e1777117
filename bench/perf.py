"""Backends x architectures x frame sizes, then `rtstyle video` and the webcam loop end to end.

    python bench/perf.py                  # the full table on this machine (also: rtstyle bench)
    python bench/perf.py --quick          # seconds: what the test suite runs so that it cannot rot
    python bench/perf.py --model-only     # the backend table alone (a GPU machine without PyAV)
    python bench/perf.py --host-work      # the video pipeline's own work per frame, without a net

The measuring code lives in realtime_style/benchmark.py, shared with `rtstyle bench`.
"""

from __future__ import annotations

import argparse

from realtime_style import benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(benchmark.ARCHS))
    parser.add_argument("--sizes", nargs="+", default=list(benchmark.SIZES), help="e.g. 640x480 1280x720")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="lite net, 160x120, 3 repeats, short end to end")
    parser.add_argument("--model-only", action="store_true",
                        help="the backend table alone, without `rtstyle video` and the webcam loop (no PyAV needed)")
    parser.add_argument("--host-work", action="store_true",
                        help="only the table of what `rtstyle video` does per frame besides the net")
    args = parser.parse_args()
    if args.host_work:
        benchmark.host_work(tuple(args.sizes))
    elif args.quick:
        benchmark.run(("lite",), ("160x120",), repeats=3)
    else:
        benchmark.run(tuple(args.archs), tuple(args.sizes), repeats=args.repeats, end_to_end=not args.model_only)


if __name__ == "__main__":
    main()
