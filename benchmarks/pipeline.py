"""The whole path from one recipe, one run: `pretune pipeline examples/pipeline_search.yaml` with
a 12-trial TPE + ASHA study on 2,000 Rotten Tomatoes reviews, the final fit on the whole training
split (`--fit-set data.max_train_samples=null`), the compression chain, the report and the release.

    python benchmarks/pipeline.py [--trials 12] [--fit-train all] [--out DIR] [--reduced]

Targets (2 cores): <= 20 minutes end to end; the chosen model >= 5x the fine-tuned model's
batch-32 throughput, <= 0.15x its size, <= 1.5 points below it on test. Prints the stage-time
table (which stage dominates) and the fine-tuned vs chosen figures; writes results/pipeline.json.
`--reduced` (3 trials, final fit on 2,000 reviews) checks the path on a loaded machine; its
figures are not the claim.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "pipeline_search.yaml"
TARGETS = {"minutes": 20.0, "throughput_ratio": 5.0, "size_ratio": 0.15, "drop_points": 1.5}


def main() -> None:
    import pretune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--fit-train", default="all", help="training reviews of the final fit (all: the split)")
    parser.add_argument("--reduced", action="store_true", help="3 trials, final fit on 2,000 reviews")
    parser.add_argument("--out", help="keep the pipeline directory here (default: a temporary one)")
    args = parser.parse_args()
    if args.reduced:
        args.trials, args.fit_train = 3, "2000"
    print(cpu_flags_line(), flush=True)
    fit_train = "null" if args.fit_train == "all" else args.fit_train
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp) / "pipeline"
        started = time.time()
        result = pretune.pipeline(EXAMPLE, out, overrides=[f"search.trials={args.trials}"],
                                  fit_overrides=[f"data.max_train_samples={fit_train}"])
        total = time.time() - started
        stages = result.summary["stages"]
        rows = [{"stage": name, "status": r["status"], "seconds": r.get("seconds"),
                 "share": (r.get("seconds") or 0) / total, "made": r.get("made", "")}
                for name, r in stages.items()]
        rows.append({"stage": "total", "status": "", "seconds": total, "share": 1.0, "made": ""})
        print_table(rows, ["stage", "status", "seconds", "share", "made"])
        f = result.figures
        metric = f["metric"]
        figures = [{"figure": k, "fine_tuned": f["fine_tuned"].get(k), "chosen": f["chosen"].get(k),
                    "ratio": f["ratio"].get(k)} for k in f["fine_tuned"]]
        print_table(figures, ["figure", "fine_tuned", "chosen", "ratio"])
        drop = (f["fine_tuned"][f"test_{metric}"] - f["chosen"][f"test_{metric}"]) * 100
        verdict = {"minutes": total / 60, "throughput_ratio": f["ratio"].get("throughput"),
                   "size_ratio": f["ratio"].get("size_mb"), "drop_points": drop}
        met = {"minutes": verdict["minutes"] <= TARGETS["minutes"],
               "throughput_ratio": (verdict["throughput_ratio"] or 0) >= TARGETS["throughput_ratio"],
               "size_ratio": (verdict["size_ratio"] or 1) <= TARGETS["size_ratio"],
               "drop_points": drop <= TARGETS["drop_points"]}
        for key, value in verdict.items():
            print(f"{key}: {value:.3f} (target {TARGETS[key]}) -> {'met' if met[key] else 'not met'}")
        write_json("pipeline" + ("_reduced" if args.reduced else ""), {
            "machine": machine(), "cpu": cpu_flags_line(), "args": vars(args), "stages": rows,
            "figures": f, "verdict": verdict, "met": met, "chosen": str(result.chosen.path)})


if __name__ == "__main__":
    main()
