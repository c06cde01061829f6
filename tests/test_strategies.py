"""Contract over every strategy, then the behaviours each one promises."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import pretune
from pretune import PretuneError
from pretune.api import as_recipe
from pretune.data import collate
from pretune.strategies import strategies
from pretune.train.setup import prepare_fit
from tests.conftest import close, fit_killed_at, tiny_recipe

LR, DECAY = 1e-3, 0.5


def build(tiny_model_dir, sentiment_csv, **strategy):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    recipe["strategy"] = strategy
    recipe["train"]["optimizer"] = {"lr": LR, "weight_decay": 0.01}
    parts = prepare_fit(as_recipe(recipe))
    optimizer = parts.optimizer_factory()(parts.model)
    state = SimpleNamespace(epoch=0, step=0, model=parts.model,
                            accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    for cb in parts.callbacks():
        cb.on_fit_start(state)
    return parts, optimizer, state


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


HEAD = {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"}


def expected_trainable(name, names):
    layer1 = {n for n in names if ".layer.1." in n}
    return {
        "full": set(names), "llrd": set(names), "gradual": HEAD, "freeze": HEAD,
        "bitfit": HEAD | {n for n in names if n.endswith("bias")},
        "lora": {n for n in names if "lora_" in n or "modules_to_save" in n}, "setfit": HEAD,
    }[name], layer1


@pytest.mark.parametrize("name", strategies.available())
def test_every_strategy_trains_exactly_what_it_says(name, tiny_model_dir, sentiment_csv):
    parts, optimizer, _ = build(tiny_model_dir, sentiment_csv, name=name, decay=DECAY, setfit={"pairs": 1})
    names = [n for n, _ in parts.model.named_parameters()]
    want, _ = expected_trainable(name, names)
    assert trainable(parts.model) == want
    if name == "lora":  # the head trains (and is saved) with the adapters: peft#310
        assert any("classifier.modules_to_save" in n for n in want)
    # One real step changes exactly the trainable parameters.
    before = {n: p.detach().clone() for n, p in parts.model.named_parameters()}
    batch = collate(parts.encoded["train"], list(range(16)), parts.pad_id)
    labels = batch.pop("labels")
    parts.loss_fn(parts.model(**batch).logits, labels).backward()
    optimizer.step()
    changed = {n for n, p in parts.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == want


def test_llrd_learning_rates_decay_down_the_layers(tiny_model_dir, sentiment_csv):
    parts, optimizer, _ = build(tiny_model_dir, sentiment_csv, name="llrd", decay=DECAY)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(parts.model.named_parameters())
    assert lr_of[id(params["classifier.weight"])] == LR
    assert lr_of[id(params["bert.encoder.layer.1.attention.self.query.weight"])] == LR * DECAY
    assert lr_of[id(params["bert.encoder.layer.0.attention.self.query.weight"])] == LR * DECAY**2
    assert lr_of[id(params["bert.embeddings.word_embeddings.weight"])] == LR * DECAY**3
    wd_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert wd_of[id(params["bert.encoder.layer.0.output.LayerNorm.weight"])] == 0.0
    assert wd_of[id(params["bert.encoder.layer.0.output.dense.weight"])] == 0.01


def test_freeze_can_train_the_top_layers(tiny_model_dir, sentiment_csv):
    parts, _, _ = build(tiny_model_dir, sentiment_csv, name="freeze", train_top_layers=1)
    names = [n for n, _ in parts.model.named_parameters()]
    assert trainable(parts.model) == HEAD | {n for n in names if ".layer.1." in n}


def test_gradual_unfreezes_one_group_per_epoch(tiny_model_dir, sentiment_csv):
    parts, _, state = build(tiny_model_dir, sentiment_csv, name="gradual")
    (callback,) = parts.callbacks()
    callback._apply(state)  # a fresh callback object; the one in build() was applied already
    names = [n for n, _ in parts.model.named_parameters()]
    seen = []
    for epoch in range(5):
        state.epoch = epoch
        callback.on_epoch_start(state)
        seen.append(trainable(parts.model))
    layer = lambda i: {n for n in names if f".layer.{i}." in n}  # noqa: E731
    assert seen[0] == HEAD
    assert seen[1] == HEAD | layer(1)
    assert seen[2] == HEAD | layer(1) | layer(0)
    assert seen[3] == seen[4] == set(names)  # embeddings last; then everything trains


def test_gradual_by_steps_and_survives_resume(tmp_path, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, checkpoint_every_steps=4)
    recipe["strategy"] = {"name": "gradual", "unfreeze_every_steps": 5}
    out = tmp_path / "killed"
    fit_killed_at(recipe, out, step=7)
    counts = []

    class Watch:
        def on_batch_end(self, state):
            model = state.accelerator.unwrap_model(state.model)
            counts.append((state.step, len(trainable(model))))

    resumed = pretune.fit(resume=out, callbacks=[Watch()], quiet=True)
    whole = pretune.fit(recipe, tmp_path / "whole", quiet=True)
    assert close(resumed.metrics["test"], whole.metrics["test"])
    by_step = dict(counts)
    # Steps 9 (after 1 unfreeze at step 5) and 10 (2nd unfreeze) after the resume at step 4.
    assert by_step[9] == len(HEAD) + 16 and by_step[10] == len(HEAD) + 32


def test_group_overrides_apply_and_bad_ones_are_clear(tiny_model_dir, sentiment_csv):
    parts, optimizer, _ = build(
        tiny_model_dir, sentiment_csv, name="full",
        groups=[{"match": r"embeddings", "trainable": False},
                {"match": r"^classifier\.", "lr": 0.05, "weight_decay": 0.0}])
    assert not any("embeddings" in n for n in trainable(parts.model))
    lrs = {g["lr"] for g in optimizer.param_groups}
    assert lrs == {LR, 0.05}
    with pytest.raises(PretuneError, match=r"groups\[0\].match 'decoder' matches no parameter"):
        build(tiny_model_dir, sentiment_csv, name="full", groups=[{"match": "decoder", "lr": 1.0}])
    with pytest.raises(PretuneError, match="not a valid regex"):
        build(tiny_model_dir, sentiment_csv, name="full", groups=[{"match": "(", "lr": 1.0}])
    with pytest.raises(PretuneError, match="leave no parameter to train"):
        build(tiny_model_dir, sentiment_csv, name="full", groups=[{"match": ".", "trainable": False}])
    with pytest.raises(PretuneError, match="unknown strategy 'prompt'; known: bitfit, freeze, full"):
        build(tiny_model_dir, sentiment_csv, name="prompt")


def test_unknown_structure_needs_layer_prefixes(tiny_model_dir, sentiment_csv):
    from pretune.models.layers import find_layers

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(2)])
            self.head = torch.nn.Linear(4, 2)

    with pytest.raises(PretuneError, match="set model.layer_prefixes"):
        find_layers(Plain())
    layers = find_layers(Plain(), ["embed", "blocks.0", "blocks.1"])
    assert layers.embeddings == ["embed.weight"] and layers.head == ["head.weight", "head.bias"]
    assert layers.layers[1] == ["blocks.1.weight", "blocks.1.bias"]
    with pytest.raises(PretuneError, match="'blocks.7' matches no parameter"):
        find_layers(Plain(), ["embed", "blocks.7"])


@pytest.mark.parametrize("merge", [True, False])
def test_lora_head_survives_save_and_reload(tmp_path, tiny_model_dir, sentiment_csv, merge):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    recipe["strategy"] = {"name": "lora", "lora": {"rank": 8, "alpha": 32, "merge": merge}}
    recipe["train"] |= {"epochs": 6, "optimizer": {"lr": 2e-2}}
    run = pretune.fit(recipe, tmp_path / "lora", quiet=True)
    assert run.metrics["test"]["accuracy"] >= 0.7  # it learned: the comparison below means something
    data = prepare_fit(as_recipe(recipe)).data.splits["test"]
    names = ["neg", "pos"]
    test_csv = tmp_path / "test.csv"
    pd.DataFrame({"text": data.texts, "label": [names[i] for i in data.labels]}).to_csv(test_csv, index=False)
    reloaded = pretune.evaluate(run, test_csv)
    assert reloaded["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert reloaded["f1_macro"] == pytest.approx(run.metrics["test"]["f1_macro"])
    files = {p.name for p in run.model_path.iterdir()}
    assert ("adapter_config.json" in files) != merge
    if merge:  # a plain model: transformers alone loads it
        from transformers import AutoModelForSequenceClassification

        assert AutoModelForSequenceClassification.from_pretrained(run.model_path).config.id2label[1] == "pos"


def test_freeze_caches_the_body_and_trains_the_head_as_without_cache(tmp_path, tiny_model_dir, sentiment_csv):
    """Without dropout the frozen body's output is the same every epoch: with the cache the fit
    ends where the uncached fit ends, and from the second epoch on no batch runs the encoder.
    Validation passes inside an epoch (eval_every_steps) go through the real encoder."""
    overrides = ["model.dropout=0", "model.attention_dropout=0", "strategy.name=freeze", "train.epochs=3",
                 "train.optimizer.lr=0.01", "train.eval_every_steps=5", "train.eval_batch_size=7"]
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    cached = pretune.fit(recipe, tmp_path / "cached", overrides=overrides, quiet=True)
    plain = pretune.fit(recipe, tmp_path / "plain", overrides=[*overrides, "strategy.cache_features=false"],
                        quiet=True)
    train = cached.metrics["train"]
    per_epoch = train["steps"] // 3
    assert train["feature_cache"] == {"batches_cached": 2 * per_epoch, "batches_computed": per_epoch,
                                      "rows": train["samples"]}
    assert "feature_cache" not in plain.metrics["train"]
    assert cached.metrics["test"]["loss"] == pytest.approx(plain.metrics["test"]["loss"], rel=1e-4)

    def validation_losses(run):
        lines = (run.path / "metrics.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines) if r["split"] == "validation"]

    assert len(validation_losses(cached)) >= 4
    assert validation_losses(cached) == pytest.approx(validation_losses(plain), rel=1e-4)
