"""The command line, run as a user runs it: a real process, real exit codes, real output."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import pretune_cli, sentiment_frame


def assert_clean_error(proc, message):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert message in lines[0], lines[0]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    out = tmp_path_factory.mktemp("cli") / "run"
    proc = pretune_cli("fit", "--set", f"model.source={tiny_model_dir}", "--set", f"data.source={sentiment_csv}",
                       "--set", "train.epochs=3", "--set", "train.optimizer.lr=5e-3", "--set", "train.batch_size=16",
                       "--set", "data.max_length=32", "--set", "train.keep_best=accuracy", "--out", out)
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout.replace("\n", " ")
    assert "final metrics" in printed and f"run directory: {out}" in printed
    assert "the best validation accuracy" in printed
    return out


def test_fit_prints_table_and_paths(cli_run):
    assert (cli_run / "metrics.json").is_file()


def test_predict_text_and_file(cli_run, tmp_path):
    proc = pretune_cli("predict", cli_run, "--text", "brilliant witty film", "--text", "boring messy plot")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    sentiment_frame(10, seed=3).drop(columns="label").to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    proc = pretune_cli("predict", cli_run, "--data", tmp_path / "t.jsonl")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 10


def test_eval_on_a_file(cli_run, tmp_path):
    sentiment_frame(50, seed=9).rename(columns={"text": "review"}).to_csv(tmp_path / "e.csv", index=False)
    proc = pretune_cli("eval", cli_run, "--data", tmp_path / "e.csv", "--text-column", "review", "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert metrics["samples"] == 50 and metrics["accuracy"] > 0.8


def test_bad_inputs_get_one_line_and_exit_2(cli_run, tmp_path, tiny_model_dir, sentiment_csv):
    model = f"model.source={tiny_model_dir}"
    data = f"data.source={sentiment_csv}"
    (tmp_path / "r.yaml").write_text("train:\n  optimizer: {name: lamb}\n")
    cases = [
        (["fit", tmp_path / "missing.yaml"], "recipe file not found"),
        (["fit", "--set", "train.epochs=lots"], "train.epochs"),
        (["fit", "--set", "train.colour=red"], "unknown key 'train.colour'"),
        (["fit", tmp_path / "r.yaml", "--set", model, "--set", data, "--out", tmp_path / "o1"],
         "unknown optimizer 'lamb'; known: adagrad, adam, adamw, rmsprop, sgd"),
        (["fit", "--set", model, "--set", data, "--set", "train.schedule.name=warp", "--out", tmp_path / "o2"],
         "unknown schedule 'warp'"),
        (["fit", "--set", model, "--set", data, "--set", "train.loss.name=hinge", "--out", tmp_path / "o3"],
         "unknown loss 'hinge'"),
        (["fit", "--set", model, "--set", data, "--set", "train.keep_best=auc", "--out", tmp_path / "o4"],
         "train.keep_best 'auc' is not a sequence-classification metric"),
        (["fit", "--set", model, "--set", "data.source=/no/such.csv"], "data file not found"),
        (["fit", "--set", model, "--set", data, "--set", "data.label_column=stars"],
         "no column 'stars'; the columns are text, label"),
        (["eval", tmp_path, "--data", sentiment_csv], "not a pretune run directory"),
        (["predict", cli_run], "give --text"),
    ]
    for args, message in cases:
        assert_clean_error(pretune_cli(*args), message)
    for name in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / name).exists()  # nothing half-written


def test_nan_and_unseen_labels_and_empty_data(cli_run, tmp_path):
    frame = sentiment_frame(20)
    frame.loc[3, "label"] = None
    frame.to_csv(tmp_path / "nan.csv", index=False)
    assert_clean_error(pretune_cli("eval", cli_run, "--data", tmp_path / "nan.csv"),
                       "1 row(s) have no label in 'label', first at row 3")
    pd.DataFrame({"text": ["a"], "label": ["neutral"]}).to_csv(tmp_path / "u.csv", index=False)
    assert_clean_error(pretune_cli("eval", cli_run, "--data", tmp_path / "u.csv"), "'neutral' never seen in training")
    (tmp_path / "empty.csv").write_text("text,label\n")
    assert_clean_error(pretune_cli("eval", cli_run, "--data", tmp_path / "empty.csv"), "no rows")


def test_model_dir_without_weights_and_offline_hub(tmp_path, sentiment_csv):
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text("{}")
    assert_clean_error(pretune_cli("fit", "--set", f"model.source={tmp_path / 'noweights'}",
                                   "--set", f"data.source={sentiment_csv}"), "has no weights")
    proc = pretune_cli("fit", "--set", "model.source=some-org/no-such-model", "--set",
                       f"data.source={sentiment_csv}", "--out", tmp_path / "hub",
                       env={"HF_HUB_OFFLINE": "1"})
    assert_clean_error(proc, "could not fetch 'some-org/no-such-model' from the Hugging Face Hub")


def test_usage_errors_exit_2():
    proc = pretune_cli("fit", "--no-such-flag")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert Path(sys.executable).exists()


def test_the_variants_table_keeps_the_columns_that_fit_the_terminal():
    """At 80 columns the table shows what the choice was made on first and says what it left out;
    a wide terminal shows every column."""
    from rich.console import Console

    from pretune.cli.output import compression_table

    rows = [{"name": "fit", "backend": "torch-fp32", "validation_accuracy": 0.8174, "val_drop": 0.0,
             "accuracy": 0.8127, "drop_points": 0.0, "speedup_batch": 1.0, "speedup_latency": 1.0, "size_ratio": 1.0,
             "size_mb": 91.584, "throughput": 144.2, "latency_ms_p50": 8.3, "latency_ms_p95": 9.9,
             "f1_macro": 0.81, "peak_memory_mb": 262.9, "parameters": 22713986, "nonzero_parameters": 22713983},
            {"name": "* distill/trim-vocab/quantize", "backend": "onnx-int8", "validation_accuracy": 0.8237,
             "val_drop": -0.63, "accuracy": 0.8033, "drop_points": 0.94, "speedup_batch": 7.85,
             "speedup_latency": 12.1, "size_ratio": 0.13, "size_mb": 11.7, "throughput": 1131.0,
             "latency_ms_p50": 0.69, "latency_ms_p95": 0.9, "f1_macro": 0.80, "peak_memory_mb": 134.1,
             "parameters": 11337218, "nonzero_parameters": 10521026}]
    for width, every in ((80, False), (250, True)):
        console = Console(width=width, record=True)
        console.print(compression_table(rows, "variants", width=width))
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "…" not in text  # no cell squeezed
        assert "val acc" in text and "0.8237" in text and "distill/trim-vocab/quantize" in text
        assert ("non-zero" in text) == every and ("more columns in compression.json" in text) != every
