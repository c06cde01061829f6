"""Every fine-tuning strategy on the real bundled data with the real bundled model, same budget.

    python benchmarks/strategies.py [--datasets rotten-tomatoes bbc-news] [--epochs 2]

Each strategy trains all-MiniLM-L6-v2 for the same number of epochs on the same training slice,
with the learning rate customary for it (a frozen body or adapters take larger rates), and is
measured on the fixed bundled test split. Each run is its own process (its own memory peak).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, peak_memory_mb, print_table, run_child, write_json  # noqa: E402

STRATEGIES = {
    "full": ({"name": "full"}, 1e-4, "linear"),
    "freeze": ({"name": "freeze"}, 2e-3, "linear"),
    "freeze-top2": ({"name": "freeze", "train_top_layers": 2}, 3e-4, "linear"),
    "llrd": ({"name": "llrd", "decay": 0.8}, 2e-4, "linear"),
    "gradual": ({"name": "gradual", "unfreeze_every_steps": 10}, 1e-4, "slanted_triangular"),
    "lora": ({"name": "lora", "lora": {"rank": 8, "alpha": 16}}, 1e-3, "linear"),
    "bitfit": ({"name": "bitfit"}, 1e-3, "linear"),
}
DATA = {  # train slice, eval cap, max length
    "rotten-tomatoes": (2000, 640, 64),
    "bbc-news": (400, 220, 128),
}


def run_one(name: str, dataset: str, epochs: float) -> dict:
    import pretune

    strategy, lr, schedule = STRATEGIES[name]
    samples, eval_cap, max_length = DATA[dataset]
    recipe = {"seed": 42,
              "data": {"source": dataset, "max_train_samples": samples, "max_eval_samples": eval_cap,
                       "max_length": max_length},
              "train": {"epochs": epochs, "batch_size": 16, "checkpoint_every_steps": None,
                        "optimizer": {"lr": lr}, "schedule": {"name": schedule, "warmup_ratio": 0.1}},
              "strategy": strategy}
    with tempfile.TemporaryDirectory() as tmp:
        m = pretune.fit(recipe, Path(tmp) / "run", quiet=True).metrics
    return {"accuracy": m["test"]["accuracy"], "f1_macro": m["test"]["f1_macro"],
            "trainable": m["model"]["trainable"], "lr": lr,
            "seconds_per_epoch": m["train"]["train_seconds"] / m["train"]["epochs"],
            "peak_memory_mb": peak_memory_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATA), choices=list(DATA))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--only", help="internal: NAME/DATASET in a child process")
    args = parser.parse_args()
    if args.only:
        name, dataset = args.only.split("/")
        print(json.dumps(run_one(name, dataset, args.epochs)))
        return
    rows = []
    for dataset in args.datasets:
        for name in args.strategies:
            print(f"running {name} on {dataset} ...", file=sys.stderr, flush=True)
            rows.append({"dataset": dataset, "strategy": name,
                         **run_child(Path(__file__), f"{name}/{dataset}", ["--epochs", str(args.epochs)])})
    print_table(rows, ["dataset", "strategy", "lr", "accuracy", "f1_macro", "trainable",
                       "seconds_per_epoch", "peak_memory_mb"])
    print(f"\nwrote {write_json('strategies', {'args': vars(args), 'machine': machine(), 'rows': rows})}")


if __name__ == "__main__":
    main()
