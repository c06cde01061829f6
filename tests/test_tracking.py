"""Experiment tracking read back with the libraries' own readers (TensorBoard's EventAccumulator,
MlflowClient on the SQLite store) and compared with metrics.jsonl / metrics.json."""

import json
import subprocess
import sys

import pytest

import pretune
from pretune.errors import MissingExtraError
from pretune.recipe import Recipe, TrackingConfig
from pretune.tracking import create_tracking_callbacks
from tests.conftest import tiny_recipe

FAST = ["compress.measure.isolate=false", "compress.measure.samples=16", "compress.measure.repeats=1"]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tracked")


@pytest.fixture(scope="module")
def tracked_run(runs_dir, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2, eval_every_steps=5)
    recipe["tracking"] = {"tensorboard": True, "mlflow": True}  # mlflow's defaults: SQLite beside the run
    return pretune.fit(recipe, runs_dir / "fit", quiet=True)


def client(runs_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{runs_dir / 'mlflow.db'}")


def history_of(run, split: str, key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in run.history if r["split"] == split and r.get(key) is not None]


def test_tensorboard_holds_every_logged_scalar_the_recipe_and_hparams(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run.path / "tb"))
    events.Reload()
    for split, key in (("train", "loss"), ("train", "lr"), ("validation", "accuracy"), ("validation", "loss")):
        got = [(e.step, e.value) for e in events.Scalars(f"{split}/{key}")]
        want = history_of(tracked_run, split, key)
        assert len(want) >= (5 if split == "validation" else 3)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    assert "recipe/text_summary" in events.Tags()["tensors"]
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["train.optimizer.lr"].number_value == pytest.approx(5e-3)
    assert hparams["strategy.name"].string_value == "full"
    final = events.Scalars("final/test/accuracy")
    assert final[-1].value == pytest.approx(tracked_run.metrics["test"]["accuracy"])


def test_mlflow_run_has_recipe_params_per_step_metrics_and_artefacts(tracked_run, runs_dir):
    record = json.loads((tracked_run.path / "mlflow-run.json").read_text())
    c = client(runs_dir)
    run = c.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "fit"
    assert float(run.data.params["train.optimizer.lr"]) == pytest.approx(5e-3)
    assert run.data.params["data.max_length"] == "32"
    for split, key in (("train", "loss"), ("validation", "accuracy")):
        got = sorted((m.step, m.value) for m in c.get_metric_history(record["run_id"], f"{split}/{key}"))
        want = history_of(tracked_run, split, key)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)
    assert run.data.metrics["final/test/accuracy"] == pytest.approx(tracked_run.metrics["test"]["accuracy"])
    files = {f.path for f in c.list_artifacts(record["run_id"])}
    assert "metrics.json" in files and "model_card" in files
    assert [f.path for f in c.list_artifacts(record["run_id"], "model_card")] == ["model_card/README.md"]
    assert (runs_dir / "mlartifacts").is_dir() and not (tracked_run.path / "mlruns").exists()


def test_compression_variants_nest_under_one_parent_run(tracked_run, runs_dir):
    compression = pretune.compress(tracked_run, "export", out=runs_dir / "fit-compressed", overrides=FAST)
    parent = json.loads((compression.path / "mlflow-run.json").read_text())
    child = json.loads((compression.variants[0].path / "mlflow-run.json").read_text())
    c = client(runs_dir)
    variant = c.get_run(child["run_id"])
    assert variant.data.tags["mlflow.parentRunId"] == parent["run_id"]
    row = compression.rows[1]
    assert variant.data.metrics["measured/latency_ms_p50"] == pytest.approx(row["latency_ms_p50"])
    assert variant.data.metrics["final/test/accuracy"] == pytest.approx(row["accuracy"])
    assert "compression.json" in {f.path for f in c.list_artifacts(parent["run_id"])}
    assert c.get_run(parent["run_id"]).info.status == "FINISHED"


def test_search_trials_nest_under_one_parent_and_sit_side_by_side_in_tensorboard(
        runs_dir, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1)
    recipe["tracking"] = {"tensorboard": True, "mlflow": {"experiment": "study"}}
    recipe["search"] = {"space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]}}, "trials": 2,
                        "evaluations": 2, "pruner": "none", "metric": "loss"}
    study = pretune.search(recipe, runs_dir / "study")
    parent = json.loads((study.path / "mlflow-run.json").read_text())
    c = client(runs_dir)
    children = c.search_runs([parent["experiment_id"]], f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    assert sorted(r.info.run_name for r in children) == ["trial-0000", "trial-0001"]
    for child in children:
        trial = pretune.load_run(study.path / child.info.run_name)
        assert float(child.data.params["train.optimizer.lr"]) == pytest.approx(trial.recipe.train.optimizer.lr)
        assert child.data.metrics["final/validation/loss"] == pytest.approx(trial.metrics["validation"]["loss"])
        assert (trial.path / "tb").is_dir()  # `tensorboard --logdir study` shows each trial as a run
    assert c.get_run(parent["run_id"]).data.metrics["best/loss"] == pytest.approx(study.trials["loss"].min())
    assert {"study.json", "trials.csv"} <= {f.path for f in c.list_artifacts(parent["run_id"])}


def test_a_missing_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r"pretune\[tracking\]"):
        create_tracking_callbacks(TrackingConfig(mlflow=True), tmp_path)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(MissingExtraError, match=r"'tensorboard'.*pretune\[tracking\]"):
        create_tracking_callbacks(TrackingConfig(tensorboard=True), tmp_path)


def test_off_by_default_and_nothing_imported(tmp_path):
    assert Recipe().tracking.tensorboard is False and Recipe().tracking.mlflow is False
    assert create_tracking_callbacks(Recipe().tracking, tmp_path) == []
    heavy = ("mlflow", "tensorboard", "torch.utils.tensorboard")
    code = ("import sys, pretune, pretune.train.fit, pretune.tracking; "
            f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_mlflow_true_and_settings_both_validate():
    assert Recipe.load(None, ["tracking.mlflow=true"]).tracking.mlflow.experiment == "pretune"
    cfg = Recipe.load(None, ["tracking.mlflow={tracking_uri: 'sqlite:///x.db', experiment: e}"]).tracking.mlflow
    assert (cfg.tracking_uri, cfg.experiment) == ("sqlite:///x.db", "e")
