"""strategy setfit: contrastive pairs for the body, then the head; the result is a normal run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pretune
from pretune import PretuneError
from pretune.strategies.setfit import sample_pairs
from tests.conftest import sentiment_frame, tiny_recipe


def test_pairs_are_same_and_other_label_partners():
    labels = np.array([0, 0, 1, 1, 1])
    left, right, target = sample_pairs(labels, 3, seed=0)
    assert len(left) == 5 * 2 * 3 and target.sum() == 5 * 3  # each row: 3 positives, 3 negatives
    assert all((labels[a] == labels[b]) == bool(t) for a, b, t in zip(left, right, target, strict=True))
    assert not any(a == b for a, b, t in zip(left, right, target, strict=True) if t)  # never itself
    rows = np.array([[1, 0], [1, 0], [1, 1], [0, 1]])  # multi-label: equal label sets pair as positive
    left, right, target = sample_pairs(rows, 2, seed=1)
    assert all((rows[a] == rows[b]).all() == bool(t) for a, b, t in zip(left, right, target, strict=True))


def few_shot(tmp_path, per_class: int):
    frame = sentiment_frame(200, seed=5)
    train = frame.groupby("label", group_keys=False).head(per_class)
    rest = frame.drop(train.index)
    return {"train": train, "validation": rest.iloc[:48], "test": rest.iloc[48:]}


def test_setfit_is_a_normal_run(tmp_path, tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    recipe = tiny_recipe(tiny_model_dir, tmp_path / "unused.csv", epochs=10, batch_size=8, train_sample=0)
    recipe["strategy"] = {"name": "setfit", "setfit": {"pairs": 8, "lr": 1e-3}}
    run = pretune.fit(recipe, tmp_path / "run", quiet=True, data=few_shot(tmp_path, 8), report=False)
    phase = next(c for c in run.metrics["model"]["changes"] if c["change"] == "strategy setfit body phase")
    assert phase["setfit_pairs"] == 16 * 2 * 8
    assert phase["setfit_pair_loss_last"] < phase["setfit_pair_loss_first"]  # the pairs were learnt
    assert run.metrics["model"]["trainable"] < run.metrics["model"]["parameters"] / 2  # then the head alone
    # Ordinary from here on: transformers loads it, predict and eval work from the directory.
    model = AutoModelForSequenceClassification.from_pretrained(run.model_path)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert [p["label"] in ("neg", "pos") for p in pretune.load_run(run.path).predict(["a superb film"])] == [True]
    assert 0 <= run.metrics["test"]["accuracy"] <= 1  # learning is benchmarks/transfer.py's to show (real model)


def test_setfit_multi_label_and_refusals(tmp_path, tiny_model_dir):
    frame = sentiment_frame(48, seed=2)
    frame["labels"] = [f"{label}|long" if len(text.split()) > 6 else label for text, label in
                       zip(frame.text, frame.label, strict=True)]
    recipe = tiny_recipe(tiny_model_dir, tmp_path / "unused.csv", epochs=1, train_sample=0)
    recipe["data"] |= {"task": "multi-label", "label_separator": "|"}
    recipe["strategy"] = {"name": "setfit", "setfit": {"pairs": 2}}
    data = {"train": frame.iloc[:32], "validation": frame.iloc[32:40], "test": frame.iloc[40:]}
    run = pretune.fit(recipe, tmp_path / "ml", quiet=True, data=data, report=False)
    assert run.metrics["status"] == "completed" and "f1_micro" in run.metrics["test"]
    regression = pd.DataFrame({"text": frame.text, "label": np.arange(len(frame), dtype=float)})
    recipe["data"] = {"task": "regression", "max_length": 32}
    with pytest.raises(PretuneError, match="strategy setfit trains text classification and multi-label"):
        pretune.fit(recipe, tmp_path / "r", quiet=True, data={"train": regression}, report=False)
