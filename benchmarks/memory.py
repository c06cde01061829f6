"""Peak memory of a fit grows with the model and the batch, not with the data set.

A one-epoch fit (max_steps capped, so the time stays small) on a synthetic CSV of short texts at
10x and 100x rows (20k and 200k by default), each in its own process; the claim is the peak
resident set of the 100x fit within 1.3x of the 10x fit's. The model is a random-initialised
2-layer, 32-wide BERT with the real MiniLM tokenizer (`--model` takes any model directory):
a small model is the hard case, where data would show most against the weights.

    python benchmarks/memory.py                      # 20k and 200k rows
    python benchmarks/memory.py --rows 2000 20000    # quicker
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cpu_flags_line, machine, peak_memory_mb, print_table, run_child  # noqa: E402

WORDS = ("good great fine superb lovely moving witty bad awful dull boring weak tedious the film movie plot actor "
         "story was is a and very quite with its").split()


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        f.write("text,label\n")
        for i in range(rows):
            f.write(" ".join(rng.choices(WORDS, k=rng.randint(4, 14))) + f",{'pos' if i % 2 else 'neg'}\n")


def tiny_model(path: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pretune.models import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source("minilm-l6"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def child(name: str, args) -> None:
    import pretune

    rows = int(name)
    data = Path(args.workdir) / f"rows-{rows}.csv"
    start = time.perf_counter()
    run = pretune.fit({"model": {"source": args.model},
                       "data": {"source": str(data), "max_length": 32, "max_eval_samples": 1000},
                       "train": {"epochs": 1, "max_steps": args.max_steps, "batch_size": 32,
                                 "checkpoint_every_steps": None, "mixed_precision": "no"}},
                      Path(args.workdir) / f"run-{rows}", quiet=True, lean=True)
    print(json.dumps({"rows": rows, "train_rows": run.metrics["train"]["samples"],
                      "peak_rss_mb": round(peak_memory_mb(), 1), "seconds": round(time.perf_counter() - start, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs=2, default=[20_000, 200_000], help="the 10x and 100x sizes")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--model", default=None, help="model directory (default: a tiny random BERT)")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        child(args.only, args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.workdir = tmp
        args.model = args.model or str(tiny_model(Path(tmp) / "tiny-bert"))
        for rows in args.rows:
            write_csv(Path(tmp) / f"rows-{rows}.csv", rows)
        extra = ["--workdir", tmp, "--model", args.model, "--max-steps", str(args.max_steps)]
        results = [run_child(Path(__file__), str(rows), extra) for rows in args.rows]
    ratio = results[1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
    for r in results:
        r["vs_first"] = round(r["peak_rss_mb"] / results[0]["peak_rss_mb"], 3)
    print(cpu_flags_line())
    print_table(results, ["rows", "train_rows", "peak_rss_mb", "vs_first", "seconds"])
    verdict = "within" if ratio <= 1.3 else "NOT within"
    print(f"{results[1]['rows']:,} rows peak {ratio:.2f}x the {results[0]['rows']:,}-row peak: {verdict} 1.3x")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(
        {"machine": machine(), "cpu": cpu_flags_line(), "max_steps": args.max_steps, "rows": results,
         "ratio": round(ratio, 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
