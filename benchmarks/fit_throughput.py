"""pretune vs a hand-written PyTorch loop vs transformers' Trainer, text and images.

    python benchmarks/fit_throughput.py [--samples 2000] [--max-length 64] [--rounds 3] [--epochs 1]
        [--contenders plain pretune-same ...] [--image-samples 1000]

Text: the same model (all-MiniLM-L6-v2), the same Rotten Tomatoes training slice, one epoch (or
--epochs, to judge a lever's accuracy over a longer fit), the same test slice:

  plain            hand-written loop: AdamW, linear schedule with 10% warm-up, batch 32, fp32,
                   dynamic padding, clipping at 1.0
  pretune-same     pretune with exactly those settings (no length grouping, fp32)
  trainer-default  transformers.Trainer with its defaults (batch 8, lr 5e-5, no warm-up)
  trainer-tuned    the Trainer a knowledgeable user sets up: batch 32, lr 1e-4 with 10% warm-up,
                   length-grouped batches, bf16 where the CPU computes it fast (avx512_bf16 / AMX)
  pretune-default  pretune with its own defaults (length grouping, mixed precision auto, ...)
  pretune-compiled pretune's defaults plus train.compile true (compile time counted)
  pretune-pad8     pretune's defaults plus train.pad_to_multiple_of 8
  pretune-no-dropout            pretune's defaults, the encoder's dropouts at 0 (the head keeps its own)
  pretune-no-attention-dropout  pretune's defaults, attention-probability dropout at 0 only

Images: EfficientNet-Lite0 (ImageNet weights) on a Fashion-MNIST slice at 64 px, one epoch,
AdamW 1e-3 with 10% warm-up, batch 32, fp32, clipping at 1.0:

  image-plain      hand-written loop over pretune's decoded, normalised images
  image-pretune    pretune with those settings

Every contender runs in its own process, once per round, the rounds interleaved across the
contenders (a slow spell on a shared machine then hits all of them); each reports its best and
median samples/s over the rounds and their spread, and the ratios are of the bests.
Samples/s counts training steps only (no evaluation, no model loading, no tokenization; a
compile inside the steps counts). Accuracy is measured the same way for all, in fp32, on the
fixed test split.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    cpu_flags_line,
    interleaved_rounds,
    machine,
    peak_memory_mb,
    print_table,
    summarize_rounds,
    write_json,
)

SEED, BATCH, LR = 42, 32, 1e-4


def load(args):
    from pretune.data import prepare
    from pretune.models import load_tokenizer
    from pretune.recipe import DataConfig
    from pretune.tasks import create_task

    cfg = DataConfig(source="rotten-tomatoes", max_train_samples=args.samples,
                     max_eval_samples=args.eval_samples, max_length=args.max_length)
    task = create_task(cfg)
    data = prepare(cfg, task)
    tok = load_tokenizer("minilm-l6")
    return task, tok, {k: task.encode(v, tok, args.max_length) for k, v in data.splits.items()}


def fresh_model(task):
    from pretune.models import load_model
    from pretune.recipe import ModelConfig

    torch.manual_seed(SEED)
    return load_model(ModelConfig(source="minilm-l6"), task)


def test_accuracy(model, task, enc, tok) -> float:
    from pretune.evaluate import TorchRunner, evaluate

    return evaluate(TorchRunner(model.float(), "cpu"), enc["test"], task, 64, tok.pad_token_id)["accuracy"]


def run_plain(args) -> dict:
    from pretune.data import collate
    from pretune.train.optimizers import param_groups

    task, tok, enc = load(args)
    model = fresh_model(task)
    train = enc["train"]
    steps = math.ceil(len(train) / BATCH) * args.epochs
    opt = torch.optim.AdamW(param_groups(model.named_parameters(), LR, 0.01), lr=LR, foreach=True)
    warm = int(0.1 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / (warm + 1) if s < warm else max(0.0, 1 - (s - warm) / (steps - warm)))
    rng = np.random.default_rng(SEED)
    orders = [rng.permutation(len(train)) for _ in range(args.epochs)]
    model.train()
    start = time.perf_counter()
    for order, i in ((o, i) for o in orders for i in range(0, len(o), BATCH)):
        batch = collate(train, order[i:i + BATCH].tolist(), tok.pad_token_id)
        labels = batch.pop("labels")
        loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    return {"samples_per_second": args.epochs * len(train) / seconds, "train_seconds": seconds,
            "accuracy": test_accuracy(model, task, enc, tok)}


def run_pretune(args, own_defaults: bool, model: dict | None = None, **levers) -> dict:
    import pretune

    train = {"epochs": args.epochs, "checkpoint_every_steps": None, **levers}
    if not own_defaults:
        train |= {"batch_size": BATCH, "mixed_precision": "no", "max_grad_norm": 1.0,
                  "optimizer": {"name": "adamw", "lr": LR, "weight_decay": 0.01},
                  "schedule": {"name": "linear", "warmup_ratio": 0.1}}
    recipe = {"seed": SEED, "model": model or {},
              "data": {"source": "rotten-tomatoes", "max_train_samples": args.samples,
                       "max_eval_samples": args.eval_samples, "max_length": args.max_length,
                       "group_by_length": own_defaults},
              "train": train}
    with tempfile.TemporaryDirectory() as tmp:
        run = pretune.fit(recipe, Path(tmp) / "run", quiet=True)
        m = run.metrics
    return {"samples_per_second": m["train"]["train_samples_per_second"],
            "train_seconds": m["train"]["train_seconds"], "accuracy": m["test"]["accuracy"]}


def run_trainer(args, tuned: bool = False) -> dict:
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from pretune.train.precision import cpu_has_fast_bf16

    task, tok, enc = load(args)
    model = fresh_model(task)
    train = enc["train"]
    rows = [{**{k: v[i] for k, v in train.features.items()}, "labels": int(train.labels[i])}
            for i in range(len(train))]
    tuning = {}
    if tuned:
        # transformers 5 renamed group_by_length to train_sampling_strategy and dropped
        # warmup_ratio: 10% warm-up is given in steps.
        warmup = int(0.1 * math.ceil(len(rows) / BATCH) * args.epochs)
        tuning = {"per_device_train_batch_size": BATCH, "learning_rate": LR, "warmup_steps": warmup,
                  "train_sampling_strategy": "group_by_length", "bf16": cpu_has_fast_bf16(),
                  "max_grad_norm": 1.0, "weight_decay": 0.01,
                  # transformers refuses bf16 on a CPU unless told the run is on the CPU.
                  "use_cpu": not torch.cuda.is_available()}
    with tempfile.TemporaryDirectory() as tmp:
        targs = TrainingArguments(output_dir=tmp, num_train_epochs=args.epochs, seed=SEED, report_to="none",
                                  save_strategy="no", disable_tqdm=True, **tuning)
        trainer = Trainer(model=model, args=targs, train_dataset=rows,
                          data_collator=DataCollatorWithPadding(tok))
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    return {"samples_per_second": args.epochs * len(train) / seconds, "train_seconds": seconds,
            "accuracy": test_accuracy(model.cpu(), task, enc, tok),
            "batch_size": targs.per_device_train_batch_size, "lr": targs.learning_rate}


IMAGE_LR = 1e-3


def image_recipe(args) -> dict:
    return {"seed": SEED, "model": {"source": "efficientnet-lite0"},
            "data": {"task": "image-classification", "source": "fashion-mnist", "image_size": 64,
                     "max_train_samples": args.image_samples, "max_eval_samples": args.image_eval_samples},
            "train": {"epochs": args.epochs, "batch_size": BATCH, "eval_batch_size": 64, "mixed_precision": "no",
                      "max_grad_norm": 1.0, "checkpoint_every_steps": None,
                      "optimizer": {"name": "adamw", "lr": IMAGE_LR, "weight_decay": 0.01},
                      "schedule": {"name": "linear", "warmup_ratio": 0.1}}}


def run_image_plain(args) -> dict:
    from pretune.data import collate, prepare
    from pretune.evaluate import TorchRunner, evaluate, logits_of
    from pretune.models import load_model, load_preprocessor
    from pretune.recipe import as_recipe
    from pretune.tasks import create_task
    from pretune.train.optimizers import param_groups

    recipe = as_recipe(image_recipe(args))
    task = create_task(recipe.data)
    data = prepare(recipe.data, task)
    settings = load_preprocessor(recipe.model.source, task)
    enc = {k: task.encode(v, settings) for k, v in data.splits.items()}
    torch.manual_seed(SEED)
    model = load_model(recipe.model, task)
    train = enc["train"]
    steps = math.ceil(len(train) / BATCH) * args.epochs
    opt = torch.optim.AdamW(param_groups(model.named_parameters(), IMAGE_LR, 0.01), lr=IMAGE_LR, foreach=True)
    warm = int(0.1 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / (warm + 1) if s < warm else max(0.0, 1 - (s - warm) / (steps - warm)))
    rng = np.random.default_rng(SEED)
    orders = [rng.permutation(len(train)) for _ in range(args.epochs)]
    model.train()
    start = time.perf_counter()
    for order, i in ((o, i) for o in orders for i in range(0, len(o), BATCH)):
        batch = collate(train, order[i:i + BATCH].tolist(), 0)
        labels = batch.pop("labels")
        loss = torch.nn.functional.cross_entropy(logits_of(model(**batch)), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    accuracy = evaluate(TorchRunner(model), enc["test"], task, 64)["accuracy"]
    return {"samples_per_second": args.epochs * len(train) / seconds, "train_seconds": seconds,
            "accuracy": accuracy}


def run_image_pretune(args) -> dict:
    import pretune

    with tempfile.TemporaryDirectory() as tmp:
        m = pretune.fit(image_recipe(args), Path(tmp) / "run", quiet=True).metrics
    return {"samples_per_second": m["train"]["train_samples_per_second"],
            "train_seconds": m["train"]["train_seconds"], "accuracy": m["test"]["accuracy"]}


CONTENDERS = {
    "plain": run_plain,
    "pretune-same": lambda a: run_pretune(a, own_defaults=False),
    "trainer-default": run_trainer,
    "trainer-tuned": lambda a: run_trainer(a, tuned=True),
    "pretune-default": lambda a: run_pretune(a, own_defaults=True),
    "pretune-compiled": lambda a: run_pretune(a, own_defaults=True, compile=True),
    "pretune-pad8": lambda a: run_pretune(a, own_defaults=True, pad_to_multiple_of=8),
    # The profile's second line (dropout's bernoulli_ masks, 17% of a step): the encoder without them.
    "pretune-no-dropout": lambda a: run_pretune(a, own_defaults=True, model={"dropout": 0.0, "attention_dropout": 0.0}),
    # Attention-probability dropout alone: with it, scaled_dot_product_attention leaves its fused CPU
    # kernel for the math path (a profiled step: _scaled_dot_product_attention_math and its copies).
    "pretune-no-attention-dropout": lambda a: run_pretune(a, own_defaults=True, model={"attention_dropout": 0.0}),
    "image-plain": run_image_plain,
    "image-pretune": run_image_pretune,
}
RATIOS = [  # (numerator, denominator): samples/s of the bests, and accuracy points between them
    ("pretune-same", "plain"), ("pretune-default", "trainer-default"), ("pretune-default", "trainer-tuned"),
    ("pretune-compiled", "pretune-default"), ("pretune-pad8", "pretune-default"),
    ("pretune-no-dropout", "pretune-default"), ("pretune-no-attention-dropout", "pretune-default"),
    ("pretune-no-attention-dropout", "trainer-tuned"), ("image-pretune", "image-plain"),
]
KEY = "samples_per_second"
# Measured on request, one at a time.
LEVERS = ("pretune-compiled", "pretune-pad8", "pretune-no-dropout", "pretune-no-attention-dropout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--eval-samples", type=int, default=1276)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="every contender; more to judge accuracy")
    parser.add_argument("--image-samples", type=int, default=1000)
    parser.add_argument("--image-eval-samples", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS),
                        default=[n for n in CONTENDERS if n not in LEVERS])
    parser.add_argument("--results", default="fit_throughput", help="results/NAME.json")
    parser.add_argument("--only", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        import json

        result = CONTENDERS[args.only](args)
        print(json.dumps({**result, "peak_memory_mb": peak_memory_mb()}))
        return
    extra = ["--samples", str(args.samples), "--eval-samples", str(args.eval_samples), "--epochs", str(args.epochs),
             "--max-length", str(args.max_length), "--image-samples", str(args.image_samples),
             "--image-eval-samples", str(args.image_eval_samples)]
    print(cpu_flags_line(), flush=True)
    results = interleaved_rounds(Path(__file__), args.contenders, extra, args.rounds, KEY)
    rows = summarize_rounds(results, KEY)
    by = {r["contender"]: r for r in rows}
    ratios = {}
    for a, b in RATIOS:
        if a in by and b in by:
            ratios[f"{a} / {b} (best samples/s)"] = by[a][KEY] / by[b][KEY]
            ratios[f"{a} - {b} (accuracy points)"] = 100 * (by[a]["accuracy"] - by[b]["accuracy"])
    print(cpu_flags_line())
    print_table(rows, ["contender", f"best_{KEY}", f"median_{KEY}", "spread", "rounds", "train_seconds",
                       "peak_memory_mb", "accuracy"])
    print()
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    path = write_json(args.results, {"args": vars(args), "machine": machine(), "cpu": cpu_flags_line(),
                                     "rows": rows, "rounds": results, "ratios": ratios})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
