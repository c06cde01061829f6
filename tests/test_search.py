"""pretune.search on the tiny model: trials are Run directories, results files, conditional
spaces, grid exhaustion, resume, failing trials, pruning, several metrics, best.yaml reproduced."""

import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

import pretune
from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.search.samplers import samplers
from tests.conftest import tiny_recipe

LR = {"loguniform": [1.0e-3, 1.0e-2]}


def search_recipe(model_dir, data, space, epochs=1, max_steps=None, **search):
    recipe = tiny_recipe(model_dir, data, epochs=epochs, max_steps=max_steps)
    recipe["search"] = {"space": space, "evaluations": 3, "startup_trials": 1, **search}
    return recipe


def states(study):
    return [t.state.name for t in study.optuna.get_trials()]


def test_search_writes_runs_and_results_and_best_recipe_reproduces(tiny_model_dir, sentiment_csv, tmp_path):
    space = {"train.optimizer.lr": LR, "strategy.name": {"choice": ["full", "llrd"]},
             "strategy.decay": {"uniform": [0.5, 1.0], "when": {"strategy.name": "llrd"}}}
    recipe = search_recipe(tiny_model_dir, sentiment_csv, space, trials=3, metric="loss", pruner="none")
    study = pretune.search(recipe, tmp_path / "study")
    assert states(study) == ["COMPLETE"] * 3
    table = study.trials
    assert list(table["state"]) == ["COMPLETE"] * 3 and table["loss"].notna().all()
    for _, row in table.iterrows():  # conditional key: searched exactly when its condition holds
        assert (row["strategy.decay"] == row["strategy.decay"]) == (row["strategy.name"] == "llrd")
        run = Run(study.path / row["run"])
        assert run.recipe.train.optimizer.lr == pytest.approx(row["train.optimizer.lr"])
        assert len([r for r in run.history if r["split"] == "validation"]) >= 3  # reports for pruning
        assert not (run.path / "checkpoints").exists()
    best = study.best_trial
    models = [p.parent.parent.name for p in study.path.glob("trial-*/model/config.json")]
    assert models == [f"trial-{best['number']:04d}"], "only the best trial keeps its weights"
    summary = json.loads((study.path / "study.json").read_text())
    assert summary["best"]["values"]["loss"] == pytest.approx(table["loss"].min())
    assert {p.name for p in (study.path / "plots").iterdir()} >= {"history.png", "slice.png"}
    # best.yaml is the best trial's recipe, ready for fit: same seed, same figure.
    refit = pretune.fit(study.best_recipe_path, tmp_path / "refit", quiet=True)
    assert refit.metrics["validation"]["loss"] == pytest.approx(best["values"]["loss"], abs=1e-6)
    assert yaml.safe_load(study.best_recipe_path.read_text())["search"]["space"] == {}


@pytest.mark.parametrize("name", [s for s in samplers.available() if s != "nsga2"])
def test_every_sampler_runs_a_study_on_the_tiny_model(name, tiny_model_dir, sentiment_csv, tmp_path):
    """nsga2 runs in the several-metrics test; the grid (2 points) is exhausted before --trials 5."""
    space = {"train.optimizer.lr": {"uniform": [2.0e-3, 8.0e-3], "step": 6.0e-3}}
    recipe = search_recipe(tiny_model_dir, sentiment_csv, space, max_steps=4, trials=5 if name == "grid" else 2,
                           sampler=name, pruner="median", keep="none")
    study = pretune.search(recipe, tmp_path / "s")
    assert len(states(study)) == 2 and set(states(study)) <= {"COMPLETE", "PRUNED"}
    if name == "grid":
        assert sorted(t.params["train.optimizer.lr"] for t in study.optuna.get_trials()) == [2e-3, 8e-3]
        assert study.summary["budget"] == 2
    assert not list(study.path.glob("trial-*/model"))  # keep none


def test_failing_trial_is_recorded_and_the_study_goes_on(tiny_model_dir, sentiment_csv, tmp_path):
    space = {"train.optimizer.lr": {"choice": [5.0e-3, 1.0e12]}}
    recipe = search_recipe(tiny_model_dir, sentiment_csv, space, max_steps=6, trials=2, sampler="grid",
                           pruner="none")
    recipe["train"]["max_grad_norm"] = None
    study = pretune.search(recipe, tmp_path / "fail")
    table = study.trials.set_index("train.optimizer.lr")
    assert table.loc[1e12, "state"] == "FAIL" and "became nan" in table.loc[1e12, "reason"]
    assert table.loc[5e-3, "state"] == "COMPLETE" and study.best_trial["params"]["train.optimizer.lr"] == 5e-3


def test_resume_joins_the_study_and_keeps_completed_trials(tiny_model_dir, sentiment_csv, tmp_path):
    recipe = search_recipe(tiny_model_dir, sentiment_csv, {"train.optimizer.lr": LR}, max_steps=4, trials=2,
                           pruner="none")
    first = pretune.search(recipe, tmp_path / "s")
    before = [(t.number, t.values, t.params) for t in first.optuna.get_trials()]
    again = pretune.search(recipe, tmp_path / "s")  # the same command: budget already used
    assert [(t.number, t.values, t.params) for t in again.optuna.get_trials()] == before
    more = pretune.search(resume=tmp_path / "s", trials=3)
    trials = more.optuna.get_trials()
    assert [(t.number, t.values, t.params) for t in trials[:2]] == before and len(trials) == 3
    assert trials[2].params != trials[0].params and trials[2].params != trials[1].params
    changed = search_recipe(tiny_model_dir, sentiment_csv, {"train.optimizer.lr": LR}, max_steps=4, trials=2,
                            pruner="none", epochs=2)
    with pytest.raises(PretuneError, match=r"started from a different recipe \(train.epochs: 1"):
        pretune.search(changed, tmp_path / "s")


def test_a_pruned_trial_stops_at_that_evaluation(tiny_model_dir, sentiment_csv, tmp_path):
    class PruneSecondOn(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number >= 1 and bool(trial.intermediate_values)

    recipe = search_recipe(tiny_model_dir, sentiment_csv, {"train.optimizer.lr": LR}, trials=2, evaluations=4)
    study = pretune.search(recipe, tmp_path / "p", pruner=PruneSecondOn())
    assert states(study) == ["COMPLETE", "PRUNED"]
    pruned = Run(study.path / "trial-0001")
    steps = [r["step"] for r in pruned.history if r["split"] == "validation"]
    assert pruned.recipe.train.evaluations == 4 and pruned.recipe.train.eval_every_steps is None
    every = math.ceil(pruned.metrics["train"]["total_steps"] / 4)  # the loop's own interval
    assert steps == [every], "cancelled at its first evaluation, not at its epoch end"
    assert pruned.metrics["status"] == "cancelled" and not (pruned.path / "model").exists()
    assert study.trials.loc[1, "pruned_at"] == 1


def test_several_metrics_give_a_pareto_front(tiny_model_dir, sentiment_csv, tmp_path):
    space = {"train.optimizer.lr": LR, "train.batch_size": {"choice": [16, 48]}}
    recipe = search_recipe(tiny_model_dir, sentiment_csv, space, max_steps=6, trials=2, sampler="nsga2",
                           metric=["loss", "train_seconds"])
    study = pretune.search(recipe, tmp_path / "mo")
    assert study.summary["directions"] == ["minimize", "minimize"]
    front = study.pareto_front
    assert front and {"loss", "train_seconds"} == set(front[0]["values"])
    values = [(t.values[0], t.values[1]) for t in study.optuna.get_trials() if t.values]
    for f in front:  # nobody dominates a front member
        mine = (f["values"]["loss"], f["values"]["train_seconds"])
        assert not any(v[0] <= mine[0] and v[1] <= mine[1] and v != mine for v in values)
    assert not (study.path / "best.yaml").exists() and (study.path / "plots" / "pareto_front.png").is_file()


def test_cli_bad_space_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "r.yaml").write_text("search:\n  space:\n    train.optimizer.lr: {loguniform: [1.0e-3, 1.0e-5]}\n")
    proc = subprocess.run([sys.executable, "-m", "pretune", "search", tmp_path / "r.yaml", "--out", tmp_path / "s"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "search.space.train.optimizer.lr: empty or inverted range" in proc.stderr
    assert not (tmp_path / "s").exists(), "nothing started"


@pytest.mark.e2e
def test_example_search_on_a_slice_of_the_real_data(tmp_path):
    """examples/search.yaml as shipped, on a slice small enough for a test: 4 trials of MiniLM on
    Rotten Tomatoes. At 320 reviews a trial barely moves off the majority class, so this checks the
    machinery on the real model and data (runs, results, best.yaml), not the learning."""
    example = Path(__file__).resolve().parents[1] / "examples" / "search.yaml"
    study = pretune.search(example, tmp_path / "rt", trials=4, overrides=[
        "data.max_train_samples=320", "data.max_eval_samples=120", "data.max_length=40",
        "search.startup_trials=2", "search.evaluations=2"])
    trials = study.optuna.get_trials()
    assert len(trials) == 4 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    assert 0.5 <= study.best_trial["values"]["accuracy"] <= 1.0
    assert study.best_recipe.train.optimizer.lr == pytest.approx(study.best_trial["params"]["train.optimizer.lr"])
    assert (Path(study.best_trial["run"]) / "model" / "config.json").is_file()


def test_the_closing_table_names_columns_by_their_shortest_unique_tail():
    from pretune.cli.search_cmd import _short_names

    columns = ["number", "accuracy", "train.optimizer.lr", "train.schedule.name", "strategy.name", "strategy.decay"]
    assert _short_names(columns) == ["number", "accuracy", "lr", "schedule.name", "strategy.name", "decay"]


def test_a_model_choice_is_searched_and_the_page_plots_metric_against_size(tiny_model_dir, sentiment_csv,
                                                                          tmp_path):
    """`model.source: {choice: [...]}` in the space: each trial fine-tunes its candidate, trials.csv
    records each one's size, the best recipe names the winner, and the study page plots the metric
    against the candidates' parameters."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    wider = tmp_path / "wider-bert"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=48, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=96, max_position_embeddings=128)).save_pretrained(wider)
    tokenizer.save_pretrained(wider)
    space = {"model.source": {"choice": [str(tiny_model_dir), str(wider)]}}
    recipe = search_recipe(tiny_model_dir, sentiment_csv, space, max_steps=6, trials=2, sampler="grid",
                           metric="loss", pruner="none")
    recipe["report"] = True
    study = pretune.search(recipe, tmp_path / "models")
    table = study.trials
    assert list(table["state"]) == ["COMPLETE"] * 2
    assert set(table["model.source"]) == {str(tiny_model_dir), str(wider)}
    sizes = dict(zip(table["model.source"], table["model_parameters"], strict=True))
    assert sizes[str(wider)] != sizes[str(tiny_model_dir)] and min(sizes.values()) > 0
    winner = table.loc[table["loss"].idxmin(), "model.source"]
    assert study.best_recipe.model.source == winner
    page = (study.path / "report.html").read_text()
    assert 'id="size_vs_metric"' in page or "size_vs_metric" in page
    assert "model_parameters" in page


def test_a_storage_outage_is_waited_out_then_one_line(monkeypatch):
    """A dropped connection (the database restarting) is retried; one that stays down ends in one
    line naming the storage, not a traceback."""
    import sqlalchemy

    from pretune.search import workers

    monkeypatch.setattr(workers.time, "sleep", lambda _s: None)
    plan = type("P", (), {"url": "postgresql://u:secret@db.example:5432/s"})()
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return "done"

    assert workers._through_outages(flaky, plan) == "done" and len(calls) == 3

    def down():
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.")

    with pytest.raises(PretuneError, match=r"lost the study storage .*db\.example.*run the same command") as e:
        workers._through_outages(down, plan)
    assert "secret" not in str(e.value) and "\n" not in str(e.value)


def test_a_trial_marked_with_its_worker_has_a_heartbeat_before_optunas_thread_beats(tmp_path, tiny_model_dir,
                                                                                       sentiment_csv):
    """A worker killed after the objective marked its trial and before optuna's heartbeat thread
    first beat left a trial that neither check saw: a resumed pipeline waited on it (CI hang).
    The objective beats before it marks: past the grace, optuna's own stale check finds it."""
    import time

    from pretune.recipe import Recipe
    from pretune.search.objective import Objective, SurplusTrial

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()  # no heartbeat thread runs: as if it were killed before its first beat
    objective = Objective(Recipe.from_dict(tiny_recipe(tiny_model_dir, sentiment_csv)), None, ["loss"], tmp_path,
                          "best", 2, lambda t: True, [])
    with pytest.raises(SurplusTrial):  # returns right after the mark
        objective(trial)
    assert "worker" in study.trials[0].user_attrs and study.trials[0].user_attrs["started_as"] == 0
    time.sleep(2.1)  # the database stamps beats in whole seconds
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    """optuna's stale check reads heartbeats only: a trial created by a worker killed before its
    first heartbeat stayed RUNNING, and the other workers waited for it forever (seen in CI)."""
    import time
    from types import SimpleNamespace

    from optuna.trial import TrialState

    from pretune.search import workers

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive.set_user_attr("started_as", alive.number)  # the objective ran: its heartbeat is optuna's to judge
    plan = SimpleNamespace(cfg=SimpleNamespace(grace_seconds=0.2, heartbeat_seconds=1, retries=2))
    running = study.get_trials(states=(TrialState.RUNNING,))
    workers._fail_unstarted(study, running, plan)  # within the grace: nothing yet
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 2
    time.sleep(0.3)
    workers._fail_unstarted(study, running, plan)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].params == {"x": dead.params["x"]} and trials[2].system_attrs["failed_trial"] == dead.number


def test_a_retry_taken_by_a_worker_killed_before_its_objective_ran_is_retried_again(tmp_path):
    """optuna's retry of a dead worker's trial copies that trial's user attributes, the objective's
    mark included: a retry popped by a worker that died before running it looked started, had no
    heartbeat, and the study waited on it forever (CI: a resumed pipeline hung in its search)."""
    import time
    from types import SimpleNamespace

    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    from pretune.search import workers

    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    first = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    first.set_user_attr("worker", "host:1")
    first.set_user_attr("started_as", first.number)  # its objective ran, then its worker died
    storage.set_trial_state_values(first._trial_id, TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback(max_retry=3)(study, storage.get_trial(first._trial_id))
    popped = study.ask()  # the queued retry, taken by a worker killed at once
    assert popped.number == 1 and study.trials[1].user_attrs["started_as"] == 0  # inherited
    plan = SimpleNamespace(cfg=SimpleNamespace(grace_seconds=0.2, heartbeat_seconds=1, retries=3))
    time.sleep(0.3)
    workers._fail_unstarted(study, study.get_trials(states=(TrialState.RUNNING,)), plan)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING]
    assert trials[2].params == first.params and trials[2].system_attrs["retry_history"] == [0, 1]
