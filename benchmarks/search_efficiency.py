"""Random search without pruning vs TPE with ASHA pruning: best validation accuracy reached as a
function of the training steps consumed, on the real bundled model and Rotten Tomatoes.

    python benchmarks/search_efficiency.py [--seeds 5] [--trials 20] [--train 1000] [--out DIR]
        [--methods random,tpe+asha,tpe+asha-late] [--reuse results/search_efficiency.json]

Each trial is a small budget: a slice, one epoch, 4 evaluations, validated on the whole
1,276-review validation split (300 reviews gave a standard error of 2.4 points, as large as the
spread between trials: no verdict). A pruned trial's steps are the steps it trained before it was
stopped. The claim: in at least 4 of 5 seeds, TPE+ASHA reaches random search's median best of
`--trials` trials with at most 0.5 of random search's steps. Writes results/search_efficiency.json.

`tpe+asha` has ASHA's first rung at the first of the 4 evaluations (`search.prune_from: 1`, the
default until these figures), `tpe+asha-late` at the second (`prune_from: 2`, the default now).
Steps do not depend on the machine's speed, so `--reuse` takes the curves of methods not run this
time from an earlier results file with the same settings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402

# method -> (sampler, pruner, search.prune_from)
METHODS = {"random": ("random", "none", 1), "tpe+asha": ("tpe", "asha", 1), "tpe+asha-late": ("tpe", "asha", 2)}

def recipe(train: int, trials: int, seed: int, sampler: str, pruner: str, prune_from: int) -> dict:
    return {
        "seed": 42,
        "model": {"source": "minilm-l6"},
        "data": {"source": "rotten-tomatoes", "max_train_samples": train, "max_length": 48},
        "train": {"epochs": 1, "batch_size": 32, "checkpoint_every_steps": None},
        "search": {
            "metric": "accuracy", "trials": trials, "sampler": sampler, "pruner": pruner, "seed": seed,
            "prune_from": prune_from,
            "evaluations": 4, "startup_trials": 5, "keep": "none",
            "space": {"train.optimizer.lr": {"loguniform": [1.0e-6, 1.0e-3]},
                      "train.batch_size": {"choice": [16, 32, 64]},
                      "train.optimizer.weight_decay": {"uniform": [0.0, 0.2]},
                      "train.schedule.warmup_ratio": {"uniform": [0.0, 0.3]}},
        },
    }


def curve(study) -> list[tuple[int, float]]:
    """(cumulative steps, best accuracy so far) after each trial, in trial order."""
    rows, steps, best = [], 0, float("-inf")
    for t in study.optuna.get_trials():
        steps += t.user_attrs.get("steps", 0)
        if t.state.name == "COMPLETE":
            best = max(best, t.value)
        rows.append((steps, best))
    return rows


def steps_to_reach(points: list[tuple[int, float]], target: float) -> int | None:
    return next((steps for steps, best in points if best >= target), None)


def verdict(runs: list, target: float, random_steps: float) -> dict:
    """How often, and at what share of random search's steps, a method's `runs` reach `target`."""
    reach = [steps_to_reach(c, target) for c in runs]
    shares = [None if r is None else r / random_steps for r in reach]
    reached = [s for s in shares if s is not None]
    wins = sum(s <= 0.5 for s in reached)
    return {"steps_to_target": reach, "shares": shares, "wins": wins, "reached": len(reached),
            "met": wins >= 4 * len(runs) / 5, "median_share": statistics.median(reached) if reached else None,
            "median_steps": statistics.median(c[-1][0] for c in runs)}


def main() -> None:
    import pretune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--train", type=int, default=1000, help="training samples per trial")
    parser.add_argument("--out", help="keep the studies here (default: a temporary directory)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of: " + ", ".join(METHODS))
    parser.add_argument("--reuse", help="an earlier results file: its curves for the methods not run")
    args = parser.parse_args()
    print(cpu_flags_line(), flush=True)

    curves: dict[str, list] = {}
    if args.reuse:
        earlier = json.loads(Path(args.reuse).read_text())
        if (earlier["args"]["trials"], earlier["args"]["train"]) != (args.trials, args.train):
            raise SystemExit(f"{args.reuse} was measured with other --trials / --train")
        curves = {m: [[tuple(p) for p in c] for c in runs[:args.seeds]] for m, runs in earlier["curves"].items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        for method in filter(None, args.methods.split(",")):  # --methods "" --reuse F: F's verdicts again
            sampler, pruner, prune_from = METHODS[method]
            curves[method] = []
            for seed in range(args.seeds):
                study = pretune.search(recipe(args.train, args.trials, seed, sampler, pruner, prune_from),
                                       root / f"{method}-{seed}")
                curves[method].append(curve(study))
                print(f"{method} seed {seed}: best {curves[method][-1][-1][1]:.4f} in "
                      f"{curves[method][-1][-1][0]} steps", flush=True)

    # The bar every other method is held to: random search's median best, and its median steps.
    target = statistics.median(c[-1][1] for c in curves["random"])
    random_steps = statistics.median(c[-1][0] for c in curves["random"])
    rows = []
    for method, runs in curves.items():
        for seed, c in enumerate(runs):
            at_half = next((b for s, b in c if s >= c[-1][0] / 2), c[-1][1])
            rows.append({"method": method, "seed": seed, "trials": len(c), "steps": c[-1][0],
                         "best": c[-1][1], "best_at_half_its_steps": at_half,
                         "steps_to_random_best": steps_to_reach(c, target)})
    print_table(rows, list(rows[0]))
    verdicts = {m: verdict(runs, target, random_steps) for m, runs in curves.items() if m != "random"}
    print(f"\nrandom search's best of {args.trials} (median of {args.seeds} seeds): {target:.4f} "
          f"in {random_steps:.0f} steps")
    for method, v in verdicts.items():
        print(f"{method}: steps to reach it {v['steps_to_target']}; share of random's steps per seed "
              f"{[None if s is None else round(s, 3) for s in v['shares']]}; reached at <= 0.5 of random's "
              f"steps in {v['wins']} of {len(v['shares'])} seeds (target: >= 4 of 5) -> "
              f"{'met' if v['met'] else 'not met'}")
    write_json("search_efficiency", {
        "machine": machine(), "cpu": cpu_flags_line(), "args": vars(args), "rows": rows, "target": target,
        "random_steps": random_steps, "verdicts": verdicts, "curves": curves})


if __name__ == "__main__":
    main()
