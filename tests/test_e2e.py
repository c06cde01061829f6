"""End to end on the real bundled model (all-MiniLM-L6-v2) and real bundled data, on slices.

These assert real learning: accuracy well above chance and above the untouched model.
"""

import pytest

import pretune
from pretune.api import as_recipe
from tests.conftest import untrained_metrics

pytestmark = pytest.mark.e2e


def untrained_accuracy(recipe) -> float:
    return untrained_metrics(recipe)["accuracy"]


def test_minilm_learns_rotten_tomatoes_sentiment(tmp_path):
    recipe = as_recipe({
        "data": {"source": "rotten-tomatoes", "max_train_samples": 1600, "max_eval_samples": 400,
                 "max_length": 64},
        "train": {"epochs": 1, "batch_size": 16, "optimizer": {"lr": 1e-4},
                  "checkpoint_every_steps": None},
    })
    run = pretune.fit(recipe, tmp_path / "rt", quiet=True)
    accuracy = run.metrics["test"]["accuracy"]
    before = untrained_accuracy(recipe)
    assert accuracy >= 0.70, accuracy  # chance is ~0.58 (the larger class)
    assert accuracy >= before + 0.10, (accuracy, before)
    labels = [p["label"] for p in run.predict(["A moving, beautifully acted film.",
                                               "A tedious, clumsy mess of a movie."])]
    assert labels == ["fresh", "rotten"]


def test_minilm_learns_bbc_news_topics(tmp_path):
    recipe = as_recipe({
        "data": {"source": "bbc-news", "max_train_samples": 400, "max_eval_samples": 200,
                 "max_length": 96},
        "train": {"epochs": 2, "batch_size": 16, "optimizer": {"lr": 2e-4},
                  "checkpoint_every_steps": None},
    })
    run = pretune.fit(recipe, tmp_path / "bbc", quiet=True)
    accuracy = run.metrics["test"]["accuracy"]
    assert accuracy >= 0.85, accuracy  # chance is ~0.23 with five topics
    assert accuracy >= untrained_accuracy(recipe) + 0.3
    assert set(run.metrics["test"]["per_class"]) == {"business", "entertainment", "politics", "sports", "tech"}
