"""torch.profiler on 20 training steps of a pretune fit: the ops that take the time.

    python benchmarks/fit_profile.py [--samples 960] [--set train.compile=false ...]

MiniLM-L6 on the Rotten Tomatoes slice with pretune's defaults (overridable with --set); the
profiler starts after 5 warm-up steps (compilation, first allocations) and records 20.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line  # noqa: E402

WARMUP, STEPS = 5, 20


class ProfileSteps:
    """Profiles the optimizer steps WARMUP+1 .. WARMUP+STEPS, then cancels the fit."""

    def __init__(self):
        self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])

    def on_batch_end(self, state) -> None:
        from pretune.train.callbacks import CancelTraining

        if state.step == WARMUP:
            self.profiler.start()
        elif state.step == WARMUP + STEPS:
            self.profiler.stop()
            raise CancelTraining("profiled")


def main() -> None:
    import pretune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=960)
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    print(cpu_flags_line())
    recipe = {"seed": 42, "data": {"source": "rotten-tomatoes", "max_train_samples": args.samples,
                                   "max_eval_samples": 64, "max_length": 64},
              "train": {"epochs": 1, "checkpoint_every_steps": None}}
    prof = ProfileSteps()
    with tempfile.TemporaryDirectory() as tmp:
        pretune.fit(recipe, Path(tmp) / "run", overrides=args.overrides, callbacks=[prof], quiet=True, lean=True)
    print(prof.profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
