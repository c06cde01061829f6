"""distill -> quantize on a slice of real data (the bundled MiniLM, Rotten Tomatoes), then the
int8 variant served by `pretune predict` and `pretune eval` like any run."""

import json
import subprocess
import sys

import pytest

import pretune
from pretune.compress.loaded import LoadedRun


@pytest.mark.e2e
def test_distill_then_quantize_learns_and_serves_int8(tmp_path):
    recipe = {"seed": 0, "data": {"source": "rotten-tomatoes", "max_train_samples": 600, "max_eval_samples": 200,
                                  "max_length": 32},
              "train": {"epochs": 3, "batch_size": 32, "checkpoint_every_steps": None, "optimizer": {"lr": 2e-4}}}
    teacher = pretune.fit(recipe, tmp_path / "teacher", quiet=True, save_model=True)
    result = pretune.compress(teacher, "distill,quantize", out=tmp_path / "c", max_drop=100.0, overrides=[
        "compress.distill.lr=2e-4", "compress.measure.isolate=false", "compress.measure.samples=32",
        "compress.measure.repeats=1"])
    student, int8 = result.variants
    info = student.metrics["compress"]
    labels = LoadedRun(teacher).data.splits["test"].labels
    majority = max(labels.mean(), 1 - labels.mean())  # chance: always the larger class
    accuracy = student.metrics["test"]["accuracy"]
    assert accuracy > majority + 0.02, (accuracy, majority, teacher.metrics["test"]["accuracy"])
    assert accuracy > info["untrained_student_test"]["accuracy"] + 0.02, info
    assert info["teacher_forward_rows"] == info["train_rows"] == 600  # once per example, not per epoch
    assert int8.metrics["test"]["accuracy"] > majority
    assert result.rows[2]["backend"] == "onnx-int8" and result.rows[1]["size_mb"] < result.rows[0]["size_mb"]

    proc = subprocess.run([sys.executable, "-m", "pretune", "predict", str(int8.path), "--text",
                           "A warm, funny, beautifully acted film.", "--text", "Dull, clumsy and far too long."],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["label"] for line in lines] == ["fresh", "rotten"]
    assert set(lines[0]["scores"]) == {"fresh", "rotten"}
