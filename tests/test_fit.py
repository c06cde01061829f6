"""fit / resume / evaluate / predict on the tiny random model: mechanics, determinism, files."""

import json
import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import pretune
from pretune import PretuneError
from pretune.train.callbacks import Callback, StopTraining
from tests.conftest import close, fit_killed_at, timeless, tiny_recipe


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), out, quiet=True)


def test_run_directory_has_every_promised_file(tiny_run):
    names = {p.name for p in tiny_run.path.iterdir()}
    assert {"recipe.yaml", "metrics.jsonl", "metrics.json", "model", "plots"} <= names
    assert "checkpoints" not in names  # train.keep_checkpoints_after_fit: 0 by default
    assert {p.name for p in (tiny_run.path / "plots").iterdir()} == {"learning_curves.png", "lr_schedule.png"}
    assert (tiny_run.path / "plots" / "lr_schedule.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tiny_run.path.rglob("*.tmp"))  # no leftovers of atomic writes
    assert pretune.Recipe.load(tiny_run.path / "recipe.yaml") == pretune.Recipe.from_dict(
        tiny_recipe(tiny_run.recipe.model.source, tiny_run.recipe.data.source))


def test_metrics_have_every_split_and_key(tiny_run):
    m = tiny_run.metrics
    for split in ("validation", "test"):
        for key in ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_micro",
                    "f1_weighted", "loss", "per_class", "confusion_matrix"):
            assert key in m[split], (split, key)
    assert m["train"]["train_seconds"] > 0 and m["train"]["train_samples_per_second"] > 0
    history = tiny_run.history
    assert [r["split"] for r in history].count("validation") == 3  # one per epoch
    assert all("lr" in r for r in history if r["split"] == "train")


def test_model_loads_with_transformers_and_keeps_label_names(tiny_run):
    model_dir = tiny_run.model_path
    assert (model_dir / "model.safetensors").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model(**tok(["good film"], return_tensors="pt")).logits.shape == (1, 2)


def test_tiny_model_learns_the_synthetic_task(tiny_run):
    assert tiny_run.metrics["test"]["accuracy"] >= 0.8


def test_predict_and_evaluate(tiny_run, sentiment_csv):
    out = tiny_run.predict(["superb brilliant film", "awful dull plot"])
    assert [o["label"] for o in out] == ["pos", "neg"]
    assert out[0]["scores"]["pos"] == pytest.approx(out[0]["score"])
    m = pretune.evaluate(tiny_run.path, sentiment_csv)
    assert m["samples"] == 240 and m["accuracy"] >= 0.8


def test_same_seed_same_metrics(tmp_path, tiny_model_dir, sentiment_csv, tiny_run):
    again = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), tmp_path / "again", quiet=True)
    assert again.metrics["test"] == tiny_run.metrics["test"]
    assert again.history[-1] == tiny_run.history[-1]


def test_refuses_to_overwrite_a_run(tiny_run, tiny_model_dir, sentiment_csv):
    with pytest.raises(PretuneError, match="already holds a run"):
        pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), tiny_run.path, quiet=True)


def test_kill_and_resume_ends_like_an_uninterrupted_run(tmp_path, tiny_model_dir, sentiment_csv, tiny_run):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, checkpoint_every_steps=4)
    out = tmp_path / "killed"
    fit_killed_at(recipe, out, step=6)  # mid-epoch, after the step-4 checkpoint
    assert not (out / "metrics.json").exists()
    resumed = pretune.fit(resume=out, quiet=True)
    uninterrupted = pretune.fit(recipe, tmp_path / "whole", quiet=True)
    assert close(resumed.metrics["test"], uninterrupted.metrics["test"])
    assert close(resumed.metrics["validation"], uninterrupted.metrics["validation"])
    assert close(timeless(resumed), timeless(uninterrupted))


def test_resume_needs_a_checkpoint(tmp_path):
    (tmp_path / "recipe.yaml").write_text("seed: 1\n")
    (tmp_path / "metrics.json").write_text('{"status": "completed"}')
    with pytest.raises(PretuneError, match="has finished .* nothing to resume"):
        pretune.fit(resume=tmp_path, quiet=True)
    with pytest.raises(PretuneError, match="not a pretune run directory"):
        pretune.fit(resume=tmp_path / "nothing", quiet=True)


def test_callbacks_see_events_in_order_and_can_stop(tmp_path, tiny_model_dir, sentiment_csv):
    seen = []

    class Recorder(Callback):
        def on_fit_start(self, s): seen.append("fit_start")
        def on_epoch_start(self, s): seen.append("epoch_start")
        def on_evaluate(self, s): seen.append("evaluate")
        def on_epoch_end(self, s): seen.append("epoch_end")
        def on_fit_end(self, s): seen.append("fit_end")

        def on_batch_end(self, s):
            if s.step == 3:
                raise StopTraining("enough")

    run = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), tmp_path / "r",
                      callbacks=[Recorder()], quiet=True)
    assert seen == ["fit_start", "epoch_start", "fit_end"]
    assert run.metrics["train"]["steps"] == 3 and run.metrics["train"]["stop_reason"] == "enough"


def test_early_stopping_and_max_steps(tmp_path, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=30, eval_every_steps=2,
                         early_stopping={"patience": 1, "metric": "accuracy"},
                         optimizer={"lr": 1e-9})  # nothing improves: stop at the 2nd evaluation
    run = pretune.fit(recipe, tmp_path / "es", quiet=True)
    assert run.metrics["train"]["steps"] == 4
    assert "early stopping" in run.metrics["train"]["stop_reason"]
    capped = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, max_steps=5), tmp_path / "ms", quiet=True)
    assert capped.metrics["train"]["steps"] == 5


class FlipClassifier(Callback):
    """Negates the classifier before the last optimizer step (its lr is near zero by then):
    the final evaluation goes bad."""

    def on_batch_end(self, state):
        if state.step == state.total_steps - 1:
            with torch.no_grad():
                for p in state.model.classifier.parameters():
                    p.neg_()


def test_keep_best_ends_with_the_best_validation_weights(tmp_path, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, eval_every_steps=4, keep_best="accuracy")
    run = pretune.fit(recipe, tmp_path / "best", callbacks=[FlipClassifier()], quiet=True)
    evals = [r for r in run.history if r["split"] == "validation"]
    assert len({r["step"] for r in evals}) == len(evals) == 9  # every 4 of 36 steps; epoch ends not twice
    best = max(evals, key=lambda r: r["accuracy"])  # max keeps the first of equals, as keep_best does
    assert evals[-1]["accuracy"] < 0.5  # the flipped last weights
    train = run.metrics["train"]
    assert train["best_step"] == best["step"] < train["steps"] and train["best_metric"] == "accuracy"
    assert run.metrics["validation"]["accuracy"] == best["accuracy"] > 0.8
    assert run.metrics["test"]["accuracy"] > 0.8  # the test split and the saved model see the best weights
    assert pretune.evaluate(run.path, sentiment_csv)["accuracy"] > 0.8
    last = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, eval_every_steps=4), tmp_path / "last",
                       callbacks=[FlipClassifier()], quiet=True)
    assert last.metrics["test"]["accuracy"] < 0.5 and "best_step" not in last.metrics["train"]


def test_keep_best_and_step_evaluations_survive_kill_and_resume(tmp_path, tiny_model_dir, sentiment_csv):
    # An evaluation at each checkpoint step: the checkpoint must already hold it.
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, checkpoint_every_steps=4, eval_every_steps=4,
                         keep_best="f1_macro", early_stopping={"patience": 20, "metric": "loss"})
    fit_killed_at(recipe, tmp_path / "killed", step=10)
    resumed = pretune.fit(resume=tmp_path / "killed", quiet=True)
    whole = pretune.fit(recipe, tmp_path / "whole", quiet=True)
    assert resumed.metrics["train"]["best_step"] == whole.metrics["train"]["best_step"]
    for split in ("validation", "test"):
        assert close(resumed.metrics[split], whole.metrics[split])
    assert close(timeless(resumed), timeless(whole))


def test_resume_from_a_checkpoint_at_the_last_step_still_evaluates(tmp_path, tiny_model_dir, sentiment_csv):
    # Killed in the closing evaluation, after the checkpoint of the last step (36) was written.
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, checkpoint_every_steps=4)
    fit_killed_at(recipe, tmp_path / "killed", step=36, event="on_evaluate")
    assert (tmp_path / "killed" / "checkpoints" / "step-0000036").is_dir()
    resumed = pretune.fit(resume=tmp_path / "killed", quiet=True)
    whole = pretune.fit(recipe, tmp_path / "whole", quiet=True)
    assert close(resumed.history[-1], whole.history[-1]) and resumed.history[-1]["step"] == 36
    assert close(resumed.metrics["validation"], whole.metrics["validation"])


def test_keep_best_sees_the_evaluation_that_stops_training(tmp_path, tiny_model_dir, sentiment_csv):
    class StopAtTwelve(Callback):
        def on_evaluate(self, state):
            if state.step == 12:
                raise StopTraining("stop at 12")

    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, eval_every_steps=4, keep_best="loss")
    run = pretune.fit(recipe, tmp_path / "r", callbacks=[StopAtTwelve()], quiet=True)
    evals = [r for r in run.history if r["split"] == "validation"]
    assert [r["step"] for r in evals] == [4, 8, 12]
    # Step 12 has the lowest validation loss of the three: the stopping evaluation is the best.
    assert run.metrics["train"]["best_step"] == min(evals, key=lambda r: r["loss"])["step"] == 12
    assert [p.name for p in (run.path / "checkpoints" / "best").iterdir()] == ["step-0000012.safetensors"]


def test_keep_best_metric_must_exist(tmp_path, tiny_model_dir, sentiment_csv):
    with pytest.raises(PretuneError, match="keep_best 'auc' is not a sequence-classification metric; known: loss"):
        pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, keep_best="auc"), tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()


def test_gradient_accumulation_counts_optimizer_steps(tmp_path, tiny_model_dir, sentiment_csv):
    # 192 training rows / 16 per batch = 12 micro-batches; 5 per step -> 3 steps an epoch.
    run = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1, gradient_accumulation_steps=5),
                      tmp_path / "acc", quiet=True)
    assert run.metrics["train"]["steps"] == 3


def test_gradient_accumulation_matches_a_big_batch(tiny_model_dir, sentiment_csv):
    """Two micro-batches of 8, accumulated, give the update of one batch of 16 (no dropout)."""
    from pretune.api import as_recipe
    from pretune.data import encode, prepare
    from pretune.models import load_tokenizer
    from pretune.tasks import create_task
    from tests.conftest import load_classifier

    recipe = as_recipe(tiny_recipe(tiny_model_dir, sentiment_csv), ["model.dropout=0", "model.attention_dropout=0"])
    data = prepare(recipe.data, create_task(recipe.data))
    tok = load_tokenizer(recipe.model.source)
    split = encode(data.splits["train"], tok, 32)
    from pretune.data import collate

    grads = []
    for chunks in ([list(range(16))], [list(range(8)), list(range(8, 16))]):
        torch.manual_seed(0)
        model = load_classifier(recipe.model, data.label_names)
        for idx in chunks:
            batch = collate(split, idx, tok.pad_token_id)
            labels = batch.pop("labels")
            # equal-length padding matters: pad every chunk to the same width as the whole
            loss = torch.nn.functional.cross_entropy(model(**batch).logits, labels) / len(chunks)
            loss.backward()
        grads.append(model.classifier.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_regression_task(tmp_path, tiny_model_dir):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = rng.integers(1, 9, size=120)
    frame = pd.DataFrame({"text": [" ".join(["great"] * k) for k in n], "label": n / 8})
    frame.to_csv(tmp_path / "reg.csv", index=False)
    recipe = tiny_recipe(tiny_model_dir, tmp_path / "reg.csv", loss={"name": "mse"},
                         early_stopping={"metric": "mse"})
    recipe["data"]["task"] = "regression"
    run = pretune.fit(recipe, tmp_path / "reg", quiet=True)
    assert {"mse", "mae", "r2"} <= set(run.metrics["test"])
    assert "value" in run.predict(["great great"])[0]


def test_metrics_json_is_valid_json_after_fit(tiny_run):
    json.loads((tiny_run.path / "metrics.json").read_text())


def test_a_schedule_in_epochs_counts_the_real_steps_per_epoch_under_accumulation(tmp_path, tiny_model_dir,
                                                                                  sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=3, gradient_accumulation_steps=2, log_every_steps=1,
                         schedule={"name": "step", "step_size_epochs": 1, "gamma": 0.5, "warmup_ratio": 0})
    run = pretune.fit(recipe, tmp_path / "r", quiet=True)
    train = run.metrics["train"]
    per_epoch = train["total_steps"] // 3
    assert per_epoch == math.ceil(math.ceil(train["samples"] / 16) / 2)  # batches of 16, two per step
    rates = {r["step"]: r["lr"] for r in run.history if r["split"] == "train"}
    assert len(rates) == train["total_steps"]
    for step, lr in rates.items():  # the rate after each step: halved at every epoch's end
        assert lr == pytest.approx(5e-3 * 0.5 ** (step // per_epoch)), step


def test_a_fit_scores_the_test_split_once_and_its_predictions_come_from_that_pass(tmp_path, tiny_model_dir,
                                                                                 sentiment_csv, monkeypatch):
    import importlib

    from pretune.predictor import Run

    prepare_module = importlib.import_module("pretune.data.prepare")  # pretune.data.prepare is also a function
    fit_module = importlib.import_module("pretune.train.fit")
    reads, passes = [], []
    read_source, run_split = prepare_module.read_source, fit_module.run_split
    monkeypatch.setattr(prepare_module, "read_source", lambda *a, **k: reads.append(a[0]) or read_source(*a, **k))
    monkeypatch.setattr(fit_module, "run_split", lambda *a, **k: passes.append(len(a[1])) or run_split(*a, **k))
    monkeypatch.setattr(Run, "predictor", lambda self: pytest.fail("the saved model was reloaded"))
    run = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1), tmp_path / "r", quiet=True)
    rows = [json.loads(line) for line in (run.path / "predictions" / "test.jsonl").read_text().splitlines()]
    test = run.metrics["test"]
    assert len(reads) == 1 and passes == [test["samples"]] == [len(rows)]  # one read, one test pass
    assert sum(r["true"] == r["pred"] for r in rows) / len(rows) == pytest.approx(test["accuracy"])
