"""Judging an optimizer as the guides do (issue 28): examples/demo.yaml's fit (all-MiniLM-L6-v2,
8,000 Rotten Tomatoes reviews, one epoch, five evaluations) with AdamW, SGD with momentum and
RMSprop, each at a learning rate usual for it on a pretrained transformer, then `pretune compare`:
convergence (steps and seconds to 95% of the final validation accuracy), generalization (the
final train-validation gap on a fixed training sample) and final performance, ranked.

    python benchmarks/optimizers.py [--out DIR] [--epochs 1]

Each fit runs in this process, one after another, on the same rows and seed. Writes
results/optimizers.json (each run's convergence figures and test metrics, and the ranks) and the
comparison page DIR/compare.html.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# name: what changes in demo.yaml's optimizer section (the commands of docs/strategies.md). SGD
# (momentum 0.9, the default) needs a far larger step than the adaptive methods; RMSprop, without
# Adam's bias correction, a smaller one.
OPTIMIZERS = {
    "adamw": {"name": "adamw", "lr": 1.0e-4},
    "sgd": {"name": "sgd", "lr": 1.0e-2},
    "rmsprop": {"name": "rmsprop", "lr": 1.0e-5},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the runs here (default: a temporary directory)")
    parser.add_argument("--epochs", type=float, default=1)
    args = parser.parse_args()
    import pretune
    from pretune.report.comparison_page import ranking_rows
    from pretune.runs import RunDir

    print(cpu_flags_line(), flush=True)
    work = args.out or Path(tempfile.mkdtemp(prefix="optimizers-"))
    base = yaml.safe_load((ROOT / "examples" / "demo.yaml").read_text())
    base.pop("compress", None)
    base["train"]["epochs"] = args.epochs
    rows, paths = [], []
    for name, optimizer in OPTIMIZERS.items():
        recipe = {**base, "train": {**base["train"], "optimizer": {**base["train"]["optimizer"], **optimizer}}}
        run = pretune.fit(recipe, work / name, quiet=True, report=False)
        c, test, train = run.metrics.get("convergence") or {}, run.metrics["test"], run.metrics["train"]
        paths.append(run.path)
        rows.append({"optimizer": name, "lr": optimizer["lr"], "test_accuracy": test["accuracy"],
                     "test_f1_macro": test.get("f1_macro"),
                     "validation_accuracy": run.metrics["validation"]["accuracy"],
                     "steps_to_95": c.get("steps_to_95"), "seconds_to_95": c.get("seconds_to_95"),
                     "best_step": c.get("best_step"), "train_validation_gap": c.get("train_validation_gap"),
                     "train_seconds": train.get("train_seconds")})
        print(rows[-1], flush=True)
    ranks = ranking_rows([RunDir(p) for p in paths])
    for i, row in enumerate(rows):
        row.update({f"rank: {k.split(':')[0]}": v[i] for k, v in ranks.items()})
    print_table(rows, list(rows[0]))
    page = pretune.report(paths, work / "compare.html")
    print(f"comparison page: {page}")
    path = write_json("optimizers", {"machine": machine(), "cpu": cpu_flags_line(), "epochs": args.epochs,
                                     "optimizers": OPTIMIZERS, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
