"""Where a training step's time goes: tools/train.py under torch.profiler, on the GPU or the CPU.

    python bench/train_profile.py --style ../shared/data/styles/candy.jpg --name p --data DIR \
        --out-dir /tmp/p --steps 80 --no-export --overwrite     # any tools/train.py options

Steps WAIT+6 to WAIT+15 are profiled (``--profile-wait``, default 60: past cuDNN's autotuning and
the data loader's start), counted by a hook on every optimizer step, and the 30 most expensive
operators and kernels are printed by their own device time (CPU time without a GPU). On an H200 on
2026-12-04 this showed a lone run's step at 24 ms of GPU time against 55 ms of wall time
(docs/training.md, "Where a step's time goes").
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch
import torch.optim.optimizer as optimizer
from torch.profiler import ProfilerActivity, profile, schedule

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    parser.add_argument("--profile-wait", type=int, default=60, help="steps before the profiled ones")
    known, args = parser.parse_known_args()  # the rest goes to tools/train.py, --help too
    wait = known.profile_wait
    if wait < 0:
        parser.error("--profile-wait must be 0 or more")
    on_gpu = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    profiler = profile(activities=activities, schedule=schedule(wait=wait, warmup=5, active=10, repeat=1))
    optimizer.register_optimizer_step_post_hook(lambda *_: profiler.step())
    profiler.start()
    sys.argv = [str(ROOT / "tools" / "train.py"), *args]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise
    finally:
        profiler.stop()
    key = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    print(profiler.key_averages().table(sort_by=key, row_limit=30, max_name_column_width=70))


if __name__ == "__main__":
    main()
