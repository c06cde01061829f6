"""End to end on the real EfficientNet-Lite0 (ImageNet weights) and real digits (mnist-5k):
feature extraction (freeze, with the feature cache) on 320 images at 64 px learns far above
chance and far above the untouched head; the saved model reloads to the same figures."""

from __future__ import annotations

import pytest

import pretune
from pretune.models.layers import find_layers
from pretune.models.vision import build_efficientnet

pytestmark = pytest.mark.e2e


def test_efficientnet_layer_groups_are_known_without_configuration():
    model = build_efficientnet("efficientnet-lite0", 3, 64, pretrained=False)
    layers = find_layers(model)
    assert layers.embeddings == ["net._conv_stem.weight", "net._bn0.weight", "net._bn0.bias"]
    assert len(layers.layers) == 8  # 7 stages (16, 24, 40, 80, 112, 192, 320 wide) and the 1x1 head conv
    assert layers.head == ["classifier.weight", "classifier.bias"]
    every = {n for n, _ in model.named_parameters()}
    assert every == set(layers.embeddings).union(*layers.layers, layers.head)


def test_efficientnet_lite0_really_learns_digits(tmp_path):
    from pretune.data import prepare
    from pretune.evaluate import TorchRunner, evaluate
    from pretune.models import load_model, load_preprocessor
    from pretune.recipe import Recipe
    from pretune.tasks import create_task
    from pretune.train.loop import seed_everything

    recipe = Recipe.from_dict({
        "seed": 0, "model": {"source": "efficientnet-lite0"},
        "data": {"task": "image-classification", "source": "mnist-5k", "image_size": 64,
                 "max_train_samples": 320, "max_eval_samples": 96},
        "strategy": {"name": "freeze"},
        # Every batch holds 32 images: one input shape, so oneDNN prepares its kernels once.
        "train": {"epochs": 8, "batch_size": 32, "eval_batch_size": 32, "optimizer": {"lr": 3e-3},
                  "checkpoint_every_steps": None, "mixed_precision": "no"},
    })
    run = pretune.fit(recipe, tmp_path / "run", quiet=True)
    test = run.metrics["test"]
    assert run.metrics["train"]["feature_cache"]["batches_cached"] > 0
    # The untouched model: ImageNet body, fresh seeded head.
    seed_everything(recipe.seed)
    task = create_task(recipe.data)
    data = prepare(recipe.data, task)
    settings = load_preprocessor(recipe.model.source, task)
    untouched = evaluate(TorchRunner(load_model(recipe.model, task)),
                         task.encode(data.splits["test"], settings), task, 32)
    assert test["accuracy"] >= 0.6, test  # 10 classes: chance is 0.1
    assert test["accuracy"] >= untouched["accuracy"] + 0.4, (test, untouched)
    # Saved as safetensors + an architecture config; reloads to the same test figures.
    assert (run.model_path / "model.safetensors").is_file() and (run.model_path / "config.json").is_file()
    again = pretune.load_run(run.path).evaluate()
    # fit's test pass runs under the fit's autocast (bf16 on CPUs with avx512_bf16), the reloaded
    # model in fp32: a few borderline images may flip between the two.
    assert again["accuracy"] == pytest.approx(test["accuracy"], abs=0.05)
