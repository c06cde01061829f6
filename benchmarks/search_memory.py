"""Resident memory of one search process from trial to trial: each trial must release its model.

    python benchmarks/search_memory.py [--trials 10] [--train 400]

RSS is read at the start of each trial's fit (after the previous trial ended) and at its end.
The peer: transformers' Trainer.hyperparameter_search (optuna) held within 10 MB of 1,020 MB over
10 trials of MiniLM on CPU. Writes results/search_memory.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402


class RssCallback:
    def __init__(self):
        self.rows: list[dict] = []
        self.process = psutil.Process()

    def on_fit_start(self, state) -> None:
        self.rows.append({"trial": len(self.rows) + 1, "rss_start_mb": self.process.memory_info().rss / 2**20})

    def on_fit_end(self, state) -> None:
        self.rows[-1]["rss_end_mb"] = self.process.memory_info().rss / 2**20


def main() -> None:
    import pretune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--train", type=int, default=400)
    args = parser.parse_args()
    print(cpu_flags_line(), flush=True)
    rss = RssCallback()
    recipe = {
        "seed": 42, "model": {"source": "minilm-l6"},
        "data": {"source": "rotten-tomatoes", "max_train_samples": args.train, "max_eval_samples": 200,
                 "max_length": 48},
        "train": {"epochs": 1, "batch_size": 16, "checkpoint_every_steps": None},
        "search": {"trials": args.trials, "sampler": "random", "pruner": "none", "keep": "best",
                   "space": {"train.optimizer.lr": {"loguniform": [2.0e-5, 2.0e-4]},
                             "strategy.name": {"choice": ["full", "llrd", "lora"]}}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        pretune.search(recipe, Path(tmp) / "study", callbacks=[rss])
    print_table(rss.rows, ["trial", "rss_start_mb", "rss_end_mb"])
    first, last = rss.rows[1]["rss_start_mb"], rss.rows[-1]["rss_end_mb"]
    growth = rss.rows[-1]["rss_end_mb"] - rss.rows[0]["rss_end_mb"]
    print(f"\nRSS after trial 1: {rss.rows[0]['rss_end_mb']:.0f} MB, after trial {args.trials}: "
          f"{rss.rows[-1]['rss_end_mb']:.0f} MB (growth {growth:+.0f} MB; start of trial 2 {first:.0f}, "
          f"end {last:.0f})")
    write_json("search_memory", {
        "machine": machine(), "cpu": cpu_flags_line(), "args": vars(args), "rows": rss.rows, "growth_mb": growth})


if __name__ == "__main__":
    main()
