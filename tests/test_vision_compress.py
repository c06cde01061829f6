"""Compression of image runs: export, static int8, channel pruning, distillation, measure and
trim-vocab's refusal, on a tiny random ResNet fitted to a slice of real digits (mnist-5k, 32 px),
and channel pruning's save / reload on a random EfficientNet-Lite0; the real, pretrained
EfficientNet-Lite0 only in the one end-to-end test at the bottom."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import pretune
from pretune.compress import steps
from pretune.compress.loaded import LoadedRun, task_of
from pretune.compress.tree import resolve_config, run_step
from pretune.models.load import load_saved_model
from pretune.models.onnx_runner import OnnxRunner


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pretune", *map(str, args)], capture_output=True, text=True)


def tiny_resnet(path, widths=(8, 16), seed=0):
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(seed)
    config = ResNetConfig(embedding_size=8, hidden_sizes=list(widths), depths=[1, 1], layer_type="basic",
                          num_labels=3)
    ResNetForImageClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A tiny ResNet fitted on 256 digits at 32 px (it learns a little: well above chance)."""
    root = tmp_path_factory.mktemp("vision-compress")
    recipe = {"seed": 3, "model": {"source": str(tiny_resnet(root / "tiny"))},
              "data": {"task": "image-classification", "source": "mnist-5k", "image_size": 32,
                       "max_train_samples": 256, "max_eval_samples": 64},
              "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 3e-3}, "checkpoint_every_steps": None,
                        "mixed_precision": "no"}}
    return pretune.fit(recipe, root / "run", quiet=True)


def validation_images(run, n=32):
    return LoadedRun(run).batches("validation", n, 16)


def test_export_matches_torch_on_real_images(digits_run, tmp_path):
    variant = run_step(digits_run, "export", tmp_path / "onnx")
    assert (variant.model_path / "model.onnx").is_file() and not (variant.model_path / "model.safetensors").exists()
    runner = OnnxRunner(variant.model_path)
    assert runner.input_names == ["pixel_values"]
    torch_model = load_saved_model(digits_run.model_path, task_of(digits_run))
    for batch in validation_images(digits_run):  # batches of 16: the batch axis is dynamic
        with torch.inference_mode():
            expected = torch_model(**batch).logits.numpy()
        assert np.abs(runner(batch) - expected).max() < 1e-4
    assert variant.metrics["test"]["accuracy"] == pytest.approx(digits_run.metrics["test"]["accuracy"], abs=1 / 64)


def test_percentile_calibration_clips_activation_ranges(digits_run, tmp_path, capsys):
    """compress.quantize.calibration: percentile ranges lie within min/max ones, some strictly;
    ONNX Runtime's calibration progress is kept off stdout."""
    import onnx
    from onnx import numpy_helper

    def activation_scales(variant) -> dict[str, float]:
        graph = onnx.load(str(variant.model_path / "model.onnx")).graph
        values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        return {n.input[0]: float(values[n.input[1]]) for n in graph.node
                if n.op_type == "QuantizeLinear" and values[n.input[1]].ndim == 0}

    scales = {}
    for method in ("minmax", "percentile"):
        cfg = resolve_config(digits_run, ["quantize"], overrides=[f"compress.quantize.calibration={method}",
                                                                  "compress.quantize.calibration_samples=100"])
        variant = run_step(digits_run, "quantize", tmp_path / method, cfg)
        assert variant.metrics["compress"]["settings"]["calibration"] == method
        scales[method] = activation_scales(variant)
    assert scales["minmax"].keys() == scales["percentile"].keys() and len(scales["minmax"]) > 5
    assert all(scales["percentile"][k] <= scales["minmax"][k] * (1 + 1e-6) for k in scales["minmax"])
    assert any(scales["percentile"][k] < scales["minmax"][k] * 0.99 for k in scales["minmax"])
    assert "histogram" not in capsys.readouterr().out


def test_static_int8_quantizes_convolutions_and_runs_through_eval_and_predict(digits_run, tmp_path):
    import onnx
    import onnxruntime as ort

    from pretune.compress.quantize.image import conv_node_groups

    variant = run_step(digits_run, "quantize", tmp_path / "int8")
    settings = variant.metrics["compress"]["settings"]
    assert settings["mode"] == "static" and settings["per_channel"]  # the image defaults
    assert variant.metrics["compress"]["calibration_images"] == 128
    graph = onnx.load(str(variant.model_path / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert int8_weights  # convolution kernels stored as int8
    # ONNX Runtime fuses each Q/DQ pair around a Conv into an int8 convolution when it loads the model.
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(variant.model_path / "model.onnx"), options, providers=["CPUExecutionProvider"])
    fused = {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "QLinearConv" in fused, fused
    fp32, int8 = digits_run.metrics["test"]["accuracy"], variant.metrics["test"]["accuracy"]
    assert abs(fp32 - int8) <= 0.1, (fp32, int8)
    groups = conv_node_groups(tmp_path / "optimized.onnx").keys() | conv_node_groups(
        run_step(digits_run, "export", tmp_path / "fp32").model_path / "model.onnx").keys()
    assert {"stem", "stages.0", "stages.1"} <= set(groups)
    # The int8 variant is a run like any other: eval and predict --image read it.
    done = cli("eval", variant.path, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["accuracy"] == pytest.approx(int8)
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i, image in enumerate(LoadedRun(digits_run).data.splits["test"].texts[:3]):
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    done = cli("predict", variant.path, "--image", tmp_path / "imgs")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert len(rows) == 3 and all(r["label"] in digits_run.metrics["model"]["labels"] for r in rows)


def test_dynamic_int8_is_an_option(digits_run, tmp_path):
    import onnx

    cfg = resolve_config(digits_run, ["quantize"], overrides=["compress.quantize.mode=dynamic"])
    variant = run_step(digits_run, "quantize", tmp_path / "dyn", cfg)
    ops = {n.op_type for n in onnx.load(str(variant.model_path / "model.onnx")).graph.node}
    assert "ConvInteger" in ops and "QuantizeLinear" not in ops  # ranges per call, no calibration
    assert variant.metrics["compress"]["calibration_images"] == 0


def _conv_shapes(path) -> dict:
    from safetensors.numpy import load_file

    return {k: v.shape for k, v in load_file(str(path / "model.safetensors")).items() if v.ndim == 4}


def test_channel_pruning_shrinks_convolutions_and_reloads(digits_run, tmp_path):
    cfg = resolve_config(digits_run, ["prune"], overrides=["compress.prune.channels=0.5"])
    variant = run_step(digits_run, "prune", tmp_path / "pruned", cfg)
    before, after = _conv_shapes(digits_run.model_path), _conv_shapes(variant.model_path)
    assert before.keys() == after.keys()
    assert all(a[0] <= b[0] for a, b in zip(after.values(), before.values(), strict=True))
    assert sum(a[0] for a in after.values()) < 0.7 * sum(b[0] for b in before.values())
    notes = variant.metrics["compress"]
    assert notes["parameters"]["after"] < 0.6 * notes["parameters"]["before"]
    assert "pretune_channels" in json.loads((variant.model_path / "config.json").read_text())
    assert variant.metrics["train"]["steps"] > 0  # recovery fine-tuning ran through fit
    # Reloaded from its files (the shapes rebuilt from config.json), it scores what the step measured.
    assert pretune.load_run(variant.path).evaluate()["accuracy"] == pytest.approx(variant.metrics["test"]["accuracy"])


@pytest.mark.parametrize("kind", ["efficientnet", "resnet"])
def test_pruned_model_saves_and_reloads_to_identical_logits(kind, tmp_path):
    from pretune.compress.prune.channels import count, prune_channels
    from pretune.data.images import ImageSettings
    from pretune.recipe import DataConfig
    from pretune.tasks import create_task

    task = create_task(DataConfig(task="image-classification", image_size=32))
    task.label_names = ["a", "b", "c"]
    if kind == "efficientnet":
        from pretune.models.vision import build_efficientnet

        torch.manual_seed(0)
        model = build_efficientnet("efficientnet-lite0", 3, 32, pretrained=False)
    else:
        from transformers import AutoModelForImageClassification

        model = AutoModelForImageClassification.from_pretrained(tiny_resnet(tmp_path / "r"))
    task.configure(model.config)
    full = count(model)
    notes = prune_channels(model, 0.3, 32)
    assert count(model) == notes["parameters"]["after"] < 0.8 * full
    # Every layer keeps a multiple of 8 channels (ONNX Runtime's blocked convolutions need it).
    assert all(m.out_channels % 8 == 0 for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    (tmp_path / "saved").mkdir()
    model.save_pretrained(tmp_path / "saved")
    ImageSettings(32).save_pretrained(tmp_path / "saved")
    again = load_saved_model(tmp_path / "saved", task)
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        expected, got = model.eval()(pixel_values=x), again(pixel_values=x)
    expected, got = getattr(expected, "logits", expected), getattr(got, "logits", got)
    assert torch.equal(expected, got)
    assert count(again) == count(model)


def test_distilled_student_learns_and_the_teacher_runs_once_per_image(digits_run, tmp_path):
    student = tiny_resnet(tmp_path / "student", widths=(8, 8), seed=1)
    cfg = resolve_config(digits_run, ["distill"], overrides=[f"compress.distill.student={student}",
                                                             "compress.distill.epochs=4"])
    variant = run_step(digits_run, "distill", tmp_path / "distilled", cfg)
    notes = variant.metrics["compress"]
    assert notes["teacher_forward_rows"] == notes["train_rows"] == 256
    assert notes["augment"].startswith("off")
    untrained = notes["untrained_student_test"]["accuracy"]
    assert variant.metrics["test"]["accuracy"] >= untrained + 0.08, (variant.metrics["test"], untrained)
    assert json.loads((variant.model_path / "config.json").read_text())["hidden_sizes"] == [8, 8]


def test_measure_prints_a_row_for_an_image_run_and_trim_vocab_refuses(digits_run, tmp_path):
    done = cli("measure", digits_run.path, "--threads", "1", "--samples", "16", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    [row] = json.loads(done.stdout)
    assert row["backend"] == "torch-fp32" and row["timed_texts"] == 16 and row["test_samples"] == 64
    assert row["accuracy"] == pytest.approx(digits_run.metrics["test"]["accuracy"], abs=2 / 64)
    assert row["throughput"] > 0 and row["latency_ms_p95"] >= row["latency_ms_p50"] > 0
    assert row["parameters"] == row["nonzero_parameters"] > 0 and row["size_mb"] > 0
    done = cli("compress", digits_run.path, "--steps", "trim-vocab", "--out", tmp_path / "c")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "trim-vocab" in lines[0], done.stderr


@pytest.mark.e2e
def test_efficientnet_lite0_pruned_and_int8_on_real_digits(tmp_path):
    """The real Lite0 (ImageNet weights) on 320 digits at 64 px, through the CLI as a user runs
    it: channel-pruned by 30 % with recovery, then static int8; the table measures all three and
    the variants keep learning."""
    recipe = {"seed": 0, "model": {"source": "efficientnet-lite0"}, "strategy": {"name": "freeze"},
              "data": {"task": "image-classification", "source": "mnist-5k", "image_size": 64,
                       "max_train_samples": 320, "max_eval_samples": 96},
              "train": {"epochs": 8, "batch_size": 32, "eval_batch_size": 32, "optimizer": {"lr": 3e-3},
                        "checkpoint_every_steps": None, "mixed_precision": "no"}, "report": False}
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    # Each command in its own fresh process: in a process that ran other fits first, the same
    # seeds gave 0.32 instead of 0.55 for the pruned model (float results follow the process's
    # allocation / kernel history, and 2 recovery epochs on 320 images amplify that).
    for args in (["fit", tmp_path / "recipe.yaml", "--out", tmp_path / "run", "-q"],
                 ["compress", tmp_path / "run", "--steps", "prune,quantize", "--out", tmp_path / "c", "--no-report",
                  "--set", "compress.prune.channels=0.3", "--set", "compress.prune.recovery_epochs=2",
                  "--set", "compress.prune.lr=1e-3", "--set", "compress.measure.samples=32",
                  "--set", "compress.measure.repeats=1", "--set", "compress.measure.threads=2"]):
        done = subprocess.run([sys.executable, "-m", "pretune", *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads((tmp_path / "c" / "compression.json").read_text())["rows"]
    original, pruned, int8 = rows
    assert [r["backend"] for r in rows] == ["torch-fp32", "torch-fp32", "onnx-int8"]
    assert pruned["parameters"] < 0.75 * original["parameters"]
    assert int8["size_mb"] < 0.5 * pruned["size_mb"]
    # 10 classes, 96 test images: chance is 0.1, and 24 or more right by chance has p < 1e-5.
    # Measured in fresh processes: 0.55 pruned, 0.40 int8. Static int8 of the pruned Lite0 loses
    # points here (the tiny ResNet's int8 stays within 0.1); quantize.max_drop's gate keeps the
    # sensitive stages fp32 when that matters.
    assert pruned["accuracy"] >= 0.25, rows
    assert int8["accuracy"] >= 0.25, rows
    assert (tmp_path / "c" / "compression.json").is_file() and (tmp_path / "c" / "pareto.png").is_file()


@pytest.mark.parametrize("step", steps.available("image"))
def test_every_image_step_gives_a_run_with_fits_layout(digits_run, tmp_path, step):
    """The step contract of test_compress.py, on an image run: each registered image step gives a
    Run directory that eval reads, with the image preprocessor saved beside the model."""
    student = tiny_resnet(tmp_path / "student", widths=(8, 8), seed=1)
    cfg = resolve_config(digits_run, [step], overrides=[
        "compress.prune.recovery_epochs=0", "compress.distill.epochs=1", f"compress.distill.student={student}",
        "compress.quantize.calibration_samples=16"])
    variant = run_step(digits_run, step, tmp_path / step, cfg)
    assert {"recipe.yaml", "metrics.json", "model"} <= {p.name for p in variant.path.iterdir()}
    info = variant.metrics
    assert info["compress"]["step"] == step and 0 <= info["test"]["accuracy"] <= 1
    assert 0 <= info["validation"]["accuracy"] <= 1
    assert (variant.model_path / "preprocessor_config.json").is_file()
    assert pretune.load_run(variant.path).evaluate()["accuracy"] == pytest.approx(info["test"]["accuracy"])
    assert not (tmp_path / f".{step}.work").exists()


def test_image_default_tree_and_order_refused(digits_run, tmp_path):
    from pretune.compress.tree import chains_of

    assert chains_of(resolve_config(digits_run), "image") == [["quantize"], ["prune"], ["prune", "quantize"]]
    with pytest.raises(pretune.PretuneError, match="step order quantize,prune cannot work"):
        pretune.compress(digits_run, "quantize,prune", out=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_openvino_on_an_image_run_agrees_with_torch_and_auto_says_which_backend(digits_run, tmp_path):
    """fp32 OpenVINO IR within 1e-4 of torch; static int8 by NNCF and by ONNX Runtime both built,
    the faster inside the budget kept, the notes and the table's backend naming it."""
    from pretune.compress.loaded import backend_of
    from pretune.models.openvino_runner import OpenVinoRunner

    cfg = resolve_config(digits_run, ["export"], overrides=["compress.export.format=openvino"])
    fp32 = run_step(digits_run, "export", tmp_path / "ov", cfg)
    runner = OpenVinoRunner(fp32.model_path)
    torch_model = load_saved_model(digits_run.model_path, task_of(digits_run))
    for batch in validation_images(digits_run):
        with torch.inference_mode():
            expected = torch_model(**batch).logits.numpy()
        assert np.abs(runner(batch) - expected).max() < 1e-4
    cfg = resolve_config(digits_run, ["quantize"], max_drop=50.0, overrides=[
        "compress.quantize.backend=auto", "compress.quantize.calibration_samples=16"])
    int8 = run_step(digits_run, "quantize", tmp_path / "int8", cfg)
    picked = int8.metrics["compress"]["backend_choice"]
    assert picked["chosen"] in ("onnx", "openvino") and backend_of(int8.model_path) == f"{picked['chosen']}-int8"
    assert all(picked[name]["rows_per_s"] > 0 for name in ("onnx", "openvino"))
    assert pretune.load_run(int8.path).evaluate()["accuracy"] == pytest.approx(int8.metrics["test"]["accuracy"])
