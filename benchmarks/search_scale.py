"""Complete trials per hour on one PostgreSQL study: 1 worker with 2 torch threads vs 2 workers
with 1 thread each, the same trials (random sampler, same seed, no pruning).

    python benchmarks/search_scale.py [--trials 6] [--train 400]

Starts a throwaway PostgreSQL server (tests/postgres.py; as the postgres user when root).
The claim: >= 1.3x for 2 workers on 2 cores. Writes results/search_scale.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402


def recipe(train: int, trials: int, url: str, study: str, workers: int) -> dict:
    return {
        "seed": 42, "model": {"source": "minilm-l6"},
        "data": {"source": "rotten-tomatoes", "max_train_samples": train, "max_eval_samples": 200,
                 "max_length": 48},
        "train": {"epochs": 1, "batch_size": 16, "checkpoint_every_steps": None},
        "search": {"trials": trials, "sampler": "random", "pruner": "none", "keep": "none", "evaluations": 2,
                   "storage": url, "study": study, "workers": workers,
                   "space": {"train.optimizer.lr": {"loguniform": [2.0e-5, 2.0e-4]}}},
    }


def main() -> None:
    import torch
    from tests.postgres import postgres_server

    import pretune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--train", type=int, default=400, help="training samples per trial")
    args = parser.parse_args()
    print(cpu_flags_line(), flush=True)
    cores = len(os.sched_getaffinity(0))
    rows = []
    with postgres_server() as url, tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            torch.set_num_threads(cores)  # one worker runs in this process with every core
            started = time.perf_counter()
            study = pretune.search(recipe(args.train, args.trials, url, f"scale-{workers}", workers),
                                   Path(tmp) / f"w{workers}")
            seconds = time.perf_counter() - started
            done = sum(t.state.name == "COMPLETE" for t in study.optuna.get_trials())
            rows.append({"workers": workers, "threads_each": max(1, cores // workers), "trials": done,
                         "seconds": seconds, "trials_per_hour": done / seconds * 3600})
    ratio = rows[1]["trials_per_hour"] / rows[0]["trials_per_hour"]
    print_table(rows, list(rows[0]))
    print(f"\n2 workers / 1 worker: {ratio:.2f}x trials per hour on {cores} cores (target >= 1.3x)")
    write_json("search_scale", {
        "machine": machine(), "cpu": cpu_flags_line(), "cores": cores, "args": vars(args), "rows": rows,
        "ratio": ratio})


if __name__ == "__main__":
    main()
