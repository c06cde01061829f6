"""The task seam: every registered task through fit -> save -> reload -> eval -> predict on the
tiny model, plus the pieces each task owns (labels, sampling, thresholds, plain modules)."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pretune
from pretune import PretuneError
from pretune.data.encode import sampling_weights, train_batches
from pretune.tasks import tasks
from tests.conftest import (
    NEGATIVE,
    PEOPLE,
    PLACES,
    POSITIVE,
    TAG_FILLER,
    close,
    fit_in_child,
    fit_killed_at,
    sentiment_frame,
    tagged_frame,
    task_recipe,
    timeless,
    tiny_recipe,
)


def labelled_lists(n: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels, words = [], rng.sample(TAG_FILLER, 3)
        if rng.random() < 0.5:
            labels.append("person"), words.append(rng.choice(PEOPLE))
        if rng.random() < 0.4:
            labels.append("place"), words.append(rng.choice(PLACES))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "labels": labels})
    return pd.DataFrame(rows)


def scored_frame(n: int) -> pd.DataFrame:
    frame = sentiment_frame(n)
    frame["label"] = [2.0 * sum(w in POSITIVE for w in t.split()) - sum(w in NEGATIVE for w in t.split())
                      for t in frame["text"]]
    return frame


FRAMES = {
    "sequence-classification": (lambda: sentiment_frame(240), ["superb brilliant film", "awful dull plot"]),
    "regression": (lambda: scored_frame(240), ["superb brilliant film"]),
    "multi-label": (lambda: labelled_lists(300), ["alice saw the tokyo"]),
    "token-classification": (lambda: tagged_frame(300), ["bob met alice in paris city today"]),
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, tiny_model_dir):
    """fitted(task) -> (task, frame, run): one fit per task for the whole module."""
    done = {}

    def get(task):
        if task not in done:
            frame = FRAMES[task][0]()
            out = tmp_path_factory.mktemp("tasks") / task
            run = pretune.fit(task_recipe(tiny_model_dir, task, epochs=8, optimizer={"lr": 4e-3}), out,
                              data=frame, quiet=True)
            done[task] = (task, frame, run)
        return done[task]

    return get


@pytest.fixture(params=sorted(FRAMES))
def task_run(request, fitted):
    return fitted(request.param)


def test_every_task_is_in_the_contract():
    # Image tasks have their own contract on images (tests/test_vision.py), text pairs theirs through
    # every verb (tests/test_task_pair.py); a task a test registers from its own module is not pretune's.
    built_in = [t for t in tasks.available() if tasks.get(t).__module__.startswith("pretune.tasks.")]
    assert sorted([*FRAMES, "text-pair-classification"]) == [t for t in built_in if tasks.get(t).inputs == "text"]


def test_task_contract_fit_save_reload_eval_predict(task_run, tmp_path):
    task, frame, run = task_run
    m = run.metrics
    assert m["status"] == "completed" and m["task"] == task
    headline = tasks.get(task).headline
    assert headline in m["validation"] and headline in m["test"]
    # Reload from disk in a fresh Run: the same test figures through the same evaluation path.
    path = tmp_path / "table.jsonl"
    test_rows = frame.iloc[: 40]
    test_rows.to_json(path, orient="records", lines=True)
    again = pretune.load_run(run.path)
    metrics = again.evaluate(path)
    assert metrics["samples"] == 40 and headline in metrics
    assert pretune.load_run(run.path).evaluate(path) == metrics  # a fresh reload, the same figures
    out = again.predict(FRAMES[task][1])
    assert len(out) == len(FRAMES[task][1])


def test_tasks_really_learn(task_run):
    task, _, run = task_run
    test = run.metrics["test"]
    floor = {"sequence-classification": ("accuracy", 0.8), "regression": ("spearman", 0.6),
             "multi-label": ("f1_micro", 0.65), "token-classification": ("f1", 0.7)}[task]
    assert test[floor[0]] >= floor[1], test


def test_token_model_is_a_plain_token_classifier_and_predicts_spans(fitted):
    _, _, run = fitted("token-classification")
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(run.model_path)
    assert set(model.config.id2label.values()) == {"O", "B-PER", "B-LOC", "I-LOC"}
    text = "bob met alice in paris city today"
    entities = run.predict([text])[0]["entities"]
    found = {(e["text"], e["type"]) for e in entities}
    assert ("paris city", "LOC") in found and ("alice", "PER") in found, entities
    for e in entities:
        assert text[e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
    assert set(run.metrics["test"]["per_type"]) == {"PER", "LOC"}


def test_multilabel_thresholds_are_tuned_saved_and_used(fitted):
    _, _, run = fitted("multi-label")
    config = json.loads((run.model_path / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert len(config["pretune_thresholds"]) == 2
    assert set(run.metrics["calibration"]["thresholds"]) == {"person", "place"}
    out = run.predict(["alice saw the tokyo", "the a today"])
    assert set(out[0]["labels"]) == {"person", "place"}, out
    assert out[0]["scores"]["place"] > out[1]["scores"]["place"]


def test_fit_takes_a_plain_module_returning_a_tensor(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    class BagOfWords(nn.Module):
        def __init__(self, vocab: int):
            super().__init__()
            self.embed = nn.Embedding(vocab, 16)
            self.out = nn.Linear(16, 2)

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            mask = attention_mask.unsqueeze(-1).float()
            return self.out((self.embed(input_ids) * mask).sum(1) / mask.sum(1))

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = BagOfWords(tokenizer.vocab_size)
    recipe = task_recipe(tiny_model_dir, "sequence-classification", epochs=8, optimizer={"lr": 3e-2})
    run = pretune.fit(recipe, tmp_path / "bow", model=model, tokenizer=tokenizer,
                      data={"train": sentiment_frame(200), "validation": sentiment_frame(40, 1),
                            "test": sentiment_frame(40, 2)}, quiet=True)
    assert run.metrics["test"]["accuracy"] >= 0.9
    assert (run.path / "model" / "model.safetensors").is_file()
    with pytest.raises(PretuneError, match="model= takes a torch nn.Module"):
        pretune.fit(recipe, tmp_path / "bad", model="bert", data=sentiment_frame(50), quiet=True)


def test_balanced_sampling_evens_out_class_frequencies():
    classes = [[0]] * 900 + [[1]] * 100
    weights = sampling_weights(classes, "balanced")
    drawn = np.concatenate([np.concatenate(train_batches(np.ones(1000, int), 50, 3, e, False, weights=weights))
                            for e in range(5)])
    share = (drawn >= 900).mean()
    assert 0.45 < share < 0.55  # the rare class drawn about half the time, not 10%
    sqrt = sampling_weights(classes, "sqrt")
    assert sqrt[950] / sqrt[0] == pytest.approx(3.0)  # 1/sqrt(100) vs 1/sqrt(900)
    again = train_batches(np.ones(1000, int), 50, 3, 2, False, weights=weights)
    assert again == train_batches(np.ones(1000, int), 50, 3, 2, False, weights=weights)  # resume-exact
    multi = sampling_weights([[0, 1], [0], [0], [0]], "balanced")
    assert multi[0] > multi[1]  # a row counts by its rarest label


def test_sampling_needs_classes(tmp_path, tiny_model_dir):
    recipe = task_recipe(tiny_model_dir, "regression")
    recipe["data"]["sampling"] = "balanced"
    with pytest.raises(PretuneError, match="data.sampling 'balanced' needs classes"):
        pretune.fit(recipe, tmp_path / "r", data=scored_frame(60), quiet=True)


def test_kill_and_resume_is_exact_for_a_token_task(tmp_path, tiny_model_dir):
    path = tmp_path / "tags.jsonl"
    tagged_frame(120).to_json(path, orient="records", lines=True)
    recipe = tiny_recipe(tiny_model_dir, path, checkpoint_every_steps=4, epochs=2)
    recipe["data"]["task"] = "token-classification"
    recipe["data"]["sampling"] = "balanced"
    fit_killed_at(recipe, tmp_path / "killed", step=6)
    resumed = fit_in_child(tmp_path / "killed")
    whole = fit_in_child(tmp_path / "whole", recipe)
    assert close(resumed.metrics["test"], whole.metrics["test"])
    assert close(timeless(resumed), timeless(whole))


def test_max_length_beyond_the_model_is_capped_with_a_notice(tmp_path, tiny_model_dir):
    recipe = task_recipe(tiny_model_dir, "sequence-classification", epochs=1)
    recipe["data"]["max_length"] = 4096  # the tiny model has 128 positions
    run = pretune.fit(recipe, tmp_path / "long", data=sentiment_frame(80), quiet=True)
    assert run.metrics["notices"] == ["data.max_length 4096 is beyond the model's 128 positions; using 128"]
    assert len(run.predict([" ".join(["good"] * 300)])) == 1  # reloaded, it caps the same way


def test_bad_token_data_is_one_clear_error(tmp_path, tiny_model_dir):
    frame = tagged_frame(40)
    frame.at[3, "tags"] = frame.at[3, "tags"][:-1]
    with pytest.raises(PretuneError, match="row 3 has .* tokens but .* tags"):
        pretune.fit(task_recipe(tiny_model_dir, "token-classification"), tmp_path / "t", data=frame, quiet=True)
    empty = labelled_lists(40)
    empty["labels"] = [[] for _ in range(40)]
    with pytest.raises(PretuneError, match="no row has a label"):
        pretune.fit(task_recipe(tiny_model_dir, "multi-label"), tmp_path / "m", data=empty, quiet=True)


def test_the_loop_sees_outputs_and_a_callback_may_replace_the_loss(tmp_path, tiny_model_dir):
    seen = []

    class Zero:
        def on_outputs(self, state):
            seen.append((tuple(state.batch_indices.tolist()), tuple(state.logits.shape)))
            state.loss = state.loss * 0.0  # no gradient signal: the weights must not move

    recipe = task_recipe(tiny_model_dir, "sequence-classification", epochs=1, max_grad_norm=None,
                         optimizer={"lr": 1e-2, "weight_decay": 0.0})
    frame = sentiment_frame(64)
    run = pretune.fit(recipe, tmp_path / "z", data=frame, callbacks=[Zero()], quiet=True)
    rows = sorted(i for batch, _ in seen for i in batch)
    assert rows == list(range(run.metrics["train"]["samples"]))  # every training row, once
    assert all(shape[1] == 2 for _, shape in seen)
    # A zero loss gives zero gradients: AdamW without weight decay leaves the body as loaded.
    from safetensors.torch import load_file

    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(run.model_path / "model.safetensors")
    assert all(torch.equal(before[k], after[f"bert.{k}"]) for k in before if f"bert.{k}" in after)
    assert sum(f"bert.{k}" in after for k in before) > 10


def test_cancel_marks_the_run_and_saves_nothing(tmp_path, tiny_model_dir):
    from pretune.train.callbacks import CancelTraining

    ended = []

    class Pruner:
        def on_evaluate(self, state):
            raise CancelTraining(f"pruned at step {state.step}")

        def on_fit_end(self, state):
            ended.append(state.status)

    recipe = task_recipe(tiny_model_dir, "sequence-classification", epochs=3, eval_every_steps=2)
    run = pretune.fit(recipe, tmp_path / "c", data=sentiment_frame(80), callbacks=[Pruner()], quiet=True)
    assert run.status == "cancelled" and ended == ["cancelled"]
    assert run.metrics["train"]["stop_reason"] == "pruned at step 2" and "test" not in run.metrics
    assert not (run.path / "model").exists() and not (run.path / "plots").exists()


def test_lean_mode_writes_only_the_records(tmp_path, tiny_model_dir):
    recipe = task_recipe(tiny_model_dir, "sequence-classification", epochs=1, checkpoint_every_steps=1)
    run = pretune.fit(recipe, tmp_path / "lean", data=sentiment_frame(80), lean=True, quiet=True)
    assert {p.name for p in run.path.iterdir()} == {"recipe.yaml", "metrics.json", "metrics.jsonl"}
    assert "test" not in run.metrics and run.metrics["status"] == "completed"


def test_fit_end_runs_even_when_a_step_raises(tmp_path, tiny_model_dir):
    ended = []

    class Boom:
        def on_batch_end(self, state):
            if state.step == 2:
                raise RuntimeError("disk on fire")

        def on_fit_end(self, state):
            ended.append((state.status, state.step))

    with pytest.raises(RuntimeError, match="disk on fire"):
        pretune.fit(task_recipe(tiny_model_dir, "sequence-classification", epochs=1, log_every_steps=1),
                    tmp_path / "b", data=sentiment_frame(80), callbacks=[Boom()], quiet=True)
    assert ended == [("failed", 2)]
    history = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert history[-1]["step"] == 2  # the last record reached the file


def test_strategies_work_on_a_token_task(tmp_path, tiny_model_dir):
    """LoRA (peft's token-classification task type keeps the head trainable) and llrd."""
    from transformers import AutoModelForTokenClassification

    for name in ("lora", "llrd"):
        recipe = task_recipe(tiny_model_dir, "token-classification", epochs=1)
        recipe["strategy"] = {"name": name}
        run = pretune.fit(recipe, tmp_path / name, data=tagged_frame(60), quiet=True)
        assert run.metrics["status"] == "completed"
        model = AutoModelForTokenClassification.from_pretrained(run.model_path)
        assert model.classifier.out_features == 4
