"""The pipeline fits once more with balanced class weights when its classifier answers one class
on validation (issue 29: the drug-review model that said 'positive' for every test row), keeps the
better of the two on validation macro F1, and leaves a recipe that chose its own remedy alone."""

import json

import pandas as pd

import pretune
from tests.conftest import sentiment_frame, tiny_recipe


def imbalanced_csv(path):
    frame = sentiment_frame(600)
    negatives, positives = frame[frame.label == "neg"], frame[frame.label == "pos"]
    frame = pd.concat([negatives, positives.head(30)]).sample(frac=1, random_state=0)
    frame.to_csv(path, index=False)  # 300 negative, 30 positive
    return path


def test_a_classifier_answering_one_class_is_fitted_again_with_balanced_weights(tiny_model_dir, tmp_path):
    data = imbalanced_csv(tmp_path / "skewed.csv")
    # A learning rate too small to learn in one epoch: the model answers the majority class.
    recipe = tiny_recipe(tiny_model_dir, data, epochs=1, optimizer={"lr": 1e-6})
    result = pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    record = result.summary["stages"]["fit"]
    remedy = record["remedy"]
    assert "answers 'neg'" in remedy["warning"] and remedy["tried"] == {"train.loss.class_weights": "balanced"}
    second = pretune.load_run(tmp_path / "p" / "fit-balanced")
    assert second.recipe.train.loss.class_weights == "balanced" and second.status == "completed"
    f1 = remedy["f1_macro"]
    assert f1["plain"] == pretune.load_run(tmp_path / "p" / "fit").metrics["validation"]["f1_macro"]
    assert remedy["kept"] == ("balanced" if f1["balanced"] > f1["plain"] else "plain")
    assert result.run.path.name == {"balanced": "fit-balanced", "plain": "fit"}[remedy["kept"]]
    assert record["path"] == str(result.run.path)
    saved = json.loads((tmp_path / "p" / "pipeline.json").read_text())["stages"]["fit"]
    assert saved["remedy"]["kept"] == remedy["kept"]
    # The same command again: both fits are kept, nothing is trained again.
    again = pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    assert again.run.path == result.run.path

    # A recipe that chose its own remedy is its user's choice: no second fit.
    recipe["data"]["sampling"] = "balanced"
    other = pretune.pipeline(recipe, tmp_path / "q", quiet=True)
    assert "remedy" not in other.summary["stages"]["fit"] and not (tmp_path / "q" / "fit-balanced").exists()
