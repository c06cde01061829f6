"""Label issues found by cleanlab over cross-validated probabilities, against labels flipped on purpose.

    python benchmarks/label_issues.py [--flip 0.05] [--samples 0] [--folds 3] [--epochs 1]

The Rotten Tomatoes training split (bundled; `--samples N` keeps N rows of it) with a share of its
labels flipped at random (seeded): all-MiniLM-L6-v2 is fine-tuned with `train.label_issues:
{source: cross-validation}`, and the rows it flags are scored against the flipped set. Target
(issue 29): precision >= 0.6 and recall >= 0.5. Rotten Tomatoes carries label noise of its own
(its reviews were labelled by their source's fresh/rotten mark), so some flagged rows that were
not flipped are real mistakes: precision here is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, run_child, write_json  # noqa: E402


def run_one(flip: float, samples: int, folds: int, epochs: float, seed: int) -> dict:
    import numpy as np

    import pretune
    from pretune.data.bundled import load_bundled

    frames = load_bundled("rotten-tomatoes")
    train = frames["train"]
    if samples:
        train = train.sample(n=min(samples, len(train)), random_state=seed)
    train = train.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(train), size=round(flip * len(train)), replace=False)
    train.loc[flipped, "label"] = train.loc[flipped, "label"].map({"fresh": "rotten", "rotten": "fresh"})
    truly = set(train.loc[flipped, "text"])
    recipe = {"seed": seed, "data": {"source": "rotten-tomatoes", "max_length": 64},
              "train": {"epochs": epochs, "batch_size": 32, "checkpoint_every_steps": None,
                        "optimizer": {"lr": 1e-4}, "schedule": {"name": "linear", "warmup_ratio": 0.1},
                        "label_issues": {"source": "cross-validation", "folds": folds, "max_rows": 10**6}},
              "report": False}
    with tempfile.TemporaryDirectory() as tmp:
        run = pretune.fit(recipe, Path(tmp) / "run", quiet=True, data={**frames, "train": train})
        found = json.loads((run.path / "label_issues.json").read_text())
        accuracy = run.metrics["test"]["accuracy"]
    flagged = {r["text"] for r in found["rows"]}
    hits = len(flagged & truly)
    # The rows come most suspect first: the top as many as were flipped is the ranking's own test.
    top = {r["text"] for r in found["rows"][: len(truly)]}
    return {"train_rows": len(train), "flipped": len(truly), "flagged": len(flagged), "hits": hits,
            "precision": hits / max(len(flagged), 1), "recall": hits / max(len(truly), 1),
            "precision_at_flipped": len(top & truly) / max(len(truly), 1), "test_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--samples", type=int, default=0, help="training rows kept (0: all)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="internal: the measurement in a child process")
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.flip, args.samples, args.folds, args.epochs, args.seed)))
        return
    print(cpu_flags_line())
    extra = ["--flip", str(args.flip), "--samples", str(args.samples), "--folds", str(args.folds),
             "--epochs", str(args.epochs), "--seed", str(args.seed)]
    row = run_child(Path(__file__), "measure", extra)
    print_table([row], ["train_rows", "flipped", "flagged", "hits", "precision", "recall", "precision_at_flipped",
                        "test_accuracy"])
    met = row["precision"] >= 0.6 and row["recall"] >= 0.5
    print(f"\ntarget (precision >= 0.6, recall >= 0.5): {'met' if met else 'not met'}")
    payload = {"args": vars(args), "machine": machine(), "cpu": cpu_flags_line(), "rows": [row]}
    print(f"wrote {write_json('label_issues', payload)}")


if __name__ == "__main__":
    main()
