"""EfficientNet-Lite0 on a Fashion-MNIST slice: transfer vs random initialisation, feature
extraction (freeze + feature cache) vs full fine-tuning, and images/s.

    python benchmarks/vision.py [--samples 1000] [--eval-samples 500] [--image-size 64] [--epochs 2]

Every contender trains the same network on the same training slice (seeded) for the same number
of epochs and is measured on the same slice of Fashion-MNIST's own test set:

  transfer-full    ImageNet weights, every parameter trains (AdamW 1e-3, linear schedule)
  random-full      the same architecture from random initialisation, same budget and settings
  transfer-freeze  ImageNet weights, body frozen, head only (AdamW 3e-3); the body's features are
                   computed once (feature cache) and served from the second epoch on
  transfer-sgd-step  ImageNet weights, every parameter, the guides' CNN recipe: SGD 0.1 with momentum
                   0.9 and weight decay 1e-4, lr x0.3 every 25 steps
  augment-worker   transfer-full plus random resized crop (0.6) and flip, augmented in a DataLoader
                   worker process a batch ahead (the default for augmented images on 2+ cores)
  augment-inline   the same augmentation in the training process (train.dataloader_workers: 0)

Training images/s counts training steps only; inference images/s (batch 32) and latency (batch 1)
are measured on the trained model after warm-up. Each contender runs in its own process.
Needs `apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, peak_memory_mb, print_table, run_child, write_json  # noqa: E402

AUGMENT = {"crop_scale": 0.6, "flip": 0.5}
ADAMW = {"name": "adamw", "lr": 1e-3}
CONTENDERS = {  # name -> (pretrained, strategy, optimizer, schedule, augmentation, dataloader workers)
    "transfer-full": (True, "full", ADAMW, {}, None, None),
    "random-full": (False, "full", ADAMW, {}, None, None),
    "transfer-freeze": (True, "freeze", {"lr": 3e-3}, {}, None, None),
    "transfer-sgd-step": (True, "full", {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4},
                          {"name": "step", "step_size": 25, "gamma": 0.3, "warmup_ratio": 0.0}, None, None),
    "augment-worker": (True, "full", ADAMW, {}, AUGMENT, None),
    "augment-inline": (True, "full", ADAMW, {}, AUGMENT, 0),
}


def recipe(args, name: str) -> dict:
    _, strategy, optimizer, schedule, augment, workers = CONTENDERS[name]
    return {"seed": 0, "model": {"source": "efficientnet-lite0"},
            "data": {"task": "image-classification", "source": "fashion-mnist", "image_size": args.image_size,
                     "max_train_samples": args.samples, "max_eval_samples": args.eval_samples,
                     **({"augment": augment} if augment else {})},
            "strategy": {"name": strategy},
            "train": {"epochs": args.epochs, "batch_size": 32, "eval_batch_size": 32, "optimizer": optimizer,
                      "schedule": schedule, "checkpoint_every_steps": None, "mixed_precision": "no",
                      "dataloader_workers": workers}}


def inference_speed(model, size: int) -> tuple[float, float]:
    """(images/s at batch 32, ms at batch 1), each after three warm-up calls."""
    model.eval()
    out = []
    for batch, reps in ((32, 5), (1, 20)):
        x = torch.randn(batch, 3, size, size)
        with torch.inference_mode():
            for _ in range(3):
                model(pixel_values=x)
            start = time.perf_counter()
            for _ in range(reps):
                model(pixel_values=x)
        out.append((time.perf_counter() - start) / reps)
    return 32 / out[0], out[1] * 1000


def run_one(name: str, args) -> dict:
    import pretune
    from pretune.data.images import ImageSettings
    from pretune.models.vision import LITE_MEAN, LITE_STD, build_efficientnet

    pretrained = CONTENDERS[name][0]
    extra = {}
    if not pretrained:  # the same network and normalisation, random weights
        torch.manual_seed(0)
        extra = {"model": build_efficientnet("efficientnet-lite0", 10, args.image_size, pretrained=False),
                 "tokenizer": ImageSettings(args.image_size, LITE_MEAN, LITE_STD)}
    with tempfile.TemporaryDirectory() as tmp:
        run = pretune.fit(recipe(args, name), Path(tmp) / name, quiet=True, **extra)
        m = run.metrics
        from pretune.models.vision import load_saved_vision_model
        from pretune.tasks import create_task

        task = create_task(run.recipe.data)
        per_second, latency = inference_speed(load_saved_vision_model(run.model_path, task), args.image_size)
    return {"contender": name, "test_accuracy": m["test"]["accuracy"], "test_f1_macro": m["test"]["f1_macro"],
            "train_seconds": m["train"]["train_seconds"],
            "train_images_per_s": m["train"]["train_samples_per_second"],
            "infer_images_per_s_b32": per_second, "latency_ms_b1": latency, "peak_mb": peak_memory_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS))
    parser.add_argument("--results", default="vision", help="results/NAME.json (a partial --contenders run: "
                                                              "another name keeps the full table)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args.only, args)))
        return
    passed = ["--samples", str(args.samples), "--eval-samples", str(args.eval_samples),
              "--image-size", str(args.image_size), "--epochs", str(args.epochs)]
    rows = []
    for name in args.contenders:  # each row as it lands: a long run stopped early keeps its rows
        rows.append(run_child(Path(__file__), name, passed))
        print(json.dumps(rows[-1]), flush=True)
    print(f"# EfficientNet-Lite0 on Fashion-MNIST: {args.samples} train / {args.eval_samples} test images at "
          f"{args.image_size} px, {args.epochs} epochs, fp32; {cpu_flags_line()}")
    print_table(rows, ["contender", "test_accuracy", "test_f1_macro", "train_seconds", "train_images_per_s",
                       "infer_images_per_s_b32", "latency_ms_b1", "peak_mb"])
    print(f"results: {write_json(args.results, {'machine': machine(), 'args': vars(args), 'rows': rows})}")


if __name__ == "__main__":
    main()
