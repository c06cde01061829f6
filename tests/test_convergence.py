"""Convergence and generalization figures (train/convergence.py): the training sample scored at
each evaluation, the figures in metrics.json, and `compare` ranking optimizers on them."""

from __future__ import annotations

import numpy as np
import pytest

import pretune
from pretune.train.convergence import convergence_figures, rank, rankings, take_rows, training_sample
from tests.conftest import sentiment_frame, tiny_recipe
from tests.test_report import cli


def test_figures_from_a_known_history():
    history = [
        {"split": "train", "step": 2, "loss": 0.7, "train_seconds": 1.0},
        {"split": "validation", "step": 2, "accuracy": 0.5, "loss": 0.7},
        {"split": "train_sample", "step": 2, "accuracy": 0.55},
        {"split": "validation", "step": 4, "accuracy": 0.78, "loss": 0.5},
        {"split": "train", "step": 5, "loss": 0.5, "train_seconds": 4.0},
        {"split": "train_sample", "step": 4, "accuracy": 0.8},
        {"split": "validation", "step": 6, "accuracy": 0.84, "loss": 0.4},
        {"split": "train_sample", "step": 6, "accuracy": 0.97},
        {"split": "validation", "step": 8, "accuracy": 0.8, "loss": 0.45},
        {"split": "train_sample", "step": 8, "accuracy": 0.99},
    ]
    c = convergence_figures(history, "accuracy", None)
    # final 0.8: 95% of it is 0.76, first reached at step 4 (0.78): 3.0 training seconds in,
    # between the train logs at step 2 (1 s) and step 5 (4 s).
    assert c["final"] == 0.8 and c["target"] == pytest.approx(0.76)
    assert (c["steps_to_95"], c["seconds_to_95"]) == (4, 3.0)
    assert (c["best_step"], c["best_value"]) == (6, 0.84)
    assert c["train_validation_gap"] == pytest.approx(0.19)
    # Lower is better: the loss must come down to final / 0.95; the gap keeps "positive: train ahead".
    loss = convergence_figures(history, "loss", 0.45)
    assert loss["steps_to_95"] == 6 and loss["best_step"] == 6 and "train_validation_gap" not in loss
    assert convergence_figures([{"split": "train", "step": 1, "loss": 1.0}], "accuracy", None) is None


def test_ranks_share_ties_and_skip_missing():
    assert rank([3.0, 1.0, None, 1.0], lower=True) == [2, 1, None, 1]
    assert rank([0.7, 0.9, 0.8], lower=False) == [3, 1, 2]
    ranks = rankings([{"metric": "accuracy", "seconds_to_95": 2.0, "train_validation_gap": -0.3, "final": 0.8},
                      {"metric": "accuracy", "seconds_to_95": 5.0, "train_validation_gap": 0.1, "final": 0.9}])
    assert list(ranks.values()) == [[1, 2], [2, 1], [2, 1]]  # the gap ranks by its size


def test_training_sample_is_fixed_and_keeps_rows_whole():
    from pretune.data.encode import EncodedSplit
    from pretune.data.ragged import RaggedRows

    rows = [[1, 2], [3], [4, 5, 6], [7]]
    split = EncodedSplit({"input_ids": RaggedRows.from_lists(rows)}, np.array([0, 1, 0, 1]),
                         np.array([2, 1, 3, 1]), meta={"words": ["a", "b", "c", "d"]})
    sample = training_sample(split, 2, 100, seed=3)
    again = training_sample(split, 2, 100, seed=3)
    assert len(sample) == 2 and sample.meta["words"] == again.meta["words"]
    for ids, label, length, word in zip(sample.features["input_ids"], sample.labels, sample.lengths,
                                        sample.meta["words"], strict=True):
        i = "abcd".index(word)
        assert list(ids) == rows[i] and label == split.labels[i] and length == len(rows[i])
    assert len(training_sample(split, None, 3, seed=0)) == 3  # null: as many as validation
    assert training_sample(split, 0, 3, seed=0) is None
    assert len(take_rows(split, np.array([3]))) == 1


@pytest.fixture(scope="module")
def optimizer_runs(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("optimizers")
    sentiment_frame(128, seed=4).to_csv(root / "data.csv", index=False)
    made = {}
    for name, lr in (("adamw", 5e-3), ("sgd", 5e-2), ("rmsprop", 1e-3)):
        recipe = tiny_recipe(tiny_model_dir, root / "data.csv", epochs=2, evaluations=4,
                             optimizer={"name": name, "lr": lr}, train_sample=24)
        made[name] = pretune.fit(recipe, root / name, quiet=True)
    return made


def test_each_evaluation_scores_the_training_sample(optimizer_runs):
    run = optimizer_runs["adamw"]
    history = run.history
    val_steps = [r["step"] for r in history if r["split"] == "validation"]
    sampled = [r for r in history if r["split"] == "train_sample"]
    assert [r["step"] for r in sampled] == val_steps and len(set(val_steps)) >= 4
    assert all(0 <= r["accuracy"] <= 1 and "train_seconds" not in r for r in sampled)
    c = run.metrics["convergence"]
    assert c["metric"] == "accuracy" and c["final"] == run.metrics["validation"]["accuracy"]
    assert c["steps_to_95"] in val_steps and c["best_step"] in val_steps and c["seconds_to_95"] > 0
    assert c["train_validation_gap"] == pytest.approx(c["train_metric"] - c["validation_metric"])
    assert c["train_metric"] == sampled[-1]["accuracy"]


def test_compare_ranks_the_optimizers(optimizer_runs, tmp_path, capsys):
    paths = [optimizer_runs[n].path for n in ("adamw", "sgd", "rmsprop")]
    code, printed, err = cli(capsys, "compare", *paths, "--out", tmp_path / "cmp.html")
    assert code == 0, err
    for figure in ("convergence steps_to_95", "convergence seconds_to_95", "convergence train_validation_gap",
                   "convergence best_step", "ranks", "seconds to 95%", "train-validation gap",
                   "final validation accuracy"):
        assert figure in printed, figure
    html = (tmp_path / "cmp.html").read_text()
    assert "Ranks (1: best" in html and "train.optimizer.name" in html
    page = pretune.report(paths[0]).read_text()
    assert "Convergence and generalization" in page and "train-validation gap" in page


def test_a_search_trial_skips_the_sample_unless_asked(tiny_model_dir, tmp_path):
    sentiment_frame(64).to_csv(tmp_path / "data.csv", index=False)
    recipe = tiny_recipe(tiny_model_dir, tmp_path / "data.csv", epochs=1)
    run = pretune.fit(recipe, tmp_path / "lean", quiet=True, lean=True)
    assert not [r for r in run.history if r["split"] == "train_sample"]
    assert "train_validation_gap" not in run.metrics["convergence"]
