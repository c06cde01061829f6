"""compress steps, measure and the pipeline on the tiny random model (mechanics, not speed)."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import pretune
from pretune import PretuneError, runs
from pretune.compress import choice, steps, tree
from pretune.compress.loaded import backend_of as measure_backend
from pretune.compress.loaded import load_runner
from pretune.compress.measure import count_parameters
from pretune.compress.quantize.gate import gated
from pretune.compress.quantize.text import node_groups
from pretune.models.onnx_runner import OnnxRunner
from pretune.models.quantized import load_quantized
from pretune.recipe import DataConfig
from pretune.tasks import create_task
from tests.conftest import tiny_recipe

TEXTS = ["superb brilliant film", "awful dull plot with a weak story", "the movie was quite lovely and warm"]
FAST = ["compress.measure.isolate=false", "compress.measure.samples=16", "compress.measure.repeats=1"]
# the tokens the training texts use: a few hundred forward passes of the encoder, not 30k
STATIC_FAST = ["compress.static.tokens=seen", "compress.static.dimensions=16", "compress.static.epochs=10"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    out = tmp_path_factory.mktemp("compress") / "run"
    return pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv), out, quiet=True)


def served(model_dir, batch) -> np.ndarray:
    """Logits of a saved variant through the runner `pretune predict` / `eval` use."""
    return np.asarray(torch.as_tensor(load_runner(model_dir, create_task(DataConfig()))(batch)))


def torch_logits(model_dir, texts):
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    batch = AutoTokenizer.from_pretrained(model_dir)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.numpy(), batch


def test_export_matches_torch_in_onnx_runtime(tiny_run, tmp_path):
    variant = pretune.export(tiny_run, tmp_path / "onnx")
    files = {p.name for p in variant.model_path.iterdir()}
    assert {"model.onnx", "config.json", "tokenizer.json"} <= files and "model.safetensors" not in files
    expected, batch = torch_logits(tiny_run.model_path, TEXTS)  # padded: the mask matters
    got = OnnxRunner(variant.model_path, threads=1)({**batch, "labels": torch.zeros(3)})
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert variant.metrics["compress"]["check"]["max_abs_diff"] < 1e-4
    assert variant.metrics["test"]["accuracy"] == pytest.approx(tiny_run.metrics["test"]["accuracy"])
    assert (variant.path / "recipe.yaml").read_text() == (tiny_run.path / "recipe.yaml").read_text()


def test_onnx_dynamic_int8_after_fusions(tiny_run, tmp_path):
    plain = pretune.compress(tiny_run, "quantize", out=tmp_path / "plain",
                             overrides=[*FAST, "compress.quantize.optimize=false"]).variants[0]
    assert "fusions" not in plain.metrics["compress"] and "fusion_choice" not in plain.metrics["compress"]
    variant = pretune.compress(tiny_run, "quantize", out=tmp_path / "c",
                               overrides=[*FAST, "compress.quantize.optimize=true"]).variants[0]
    info = variant.metrics["compress"]
    assert info["fusions"]["Attention"] == 2 and info["fusions"]["SkipLayerNormalization"] == 4
    import onnx

    graph = onnx.load(str(variant.model_path / "model.onnx")).graph
    assert any(n.op_type in ("QAttention", "MatMulInteger", "DynamicQuantizeMatMul") for n in graph.node)
    assert any(i.data_type == onnx.TensorProto.INT8 for i in graph.initializer)
    assert variant.metrics["test"]["accuracy"] >= tiny_run.metrics["test"]["accuracy"] - 0.1
    expected, batch = torch_logits(tiny_run.model_path, TEXTS)
    np.testing.assert_allclose(served(variant.model_path, batch), expected, atol=0.05)
    assert count_parameters(variant.model_path)["parameters"] == pytest.approx(
        count_parameters(tiny_run.model_path)["parameters"], rel=0.01)


def test_torch_dynamic_int8_saves_marker_and_reloads_quantized(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "quantize", out=tmp_path / "c",
                              overrides=[*FAST, "compress.quantize.backend=torch"])
    variant = result.variants[0]
    marker = json.loads((variant.model_path / "quantization.json").read_text())
    assert marker["backend"] == "torch" and marker["exclude"] == []
    model = load_quantized(variant.model_path, create_task(DataConfig()))
    linear = model.bert.encoder.layer[0].attention.self.query
    assert type(linear).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert linear.weight().dtype == torch.qint8
    assert result.rows[1]["backend"] == "torch-int8"
    expected, batch = torch_logits(tiny_run.model_path, TEXTS)
    np.testing.assert_allclose(served(variant.model_path, batch), expected, atol=0.05)


def test_trim_vocab_keeps_logits_on_in_vocabulary_text(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, "trim-vocab", out=tmp_path / "c",
                              overrides=[*FAST, "compress.trim_vocab.keep_characters=false"])
    variant = result.variants[0]
    vocab = variant.metrics["compress"]["vocabulary"]
    assert vocab["before"] == 30522 and vocab["after"] < 100
    trimmed = AutoModelForSequenceClassification.from_pretrained(variant.model_path).eval()
    assert trimmed.bert.embeddings.word_embeddings.weight.shape[0] == vocab["after"]
    texts = [*TEXTS, "good bad boring charming"]  # built from training words only
    expected, old_batch = torch_logits(tiny_run.model_path, texts)
    got, new_batch = torch_logits(variant.model_path, texts)
    assert not torch.equal(old_batch["input_ids"], new_batch["input_ids"])  # new ids, same tokens
    assert AutoTokenizer.from_pretrained(variant.model_path).convert_ids_to_tokens(new_batch["input_ids"][1]) == \
        AutoTokenizer.from_pretrained(tiny_run.model_path).convert_ids_to_tokens(old_batch["input_ids"][1])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert result.rows[1]["size_ratio"] < 0.2


def test_pipeline_chains_and_writes_table_plot_and_choice(tiny_run, tmp_path):
    result = pretune.compress(tiny_run, ["trim-vocab", "quantize"], out=tmp_path / "c", max_drop=5.0,
                              overrides=FAST)
    c = tmp_path / "c"
    assert [v.path for v in result.variants] == [c / "trim-vocab", c / "trim-vocab" / "quantize"]
    assert result.variants[1].metrics["compress"]["parent"] == str(result.variants[0].path)
    saved = json.loads((tmp_path / "c" / "compression.json").read_text())
    assert [r["name"] for r in saved["rows"]] == ["run", "trim-vocab", "trim-vocab/quantize"]
    assert saved["variants"] == [["trim-vocab", "quantize"]]
    assert runs.read_compression(c)["steps"] == ["trim-vocab", "quantize"]  # derived, not stored
    assert not {"steps", "chosen", "message", "chosen_on", "original_validation"} & saved.keys()
    for key in ("size_mb", "parameters", "nonzero_parameters", "latency_ms_p50", "latency_ms_p95", "throughput",
                "accuracy", "f1_macro", "speedup_batch", "size_ratio", "drop_points"):
        assert key in saved["rows"][2], key
    assert saved["choice"]["name"] in ("trim-vocab", "trim-vocab/quantize")
    assert saved["choice"]["name"] == result.chosen["name"] and saved["choice"]["reason"] == result.message
    assert (tmp_path / "c" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((tmp_path / "c").rglob("*.tmp"))


def test_budget_nobody_meets_is_said_and_table_still_written():
    rows = [{"name": n, "throughput": t, "validation_drop_points": d, "speedup_batch": t / 10, "size_ratio": 1.0}
            for n, t, d in (("run", 10, 0.0), ("a", 30, 3.0), ("b", 20, 2.0))]
    chosen, message = choice.choose(rows, 1.0)
    assert chosen is rows[0] and "no variant stays within 1.0" in message and "closest: b" in message
    assert "the original is the choice" in message
    assert choice.choose(rows, 2.5)[0]["name"] == "b" and choice.choose(rows, 3)[0]["name"] == "a"


def test_gate_keeps_the_most_sensitive_layers_fp32():
    sensitivity = {"layer.0": 0.01, "layer.1": 0.05, "head": 0.002}
    def score(kept_fp32):  # accuracy when every group but `kept_fp32` is int8
        return 0.9 - sum(v for g, v in sensitivity.items() if g not in kept_fp32)
    kept, figures = gated(list(sensitivity), score, 0.9, budget=2.0)
    assert kept == ["layer.1"] and figures["validation_accuracy_int8"] == pytest.approx(0.888)
    assert gated(list(sensitivity), score, 0.9, budget=10.0)[0] == []
    assert gated(list(sensitivity), score, 0.9, budget=None)[0] == []


def test_onnx_node_groups_follow_layers(tiny_run, tmp_path):
    variant = pretune.export(tiny_run, tmp_path / "onnx")
    groups = node_groups(variant.model_path / "model.onnx")
    assert {"layer.0", "layer.1", "head"} <= set(groups)
    assert all("layer.0" in n for n in groups["layer.0"])


def test_measure_in_a_fresh_process(tiny_run):
    row = pretune.measure(tiny_run, samples=8)
    assert row["backend"] == "torch-fp32" and row["peak_memory_mb"] > 0
    assert row["latency_ms_p95"] >= row["latency_ms_p50"] > 0 and row["throughput"] > 0
    assert row["accuracy"] == pytest.approx(tiny_run.metrics["test"]["accuracy"])
    assert row["parameters"] == row["nonzero_parameters"] + (row["parameters"] - row["nonzero_parameters"])


def test_pretune_compress_keeps_its_name_after_submodule_imports():
    import pretune.compress.tree  # noqa: F401

    assert callable(pretune.compress) and callable(pretune.measure)


@pytest.mark.parametrize("steps, overrides, message", [
    ("shrink", [], "unknown compression step 'shrink'"),
    ("quantize", ["compress.quantize.bits=4"], "unknown key 'compress.quantize.bits'"),
    ("quantize", ["compress.quantize.backend=tvm"], "compress.quantize.backend"),
    ("", [], "no compression steps"),
])
def test_bad_input_is_one_clear_error(tiny_run, tmp_path, steps, overrides, message):
    with pytest.raises(PretuneError, match=message.replace(".", r"\.")):
        pretune.compress(tiny_run, steps, out=tmp_path / "c", overrides=overrides)
    assert not (tmp_path / "c").exists()


def test_not_a_run_directory(tmp_path):
    with pytest.raises(PretuneError, match="not a pretune run directory"):
        pretune.compress(tmp_path, "quantize")


@pytest.mark.parametrize("step", steps.available("text"))
def test_every_text_step_gives_a_run_with_fits_layout(tiny_run, tmp_path, step):
    cfg = tree.resolve_config(tiny_run, [step], overrides=[
        *FAST, "compress.prune.recovery_epochs=0", "compress.distill.epochs=1", *STATIC_FAST])
    variant = tree.run_step(tiny_run, step, tmp_path / step, cfg)
    assert {"recipe.yaml", "metrics.json", "model"} <= {p.name for p in variant.path.iterdir()}
    assert variant.metrics["compress"]["step"] == step and 0 <= variant.metrics["test"]["accuracy"] <= 1
    assert (variant.model_path / "config.json").is_file() and (variant.model_path / "tokenizer.json").is_file()
    logits = served(variant.model_path, AutoTokenizer.from_pretrained(variant.model_path)(
        TEXTS, padding=True, return_tensors="pt"))
    assert logits.shape == (3, 2)
    assert not list(variant.path.rglob("*.tmp"))


def test_static_int8_is_calibrated_on_training_texts(tiny_run, tmp_path):
    cfg = tree.resolve_config(tiny_run, ["quantize"], overrides=[
        "compress.quantize.mode=static", "compress.quantize.calibration_samples=16"])
    variant = tree.run_step(tiny_run, "quantize", tmp_path / "static", cfg)
    import onnx

    ops = {n.op_type for n in onnx.load(str(variant.model_path / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # activations too, not only weights
    expected, batch = torch_logits(tiny_run.model_path, TEXTS)
    np.testing.assert_allclose(served(variant.model_path, batch), expected, atol=0.1)
    # Histogram calibrations stack every calibration batch's activations: texts of different
    # lengths and a short last batch (13 is not a multiple of 8) must still calibrate.
    for method in ("percentile", "entropy"):
        cfg = tree.resolve_config(tiny_run, ["quantize"], overrides=[
            "compress.quantize.mode=static", "compress.quantize.calibration_samples=13",
            f"compress.quantize.calibration={method}"])
        variant = tree.run_step(tiny_run, "quantize", tmp_path / method, cfg)
        assert variant.metrics["compress"]["settings"]["calibration"] == method
        np.testing.assert_allclose(served(variant.model_path, batch), expected, atol=0.1)


def test_cli_bad_input_is_one_line_and_exit_2(tiny_run, tmp_path):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pretune", *map(str, args)], capture_output=True, text=True)

    for args, message in (((tmp_path, "--steps", "quantize"), "not a pretune run directory"),
                          ((tiny_run.path, "--steps", "quantize,shrink"), "unknown compression step 'shrink'")):
        proc = cli("compress", *args, "--out", tmp_path / "c")
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    proc = cli("export", tiny_run.path, "--format", "tflite")
    assert proc.returncode == 2 and "unknown export format" in proc.stderr
    assert not (tmp_path / "c").exists()


def test_a_run_fitted_beyond_the_model_positions_compresses_with_the_capped_length(tmp_path, tiny_model_dir,
                                                                                   sentiment_csv):
    from pretune.compress.loaded import LoadedRun
    from pretune.report.cards import write_card

    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1)
    recipe["data"]["max_length"] = 4096  # the tiny model has 128 positions: fit caps with a notice
    run = pretune.fit(recipe, tmp_path / "long", quiet=True)
    assert LoadedRun(run).max_length == 128 and run.predictor().max_length == 128
    variant = pretune.compress(run, "quantize", out=tmp_path / "c", overrides=FAST).variants[0]
    assert len(variant.predict([" ".join(["good"] * 300)])) == 1  # longer than the positions: cut at 128
    card = write_card(variant).read_text()
    assert "| max length | 128 |" in card and "Inputs longer than 128 tokens" in card and "4096" not in card


def test_openvino_export_and_int8_agree_with_torch(tiny_run, tmp_path):
    # fp32 IR: within 1e-4 of torch's logits; NNCF int8 (calibrated on training texts): within 0.1
    from pretune.api import export
    from pretune.models.openvino_runner import OpenVinoRunner

    fp32 = export(tiny_run, tmp_path / "ov", format="openvino")
    assert (fp32.model_path / "openvino_model.xml").is_file() and not (fp32.model_path / "model.onnx").exists()
    expected, batch = torch_logits(tiny_run.model_path, TEXTS)
    assert isinstance(load_runner(fp32.model_path, create_task(DataConfig())), OpenVinoRunner)
    np.testing.assert_allclose(served(fp32.model_path, batch), expected, atol=1e-4)
    assert fp32.metrics["compress"]["check"]["max_abs_diff_openvino"] < 1e-4
    cfg = tree.resolve_config(tiny_run, ["quantize"], overrides=[
        "compress.quantize.backend=auto", "compress.quantize.calibration_samples=16"])
    int8 = tree.run_step(tiny_run, "quantize", tmp_path / "int8", cfg)
    choice_notes = int8.metrics["compress"]["backend_choice"]
    # ONNX Runtime dynamic and static (QDQ, calibrated) and OpenVINO's NNCF int8, all measured
    assert set(choice_notes) == {"onnx-dynamic", "onnx-static", "openvino", "chosen", "budget"}
    assert choice_notes["chosen"].split("-")[0] == measure_backend(int8.model_path).split("-")[0]
    np.testing.assert_allclose(served(int8.model_path, batch), expected, atol=0.1)
    forced = tree.run_step(tiny_run, "quantize", tmp_path / "forced", cfg.model_copy(
        update={"quantize": cfg.quantize.model_copy(update={"backend": "openvino"})}))
    assert measure_backend(forced.model_path) == "openvino-int8" and count_parameters(forced.model_path)["parameters"]
    np.testing.assert_allclose(served(forced.model_path, batch), expected, atol=0.1)


def test_trim_vocab_keeps_what_validation_needs_within_the_stated_rate(minilm_dir):
    from pretune.compress.trim_vocab import needed_token_ids, used_token_ids
    from pretune.data.prepare import TextTable

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    train = TextTable(["the film was good"] * 20 + ["the plot was bad"] * 10 + ["zebra xylophone quokka"], None, None)
    validation = TextTable(["the film was bad", "a good plot", "the quokka"], None, None)
    seen = used_token_ids(tokenizer, train.texts, None)
    keep, missing = needed_token_ids(tokenizer, train, validation, 1, 0.3)
    assert missing <= 0.3 and len(keep) < len(seen)
    assert tokenizer.convert_tokens_to_ids("the") in keep and tokenizer.convert_tokens_to_ids("zebra") not in keep
    ids = [i for text in validation.texts for i in tokenizer(text, add_special_tokens=False)["input_ids"]]
    assert sum(i not in keep for i in ids) / len(ids) == pytest.approx(missing)
    everything, none_missing = needed_token_ids(tokenizer, train, validation, 1, 0.0)
    assert set(everything) == set(seen) and none_missing == pytest.approx(sum(i not in seen for i in ids) / len(ids))
