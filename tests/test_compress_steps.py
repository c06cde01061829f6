"""prune and distill on the tiny random model: shapes, sparsity, the loss formula, the teacher pass."""

import json
import re

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertModel

import pretune
from pretune import PretuneError
from pretune.compress.distill.loss import DistillationCallback, distillation_loss
from pretune.compress.prune.magnitude import prunable, sparsity
from pretune.models.load import load_saved_model
from pretune.recipe import DataConfig
from pretune.tasks import create_task
from tests.conftest import tiny_recipe


def load_saved_classifier(model_dir):
    return load_saved_model(model_dir, create_task(DataConfig()))


FAST = ["compress.measure.isolate=false", "compress.measure.samples=16", "compress.measure.repeats=1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    out = tmp_path_factory.mktemp("compress-steps") / "run"
    return pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), out, quiet=True)


def test_distillation_loss_is_the_formula_on_hand_computed_logits():
    student = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    teacher = torch.tensor([[2.0, 1.0], [1.0, -1.0]])
    t, a, task = 2.0, 0.25, torch.tensor(0.7)

    def softmax(x):
        e = np.exp(x - x.max())
        return e / e.sum()

    kl = np.mean([np.sum(softmax(tr / t) * (np.log(softmax(tr / t)) - np.log(softmax(sr / t))))
                  for sr, tr in zip(student.numpy(), teacher.numpy(), strict=True)])
    expected = (1 - a) * 0.7 + a * t * t * kl
    assert float(distillation_loss(task, student, teacher, a, t)) == pytest.approx(expected, rel=1e-6)
    # alpha 0: the task loss alone; identical logits: no KL term
    assert float(distillation_loss(task, student, teacher, 0.0, t)) == pytest.approx(0.7)
    assert float(distillation_loss(task, teacher, teacher, 1.0, t)) == pytest.approx(0.0, abs=1e-7)


def test_distillation_callback_reads_cached_logits_by_batch_indices():
    cached = torch.tensor([[0.0, 0.0], [3.0, -3.0], [-3.0, 3.0]])
    callback = DistillationCallback(cached, alpha=1.0, temperature=1.0)

    class State:
        batch_indices = torch.tensor([2, 1])
        logits = torch.tensor([[-3.0, 3.0], [3.0, -3.0]])
        loss = torch.tensor(5.0)

    state = State()
    callback.on_outputs(state)
    assert float(state.loss) == pytest.approx(0.0, abs=1e-6)  # rows 2 and 1 match exactly


def test_structured_pruning_removes_heads_and_neurons_from_config_and_weights(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "prune", out=tmp_path / "c", overrides=[
        *FAST, "compress.prune.heads=0.5", "compress.prune.neurons=0.25", "compress.prune.recovery_epochs=0"])
    variant = result.variants[0]
    config = json.loads((variant.model_path / "config.json").read_text())
    assert config["pretune_pruning"] == {"heads": [1, 1], "intermediate": [48, 48]}
    assert config["intermediate_size"] == 48
    weights = load_file(str(variant.model_path / "model.safetensors"))
    layer = "bert.encoder.layer.1."
    assert weights[layer + "attention.self.query.weight"].shape == (16, 32)  # 1 head of 16
    assert weights[layer + "attention.output.dense.weight"].shape == (32, 16)
    assert weights[layer + "intermediate.dense.weight"].shape == (48, 32)
    assert weights[layer + "output.dense.weight"].shape == (32, 48)
    info = variant.metrics["compress"]
    assert info["heads"] == {"before": 4, "after": 2} and info["neurons"] == {"before": 128, "after": 96}
    model = load_saved_classifier(variant.model_path)  # rebuilt at the pruned shapes
    tok = AutoTokenizer.from_pretrained(variant.model_path)
    assert model(**tok(["a fine film"], return_tensors="pt")).logits.shape == (1, 2)
    assert result.rows[1]["parameters"] < result.rows[0]["parameters"]


def test_ffn_only_pruning_reloads_with_plain_from_pretrained(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "prune", out=tmp_path / "c", overrides=[
        *FAST, "compress.prune.heads=0", "compress.prune.neurons=0.5", "compress.prune.recovery_epochs=0"])
    model_dir = result.variants[0].model_path
    plain = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ours = load_saved_classifier(model_dir).eval()
    batch = AutoTokenizer.from_pretrained(model_dir)(["a warm film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(plain(**batch).logits, ours(**batch).logits)
    assert plain.config.intermediate_size == 32


def test_magnitude_pruning_reaches_its_sparsity_and_stays_dense_shaped(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "prune", out=tmp_path / "c", overrides=[
        *FAST, "compress.prune.method=magnitude", "compress.prune.sparsity=0.6", "compress.prune.rounds=2",
        "compress.prune.recovery_epochs=0"])
    model = load_saved_classifier(result.variants[0].model_path)
    assert sparsity(model) == pytest.approx(0.6, abs=0.01)
    assert all(w.shape[0] in (32, 64) for w in prunable(model).values())
    row = result.rows[1]
    assert row["nonzero_parameters"] < row["parameters"] == result.rows[0]["parameters"]
    assert "no CPU speed-up" in row["note"]


def test_hidden_matching_refuses_a_wider_student(tiny_run, tmp_path, minilm_dir):
    wide = tmp_path / "wide"
    BertModel(BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(wide)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(wide)
    with pytest.raises(PretuneError, match="as wide as the teacher"):
        pretune.compress(tiny_run, "distill", out=tmp_path / "c",
                         overrides=[f"compress.distill.student={wide}", "compress.distill.hidden_weight=1"])
    with pytest.raises(PretuneError, match="num_layers is 3 but the teacher has 2"):
        pretune.compress(tiny_run, "distill", out=tmp_path / "d", overrides=["compress.distill.num_layers=3"])
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_distill_runs_the_teacher_once_per_example_and_trains_through_fit(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "distill", out=tmp_path / "c", overrides=[
        *FAST, "compress.distill.num_layers=1", "compress.distill.epochs=3", "compress.distill.hidden_weight=0.5"])
    student = result.variants[0]
    info = student.metrics["compress"]
    assert info["teacher_forward_rows"] == info["train_rows"] == student.metrics["train"]["samples"]
    assert student.metrics["train"]["epochs"] == 3  # three epochs, one teacher pass
    assert json.loads((student.model_path / "config.json").read_text())["num_hidden_layers"] == 1
    assert student.metrics["test"]["accuracy"] >= 0.7
    assert student.recipe.model.surgery.num_layers == 1 and student.recipe.model.source == str(tiny_run.model_path)


def test_structured_pruning_recovers_through_fit_and_keeps_its_shapes(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "prune", out=tmp_path / "c", overrides=[
        *FAST, "compress.prune.heads=0.5", "compress.prune.neurons=0.5", "compress.prune.recovery_epochs=1"])
    variant = result.variants[0]
    assert variant.metrics["train"]["epochs"] == 1 and variant.metrics["compress"]["recovery_epochs"] == 1
    config = json.loads((variant.model_path / "config.json").read_text())
    assert config["pretune_pruning"] == {"heads": [1, 1], "intermediate": [32, 32]}
    assert variant.metrics["test"]["accuracy"] >= 0.7


def test_magnitude_zeros_stay_zero_through_recovery(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "prune", out=tmp_path / "c", overrides=[
        *FAST, "compress.prune.method=magnitude", "compress.prune.sparsity=0.5", "compress.prune.recovery_epochs=1"])
    assert sparsity(load_saved_classifier(result.variants[0].model_path)) == pytest.approx(0.5, abs=0.01)


STATIC_FAST = ["compress.static.tokens=seen", "compress.static.dimensions=16", "compress.static.epochs=20"]


def test_static_student_learns_from_soft_labels_and_is_a_run_like_any_other(tiny_run, tmp_path, monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("model2vec asked the hub")

    monkeypatch.setattr("model2vec.distill.distillation.model_info", no_hub)
    unlabeled = tmp_path / "more.txt"
    unlabeled.write_text("a superb and witty film\n\nthe plot was dull and tedious\n")
    result = pretune.compress(tiny_run, "static", out=tmp_path / "c", max_drop=100.0, overrides=[
        *FAST, *STATIC_FAST, f"compress.static.unlabeled={unlabeled}", "compress.static.max_length=48"])
    student = result.variants[0]
    # It reads texts further than its teacher (max_length 32), in training and wherever it is loaded.
    assert (student.predictor().max_length, tiny_run.predictor().max_length) == (48, 32)
    info = student.metrics["compress"]
    assert info["unlabeled_rows"] == 2 and info["teacher_forward_rows"] == info["train_rows"] + 2
    assert info["dimensions"] == 16 and info["head"]["train_agreement_with_teacher"] >= 0.8
    files = {p.name for p in student.model_path.iterdir()}
    assert {"static.safetensors", "static.json", "config.json", "tokenizer.json"} <= files
    assert not files & {"model.safetensors", "pytorch_model.bin"}  # no from_pretrained into random weights
    assert student.metrics["test"]["accuracy"] >= 0.7
    row = result.rows[1]
    assert row["backend"] == "static" and row["size_ratio"] < 1 and row["parameters"] < result.rows[0]["parameters"]
    # predict and eval go through the same runner protocol: numpy pooling, then the head
    test = student.predictor().read(student.recipe.data.source).texts[-40:]
    predicted = student.predict(test)
    teacher = tiny_run.predict(test)
    assert np.mean([s["label"] == t["label"] for s, t in zip(predicted, teacher, strict=True)]) >= 0.8
    assert student.evaluate()["accuracy"] == pytest.approx(student.metrics["test"]["accuracy"])
    # serve, the model card and the pipeline's release load it the same way
    from pretune.pipeline.release import loader_of
    from pretune.serve.model import ServedModel

    served = ServedModel(student)
    assert served.metadata()["parameters"]["backend"] == "numpy"
    assert [p["label"] for p in served.predict(test[:5])] == [p["label"] for p in predicted[:5]]
    assert loader_of(student.model_path) == "pretune"
    card = (student.model_path / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", card, re.S)
    assert len(blocks) == 1 and "load_run" in blocks[0]  # no from_pretrained snippet: it is no transformer


def test_static_is_refused_in_one_line_for_a_task_it_cannot_take(tmp_path):
    from pretune.compress.static import check_task

    with pytest.raises(PretuneError, match="takes text classification and multi-label runs, not regression"):
        check_task(create_task(DataConfig(task="regression")))
    with pytest.raises(PretuneError, match="not token-classification"):
        check_task(create_task(DataConfig(task="token-classification")))


def test_static_head_fits_soft_multi_label_targets_and_folds_its_scaling():
    from pretune.compress.static import train_head
    from pretune.recipe import StaticConfig

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32) * 5 + 3  # far from standardised
    teacher = np.stack([x[:, 0] - 3, 3 - x[:, 1]], axis=1) * 2  # two labels, each from one feature
    weight, bias, notes = train_head(x, teacher, True, StaticConfig(epochs=15, lr=0.1), seed=0)
    agree = ((x @ weight.T + bias > 0) == (teacher > 0)).mean()
    assert agree >= 0.95 and notes["head"]["train_agreement_with_teacher"] == pytest.approx(agree, abs=0.02)
