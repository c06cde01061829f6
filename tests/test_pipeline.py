"""pretune pipeline on the tiny model: all five stages through the CLI, stages skipped when their
section is absent, SIGKILL at random moments then the same command (the result equals an
uninterrupted run's), the release directory loaded as a user would, bad recipes refused first."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

import pretune
from pretune.errors import PretuneError
from pretune.pipeline.plan import plan
from pretune.search.study import Study
from tests.conftest import tiny_recipe

TEXTS = ["superb brilliant film", "awful dull plot with a weak story", "the movie was quite lovely and warm"]
MEASURE = {"isolate": False, "samples": 16, "repeats": 1}


def full_recipe(model_dir, data) -> dict:
    """Every stage: a 2-point grid search (trials of 6 steps), a 3-epoch fit with checkpoints
    (--fit-set lifts the step cap), ONNX int8, report, release."""
    recipe = tiny_recipe(model_dir, data, max_steps=6, checkpoint_every_steps=4)
    recipe["search"] = {"metric": "loss", "trials": 2, "sampler": "grid", "pruner": "none", "evaluations": 2,
                        "heartbeat_seconds": 1, "space": {"train.optimizer.lr": {"choice": [5.0e-3, 1.0e-2]}},
                        # Five kills may all land in one trial: past search.retries (2 by default) it
                        # is given up, the other grid point wins, and the fit differs (seen in CI).
                        "retries": 6}
    recipe["compress"] = {"steps": ["quantize"], "max_drop": 50, "measure": MEASURE}
    return recipe


def cli(*args, **popen):
    return subprocess.Popen([sys.executable, "-m", "pretune", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **popen)


@pytest.fixture(scope="module")
def full(tmp_path_factory, tiny_model_dir, sentiment_csv):
    """One uninterrupted pipeline through the CLI: its directory, output and wall time."""
    root = tmp_path_factory.mktemp("pipeline")
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(full_recipe(tiny_model_dir, sentiment_csv)))
    started = time.time()
    proc = cli("pipeline", path, "--out", root / "full", "--fit-set", "train.max_steps=null")
    out, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return {"recipe": path, "dir": root / "full", "stdout": out, "seconds": time.time() - started, "root": root}


def test_all_five_stages_print_their_lines_table_and_write_pipeline_json(full):
    out, summary = full["stdout"], json.loads((full["dir"] / "pipeline.json").read_text())
    for stage in ("check", "search", "fit", "compress", "report", "release"):
        assert f"pipeline: {stage}: started" in out
        assert summary["stages"][stage]["status"] in ("completed", "not available")
        assert summary["stages"][stage]["seconds"] >= 0
    # The data check first: its counts on the terminal and in check.json, shown on the page.
    check = json.loads((full["dir"] / "check.json").read_text())
    assert check["rows"]["train"] > 0 and "check: data:" in out and "repeated texts in train" in out
    assert "fine-tuned vs chosen" in out and "test accuracy" in out and "report" in out
    assert summary["stages"]["compress"]["chosen"] == "quantize"
    assert summary["chosen"] == str(full["dir"] / "compress" / "quantize") and summary["load"] == "onnxruntime"
    figures = summary["figures"]
    for key in ("validation_accuracy", "test_accuracy", "throughput", "latency_ms_p50", "size_mb"):
        fine, mine = figures["fine_tuned"][key], figures["chosen"][key]
        assert figures["ratio"][key] == pytest.approx(mine / fine)
    assert figures["ratio"]["size_mb"] < 0.6  # int8 weights
    # One page over the whole path: the stages (linking to each stage's own page), the fine-tuned
    # model against the chosen one (the figures pipeline.json holds), the variants.
    page = (full["dir"] / "report.html").read_text()
    assert summary["stages"]["report"]["path"] == str(full["dir"] / "report.html")
    assert "pipeline report" in page and "Fine-tuned against chosen" in page and "Variants" in page
    assert "Data check" in page and "duplicates within train" in page
    # Written once more after the release: no stage is still "running" on it.
    assert page.count(">completed<") >= 6 and ">running<" not in page
    for stage in ("search", "fit", "compress"):
        assert f'href="{stage}/report.html"' in page and (full["dir"] / stage / "report.html").is_file()
    assert f"{figures['ratio']['throughput']:.2f}×" in page
    # The fit took the best trial's recipe, with the fit-only override on top.
    fit = pretune.load_run(summary["stages"]["fit"]["path"])
    best = Study(full["dir"] / "search").best_recipe
    assert fit.recipe.train.optimizer.lr == best.train.optimizer.lr and fit.recipe.train.max_steps is None
    assert fit.metrics["train"]["steps"] == 36 and "test" in fit.metrics
    assert figures["fine_tuned"]["test_accuracy"] == pytest.approx(fit.metrics["test"]["accuracy"])


def test_release_loads_in_onnx_runtime_and_agrees_with_the_variant(full):
    import onnxruntime
    from transformers import AutoTokenizer

    model = full["dir"] / "model"
    assert "onnxruntime" in (model / "README.md").read_text()
    session = onnxruntime.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = AutoTokenizer.from_pretrained(model)(TEXTS, padding=True, return_tensors="np")
    names = {i.name for i in session.get_inputs()}
    logits = session.run(None, {k: v.astype(np.int64) for k, v in batch.items() if k in names})[0]
    assert logits.shape == (3, 2)
    variant = pretune.load_run(full["dir"] / "compress" / "quantize")
    assert [p["label"] for p in variant.predict(TEXTS)] == [
        variant.predictor().label_names[i] for i in logits.argmax(1)]


def test_the_same_command_again_redoes_nothing(full):
    before = json.loads((full["dir"] / "pipeline.json").read_text())
    result = pretune.pipeline(full["recipe"], full["dir"], fit_overrides=["train.max_steps=null"], quiet=True)
    after = json.loads((full["dir"] / "pipeline.json").read_text())
    assert after["stages"] == before["stages"] and result.chosen.path.name == "quantize"
    with pytest.raises(PretuneError, match="different recipe"):
        pretune.pipeline(full["recipe"], full["dir"], quiet=True)  # without the fit override
    resumed = pretune.pipeline(resume=full["dir"], quiet=True)  # the saved recipe and fit override
    assert json.loads((full["dir"] / "pipeline.json").read_text())["stages"] == before["stages"]
    assert resumed.figures == result.figures and resumed.run.path == result.run.path
    with pytest.raises(PretuneError, match="not a pretune pipeline directory"):
        pretune.pipeline(resume=full["dir"] / "fit", quiet=True)


def test_killed_at_random_moments_the_same_command_ends_like_an_uninterrupted_run(full):
    rng = random.Random(int(os.environ.get("PRETUNE_KILL_SEED", "0")))
    out = full["root"] / "killed"
    args = ("pipeline", full["recipe"], "--out", out, "--fit-set", "train.max_steps=null", "-q")
    kills, moments = 0, []
    while kills < 5:
        proc = cli(*args)
        delay = rng.uniform(0.15, 0.5) * full["seconds"]
        try:
            proc.wait(timeout=delay)
            break  # finished before this kill: fewer kills, caught below
        except subprocess.TimeoutExpired:
            stage = json.loads((out / "pipeline.json").read_text()) if (out / "pipeline.json").is_file() else {}
            moments.append(next((s for s, r in stage.get("stages", {}).items() if r["status"] == "running"), "-"))
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    assert kills >= 5, f"the pipeline finished after {kills} kills; kill sooner"
    proc = cli(*args)
    try:  # bounded: a resume that waits on something its killed self left must fail, naming the stage
        _, err = proc.communicate(timeout=120 + 10 * full["seconds"])
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        stages = json.loads((out / "pipeline.json").read_text())["stages"]
        pytest.fail(f"the resumed pipeline hung in {[s for s, r in stages.items() if r['status'] == 'running']} "
                    f"after kills in {moments}: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    mine, theirs = (json.loads((d / "pipeline.json").read_text()) for d in (out, full["dir"]))
    assert mine["stages"]["compress"]["chosen"] == theirs["stages"]["compress"]["chosen"], moments
    for who in ("fine_tuned", "chosen"):
        for key in ("validation_accuracy", "test_accuracy"):
            assert mine["figures"][who][key] == theirs["figures"][who][key], (who, key, moments)
    assert mine["stages"]["search"]["best_values"]["loss"] == pytest.approx(
        theirs["stages"]["search"]["best_values"]["loss"], abs=1e-5)
    fits = [pretune.load_run(d / "fit").metrics["test"] for d in (out, full["dir"])]
    assert fits[0]["loss"] == pytest.approx(fits[1]["loss"], abs=1e-5), moments


def test_a_new_budget_on_a_finished_pipeline_chooses_again_without_training(tiny_model_dir, sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1)
    recipe["compress"] = {"steps": ["quantize"], "max_drop": 50, "measure": MEASURE}
    first = pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    fit_made = (tmp_path / "p" / "fit" / "metrics.json").stat().st_mtime_ns
    assert first.chosen.path.name == "quantize"
    recipe["compress"]["max_drop"] = 0.0
    again = pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    table = json.loads((tmp_path / "p" / "compress" / "compression.json").read_text())
    assert table["max_drop"] == 0.0 and table["tree"]["quantize"]["reused"]  # chosen again, not rebuilt
    assert (tmp_path / "p" / "fit" / "metrics.json").stat().st_mtime_ns == fit_made
    assert again.summary["stages"]["compress"]["chosen"] == table["choice"]["name"]
    assert yaml.safe_load((tmp_path / "p" / "recipe.yaml").read_text())["compress"]["max_drop"] == 0.0
    assert again.chosen.path == (tmp_path / "p" / "compress" / table["choice"]["name"] if table["choice"]["name"]
                                 else again.run.path)
    # Such a rerun killed after it saved the new recipe, before compress wrote: the same command
    # again finds the recipe unchanged, and the compression chosen under another budget is redone.
    recipe["compress"]["max_drop"] = 2.0
    state = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    state["stages"]["compress"] = {"status": "running", "attempts": 2}
    for stage in ("report", "release"):
        state["stages"].pop(stage)
    (tmp_path / "p" / "pipeline.json").write_text(json.dumps(state))
    (tmp_path / "p" / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    assert json.loads((tmp_path / "p" / "compress" / "compression.json").read_text())["max_drop"] == 2.0
    recipe["train"]["optimizer"] = {"lr": 1.0e-3}  # anything else is still another pipeline
    with pytest.raises(PretuneError, match=r"different recipe \(train.optimizer.lr differ\)"):
        pretune.pipeline(recipe, tmp_path / "p", quiet=True)


def test_stages_without_their_section_are_skipped_and_the_fit_is_released(tiny_model_dir, sentiment_csv, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result = pretune.pipeline(tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1), tmp_path / "p", quiet=True)
    stages = result.summary["stages"]
    assert stages["search"]["status"] == "skipped" and stages["compress"]["status"] == "skipped"
    assert result.study is None and result.compression is None and result.chosen.path == result.run.path
    assert not (tmp_path / "p" / "search").exists() and not (tmp_path / "p" / "compress").exists()
    assert result.figures["ratio"]["test_accuracy"] == 1.0 and result.figures["fine_tuned"]["throughput"] > 0
    model = AutoModelForSequenceClassification.from_pretrained(result.model).eval()
    batch = AutoTokenizer.from_pretrained(result.model)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        released = model(**batch).logits
        fitted = AutoModelForSequenceClassification.from_pretrained(result.run.model_path).eval()(**batch).logits
    torch.testing.assert_close(released, fitted)
    assert "from_pretrained" in (result.model / "README.md").read_text()


@pytest.mark.parametrize("section, message", [
    ({"compress": {"steps": ["shrink"]}}, "unknown compression step 'shrink'"),
    ({"search": {"metric": "f1", "space": {"train.optimizer.lr": {"choice": [0.01]}}}},
     "search.metric 'f1' is not a sequence-classification metric"),
    ({"search": {"metric": ["accuracy", "train_seconds"], "space": {"train.optimizer.lr": {"choice": [0.01]}}}},
     "no single best recipe"),
    ({"data": {"task": "regression"}, "compress": {"max_drop": 1.0}}, "compress.max_drop counts accuracy points"),
])
def test_stages_that_cannot_work_together_are_refused_before_any_work(section, message, tiny_model_dir,
                                                                         sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    for key, value in section.items():
        recipe[key] = {**recipe.get(key, {}), **value}
    with pytest.raises(PretuneError, match=message.replace("'", ".")):
        pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    assert not (tmp_path / "p").exists()


def test_cli_refusal_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"compress": {"steps": ["quantize", "shrink"]}}))
    proc = cli("pipeline", path, "--out", tmp_path / "p")
    _, err = proc.communicate()
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "unknown compression step 'shrink'" in lines[0], err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name, stages", [
    ("demo.yaml", ["check", "fit", "compress", "report", "release"]),
    ("pipeline_search.yaml", ["check", "search", "fit", "compress", "report", "release"]),
    ("fashion_mnist_pipeline.yaml", ["check", "fit", "compress", "report", "release"]),
])
def test_example_pipelines_are_valid_and_say_their_stages(name, stages):
    from pathlib import Path

    assert plan(Path(__file__).parent.parent / "examples" / name, "unused-dir").stages == stages


def test_train_evaluations_become_an_interval_the_loop_computes(tiny_model_dir, sentiment_csv, tmp_path):
    run = pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, max_steps=9, evaluations=3), tmp_path / "r",
                      quiet=True, lean=True)
    assert [r["step"] for r in run.history if r["split"] == "validation"] == [3, 6, 9]


def test_a_search_space_chooses_between_models(tiny_model_dir, sentiment_csv, tmp_path):
    """Model selection as a searched key: the body with all its layers or a 1-layer surgery cut."""
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, max_steps=4)
    recipe["search"] = {"metric": "loss", "trials": 2, "sampler": "grid", "pruner": "none", "keep": "all",
                        "space": {"model.surgery.num_layers": {"choice": [None, 1]}}}
    study = pretune.search(recipe, tmp_path / "s")
    table = study.trials
    layers = [int(v) for v in table["model.surgery.num_layers"].fillna(0)]  # 0: all the layers
    assert sorted(layers) == [0, 1]
    params = {n: pretune.load_run(study.path / run).metrics["model"]["parameters"]
              for n, run in zip(layers, table["run"], strict=True)}
    assert params[1] < params[0]
