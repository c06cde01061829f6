"""Temperature scaling (train.calibrate): fitted on validation, saved with the model, applied by
every runner's decode; ECE before and after in metrics.json, the report and the card."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import pretune
from pretune.tasks.base import softmax
from pretune.tasks.temperature import expected_calibration_error, fit_temperature
from tests.conftest import tiny_recipe


def overconfident(n: int = 4000, k: int = 3, sharpen: float = 4.0, seed: int = 0):
    """Logits whose softmax is calibrated, then multiplied by `sharpen`: a model that states 0.99
    where it is right 80% of the time."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 1.5
    labels = np.array([rng.choice(k, p=p) for p in softmax(logits)])
    return logits * sharpen, labels


def test_temperature_recovers_the_sharpening_and_lowers_ece():
    logits, labels = overconfident()
    before = expected_calibration_error(softmax(logits), labels)
    t = fit_temperature(logits, labels)
    after = expected_calibration_error(softmax(logits / t), labels)
    assert 3.3 < t < 4.8  # the logits were sharpened 4x
    assert after < before / 2
    assert (softmax(logits / t).argmax(-1) == logits.argmax(-1)).all()  # accuracy cannot move


def test_a_calibrated_model_is_left_nearly_alone():
    logits, labels = overconfident(sharpen=1.0, seed=1)
    assert 0.85 < fit_temperature(logits, labels) < 1.15


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    out = tmp_path_factory.mktemp("runs") / "calibrated"
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, calibrate=True)
    recipe["report"] = True
    return pretune.fit(recipe, out, quiet=True)


def test_fit_records_the_temperature_and_ece_before_and_after(calibrated_run):
    cal = calibrated_run.metrics["calibration"]
    assert cal["temperature"] > 0
    for key in ("validation_ece_before", "validation_ece_after", "test_ece_before", "test_ece_after"):
        assert 0 <= cal[key] <= 1, key
    # fitted on validation: never worse there than the unscaled softmax by more than binning noise
    assert cal["validation_ece_after"] <= cal["validation_ece_before"] + 0.02
    config = json.loads((calibrated_run.path / "model" / "config.json").read_text())
    assert config["pretune_temperature"] == pytest.approx(cal["temperature"])


def test_predict_applies_the_saved_temperature(calibrated_run):
    texts = ["good great film", "awful dull plot", "the movie was a story"]
    got = pretune.predict(calibrated_run, texts)
    model_dir = calibrated_run.path / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = model(**tok(texts, return_tensors="pt", padding=True)).logits.numpy()
    t = calibrated_run.metrics["calibration"]["temperature"]
    expected = softmax(logits / t)
    labels = model.config.id2label
    for row, p in zip(got, expected, strict=True):
        assert row["scores"] == pytest.approx({labels[i]: float(v) for i, v in enumerate(p)}, abs=1e-4)


def test_compressed_variant_keeps_the_temperature(calibrated_run, tmp_path):
    variant = pretune.compress(calibrated_run, ["quantize"], out=tmp_path / "c", max_drop=None)
    texts = ["good great film", "awful dull plot"]
    node = next(p for p in (tmp_path / "c").rglob("model") if (p / "config.json").is_file())
    assert json.loads((node / "config.json").read_text())["pretune_temperature"] == pytest.approx(
        calibrated_run.metrics["calibration"]["temperature"])
    quantized = pretune.predict(node.parent, texts)
    original = pretune.predict(calibrated_run, texts)
    for q, o in zip(quantized, original, strict=True):
        assert q["label"] == o["label"] and abs(q["score"] - o["score"]) < 0.05
    assert variant is not None


def test_report_and_card_show_the_scaling(calibrated_run):
    rows = [json.loads(line) for line in (calibrated_run.path / "predictions" / "test.jsonl").read_text().splitlines()]
    assert all("score_before" in r for r in rows)
    t = calibrated_run.metrics["calibration"]["temperature"]
    if t > 1.05:  # scaling that softens makes the top probability smaller; the reverse when T < 1
        assert np.mean([r["score"] <= r["score_before"] + 1e-4 for r in rows]) == 1.0
    page = (calibrated_run.path / "report.html").read_text()
    assert "temperature-scaled" in page
    assert "temperature-scaled" in (calibrated_run.path / "model" / "README.md").read_text()


def test_a_model_that_answers_one_class_is_flagged():
    from pretune.tasks.sequence import collapse_warnings

    # the drug-review fit: 'positive' for all 379 rows, 248 of them positive
    stuck = {"confusion_matrix": [[0, 131], [0, 248]], "f1_macro": 0.264}
    lines = collapse_warnings(stuck, ["negative", "positive"])
    assert len(lines) == 1 and "'positive' for 100% of 379 rows" in lines[0] and "class_weights" in lines[0]
    learnt = {"confusion_matrix": [[100, 31], [40, 208]], "f1_macro": 0.79}
    assert collapse_warnings(learnt, ["negative", "positive"]) == []
    # balanced answers but no skill: macro F1 at the majority-class level
    chance = {"confusion_matrix": [[30, 30, 30], [30, 30, 30], [40, 40, 40]], "f1_macro": 0.33}
    assert "at chance" in collapse_warnings(chance, ["a", "b", "c"])[0]


def test_a_fit_that_learnt_nothing_warns_in_metrics_report_and_card(tmp_path, tiny_model_dir, sentiment_csv):
    # a loss that weighs one class a million times the other: the model learns to answer only it
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2, loss={"class_weights": [1.0, 1e-6]})
    recipe["report"] = True
    run = pretune.fit(recipe, tmp_path / "stuck", quiet=True)
    warnings = run.metrics["warnings"]
    assert warnings and "has not learnt" in warnings[0]
    assert "Warnings" in (run.path / "report.html").read_text()
    assert "**Warning:**" in (run.path / "model" / "README.md").read_text()


def _noisy_frame(n: int, flip: list[int]):
    from tests.conftest import sentiment_frame

    frame = sentiment_frame(n)
    frame.loc[flip, "label"] = frame.loc[flip, "label"].map({"pos": "neg", "neg": "pos"})
    return frame


def test_cross_validated_label_issues_find_flipped_training_labels(tmp_path, tiny_model_dir):
    flipped = [3, 10, 17, 40, 55, 81, 120, 150, 201, 260]
    train = _noisy_frame(300, flipped)
    path = tmp_path / "noisy.csv"
    train.to_csv(path, index=False)
    recipe = tiny_recipe(tiny_model_dir, path, epochs=6, label_issues={"source": "cross-validation", "folds": 2})
    recipe["data"] |= {"validation_fraction": 0.1, "test_fraction": 0.1}
    run = pretune.fit(recipe, tmp_path / "run", quiet=True)
    found = json.loads((run.path / "label_issues.json").read_text())
    assert found["split"] == "train" and found["folds"] == 2 and found["rows_checked"] > 100
    flagged = {r["text"] for r in found["rows"]}
    truly = set(train.loc[flipped, "text"])
    hits = len(flagged & truly)
    assert hits >= 3, (hits, len(flagged))  # well above what a random pick of the same size finds
    assert hits / max(len(flagged), 1) > 0.3
    assert all(r["given"] != r["predicted"] or r["given_probability"] < 0.5 for r in found["rows"])


def test_validation_label_issues_and_report(tmp_path, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, label_issues={"source": "validation"})
    recipe["report"] = True
    run = pretune.fit(recipe, tmp_path / "run", quiet=True)
    found = json.loads((run.path / "label_issues.json").read_text())
    assert found["split"] == "validation" and found["folds"] is None
    assert found["found"] == len(found["rows"]) or len(found["rows"]) == 200
    assert "Label issues" in (run.path / "report.html").read_text()
