"""Knowledge transfer on Rotten Tomatoes with all-MiniLM-L6-v2: task-adaptive pretraining, and
few-shot fine-tuning.

    python benchmarks/transfer.py tapt [--labelled 500] [--seeds 0 1 2] [--pretrain-epochs 1]
    python benchmarks/transfer.py fewshot [--shots 8 16 64] [--seeds 0 1 2]

tapt: 500 labelled reviews; `plain` fine-tunes the bundled model on them, `tapt` first trains it
as a masked LM on the whole training split's texts (labels unused: Gururangan et al. 2020), then
runs the same fine-tune from that encoder. Reported: test accuracy per seed, the mean gain and
its spread (standard deviation of the per-seed gains), and the seconds each took.

fewshot: k labelled reviews per class (k = 8, 16, 64), the same rows for every contender: `plain`
fine-tunes the whole model (cross-entropy), `setfit` uses `strategy.name: setfit` (contrastive
pairs, then the head), and `setfit-lib` is the peer: the `setfit` library itself (SetFitModel
on the same all-MiniLM-L6-v2 directory, its Trainer with its defaults, batch 16, one epoch, max
length 64; logistic-regression head). A contender pretune does not have yet is reported as not
available.

Each (contender, seed) runs in its own process; the test split is the same fixed 640 reviews
for every run. The machine these were written on was shared and loaded: rerun for timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402

TEST_ROWS = 640
MAX_LENGTH = 64


def frames(seed: int, labelled: int | None = None, shots: int | None = None):
    """(train, validation, test, all training texts): the fixed test split, then labelled rows
    drawn with `seed` from the rest (`labelled` rows stratified, or `shots` per class)."""
    from pretune.data.bundled import datasets

    frame = datasets.get("rotten-tomatoes")().sample(frac=1.0, random_state=0).reset_index(drop=True)
    test, pool = frame.iloc[:TEST_ROWS], frame.iloc[TEST_ROWS:]
    if shots is not None:
        import pandas as pd

        drawn = [group.sample(2 * shots, random_state=seed) for _, group in pool.groupby("label")]
        train = pd.concat([d.iloc[:shots] for d in drawn])
        validation = pd.concat([d.iloc[shots:] for d in drawn])
    else:
        picked = pool.sample(labelled + 200, random_state=seed)
        train, validation = picked.iloc[:labelled], picked.iloc[labelled:]
    return train.reset_index(drop=True), validation.reset_index(drop=True), test.reset_index(drop=True), pool


def fine_tune(data: dict, seed: int, source: str = "minilm-l6", epochs: float = 3, strategy: dict | None = None,
              batch_size: int = 16, lr: float = 1e-4) -> dict:
    import pretune

    recipe = {"seed": seed, "model": {"source": source}, "report": False,
              "data": {"source": "rotten-tomatoes", "max_length": MAX_LENGTH},
              "train": {"epochs": epochs, "batch_size": batch_size, "checkpoint_every_steps": None,
                        "optimizer": {"lr": lr}, "train_sample": 0},
              "strategy": strategy or {"name": "full"}}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        m = pretune.fit(recipe, Path(tmp) / "run", quiet=True, data=data).metrics
        return {"accuracy": m["test"]["accuracy"], "seconds": time.perf_counter() - started}


def run_tapt(contender: str, seed: int, labelled: int, pretrain_epochs: float) -> dict:
    import pretune

    train, validation, test, pool = frames(seed, labelled=labelled)
    data = {"train": train, "validation": validation, "test": test}
    if contender == "plain":
        return fine_tune(data, seed)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        recipe = {"seed": seed, "model": {"source": "minilm-l6"}, "data": {"max_length": MAX_LENGTH},
                  "pretrain": {"epochs": pretrain_epochs, "batch_size": 32, "lr": 5e-5, "whole_word": True},
                  "train": {"checkpoint_every_steps": None}}
        # The training split's texts, labels unused: every review but the fixed test rows.
        adapted = pretune.adapt(recipe, Path(tmp) / "adapted", quiet=True, texts=pool.text.tolist())
        pretrain_seconds = time.perf_counter() - started
        result = fine_tune(data, seed, source=str(adapted.model_path))
        return {**result, "pretrain_seconds": pretrain_seconds,
                "pretrain_perplexity": adapted.metrics["validation"]["perplexity"]}


def run_fewshot(contender: str, seed: int, shots: int) -> dict:
    if contender == "setfit-lib":
        return run_setfit_library(seed, shots)
    train, validation, test, _ = frames(seed, shots=shots)
    data = {"train": train, "validation": validation, "test": test}
    # Few rows: more epochs and smaller batches, so that each contender takes enough steps.
    epochs = 30 if shots <= 16 else 10
    if contender == "plain":
        return fine_tune(data, seed, epochs=epochs, batch_size=8, lr=5e-5)
    from pretune.strategies import strategies

    if "setfit" not in strategies:
        return {"accuracy": None, "seconds": None, "note": "strategy setfit not available"}
    return fine_tune(data, seed, epochs=epochs, batch_size=8, strategy={"name": "setfit"}, lr=5e-5)


def run_setfit_library(seed: int, shots: int) -> dict:
    """The peer: Hugging Face's `setfit` with its defaults on the same rows and model directory."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing to fetch: the model is a local directory
    import numpy as np
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from pretune.models.load import resolve_source

    train, _, test, _ = frames(seed, shots=shots)
    names = sorted(train.label.unique())
    started = time.perf_counter()
    model = SetFitModel.from_pretrained(resolve_source("minilm-l6"))
    model.model_body.max_seq_length = MAX_LENGTH
    rows = Dataset.from_dict({"text": train.text.tolist(), "label": [names.index(x) for x in train.label]})
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, batch_size=16, num_epochs=1, seed=seed, save_strategy="no",
                                 report_to="none")
        Trainer(model=model, args=args, train_dataset=rows).train()
    predicted = np.asarray(model.predict(test.text.tolist()))
    accuracy = float(np.mean(predicted == np.array([names.index(x) for x in test.label])))
    return {"accuracy": accuracy, "seconds": time.perf_counter() - started}


def child(script: Path, args: list[str]) -> dict:
    import subprocess

    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"accuracy": None, "seconds": None, "note": proc.stderr.strip().splitlines()[-1][:200]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(rows: list[dict], group: str) -> list[dict]:
    """Per group: each contender's mean accuracy, and the mean / spread of its per-seed gain over
    `plain` (in points)."""
    out = []
    for key in sorted({r[group] for r in rows}, key=str):
        by_seed: dict = {}
        for r in rows:
            if r[group] == key and r["accuracy"] is not None:
                by_seed.setdefault(r["seed"], {})[r["contender"]] = r["accuracy"]
        names = sorted({c for d in by_seed.values() for c in d})
        if "plain" not in names or len(names) < 2:
            continue
        entry = {group: key, "plain_mean": statistics.mean(d["plain"] for d in by_seed.values() if "plain" in d)}
        for other in (n for n in names if n != "plain"):
            gains = [100 * (d[other] - d["plain"]) for d in by_seed.values() if "plain" in d and other in d]
            entry |= {f"{other}_mean": statistics.mean(d[other] for d in by_seed.values() if other in d),
                      f"{other}_gain_points": statistics.mean(gains) if gains else None,
                      f"{other}_gain_spread": statistics.stdev(gains) if len(gains) > 1 else None}
        out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["tapt", "fewshot"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--labelled", type=int, default=500)
    parser.add_argument("--pretrain-epochs", type=float, default=1)
    parser.add_argument("--shots", nargs="+", type=int, default=[8, 16, 64])
    parser.add_argument("--only", help="internal: CONTENDER/SEED[/SHOTS] in a child process")
    parser.add_argument("--results", help="results/NAME.json (default transfer_EXPERIMENT; a partial grid: another "
                        "name, so the whole grid's file stays)")
    args = parser.parse_args()
    if args.only:
        contender, seed, *rest = args.only.split("/")
        if args.experiment == "tapt":
            print(json.dumps(run_tapt(contender, int(seed), args.labelled, args.pretrain_epochs)))
        else:
            print(json.dumps(run_fewshot(contender, int(seed), int(rest[0]))))
        return
    print(cpu_flags_line(), file=sys.stderr)
    rows = []
    common = ["--labelled", str(args.labelled), "--pretrain-epochs", str(args.pretrain_epochs)]
    if args.experiment == "tapt":
        for seed in args.seeds:
            for contender in ("plain", "tapt"):
                print(f"tapt: {contender} seed {seed} ...", file=sys.stderr, flush=True)
                rows.append({"contender": contender, "seed": seed, "labelled": args.labelled,
                             **child(Path(__file__), ["tapt", *common, "--only", f"{contender}/{seed}"])})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        group = "labelled"
    else:
        for shots in args.shots:
            for seed in args.seeds:
                for contender in ("plain", "setfit", "setfit-lib"):
                    print(f"fewshot: {contender} {shots}/class seed {seed} ...", file=sys.stderr, flush=True)
                    rows.append({"contender": contender, "seed": seed, "shots": shots,
                                 **child(Path(__file__), ["fewshot", "--only", f"{contender}/{seed}/{shots}"])})
                    # Each row as it comes: a long grid stopped part-way keeps what it measured.
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        group = "shots"
    print_table(rows, ["contender", group, "seed", "accuracy", "seconds", "note"])
    table = summary(rows, group)
    if table:
        print()
        print_table(table, list(table[0]))
    path = write_json(args.results or f"transfer_{args.experiment}", {"args": vars(args), "machine": machine(),
                                                      "cpu": cpu_flags_line(), "rows": rows, "summary": table})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
