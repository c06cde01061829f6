"""The search section checked before any trial: spaces, names, metrics, grids, storage; and the
sampler / pruner registries' contract on a synthetic objective (no fits, milliseconds)."""

import math

import optuna
import pytest

from pretune.errors import PretuneError
from pretune.recipe import Recipe
from pretune.search.objective import ReportCallback
from pretune.search.pruners import create_pruner, pruners
from pretune.search.results import StudyInfo, edge_warnings
from pretune.search.samplers import create_sampler, samplers
from pretune.search.space import parse_space
from pretune.search.storage import open_storage
from pretune.search.study import _plan, parse_duration
from pretune.train.callbacks import CancelTraining

SPACE = {
    "train.optimizer.lr": {"loguniform": [1.0e-4, 1.0e-2]},
    "train.batch_size": {"int": [8, 32], "step": 8},
    "strategy.name": {"choice": ["full", "llrd", "lora"]},
    "strategy.decay": {"uniform": [0.6, 1.0], "when": {"strategy.name": "llrd"}},
    "strategy.lora.rank": {"choice": [4, 8], "when": {"strategy.name": ["lora"]}},
    "train.optimizer.betas": {"choice": [[0.9, 0.999], [0.9, 0.98]]},
}


def recipe_with(space=None, **search):
    return Recipe.from_dict({"search": {"space": SPACE if space is None else space, **search}})


def plan(space=None, **search):
    return _plan(recipe_with(space, **search), __import__("pathlib").Path("unused-study"))


@pytest.mark.parametrize("space, message", [
    ({"train.optimizer.lrr": {"uniform": [0.1, 0.2]}},
     "search.space: unknown key 'train.optimizer.lrr'; train.optimizer has: name, lr"),
    ({"train.batch_size": {"int": [32, 8]}}, "empty or inverted range [32, 8]"),
    ({"train.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-3]}}, "empty or inverted range"),
    ({"train.optimizer.lr": {"loguniform": [0, 1.0e-3]}}, "loguniform needs low > 0"),
    ({"strategy.decay": {"uniform": [0.5, 0.9], "when": {"strategy.name": "llrd"}}},
     "`when` names 'strategy.name', which is not another key of the space"),
    ({"strategy.name": {"choice": ["full", "llrd"]},
      "strategy.decay": {"uniform": [0.5, 0.9], "when": {"strategy.name": "lora"}}},
     "`when` strategy.name='lora' is never searched"),
    ({"train.batch_size": {"choice": [16, 0]}}, "search.space.train.batch_size: value 0 is refused"),
    ({"train.optimizer.lr": {"uniform": [0.1, 0.2], "choice": [1]}}, "give exactly one of"),
    ({"search.trials": {"choice": [1, 2]}}, "the search section itself cannot be searched"),
    ({"train.epochs": {"uniform": [1, 2], "step": 5}}, "step 5.0 is wider than the range"),
    ({}, "search.space is empty"),
])
def test_bad_spaces_fail_before_any_trial(space, message):
    with pytest.raises(PretuneError) as e:
        parse_space(recipe_with(space))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("search, message", [
    ({"sampler": "anneal"}, "unknown sampler 'anneal'; known: cmaes, gp, grid, nsga2, qmc, random, tpe"),
    ({"pruner": "patient"}, "unknown pruner 'patient'; known: asha, hyperband, median, none"),
    ({"metric": "auc"}, "search.metric 'auc' is not a sequence-classification metric"),
    ({"metric": ["accuracy", "train_seconds"], "sampler": "cmaes"}, "sampler 'cmaes' optimises one metric"),
    ({"metric": ["accuracy", "train_seconds"], "direction": ["maximize"]}, "search.direction has 1 entries"),
    ({"timeout": "soon"}, "search.timeout 'soon' is not a duration"),
    ({"sampler": "grid", "trials": 20}, "a grid needs `step` on a uniform range or a `choice`"),
])
def test_bad_search_settings_fail_before_any_trial(search, message):
    with pytest.raises(PretuneError) as e:
        plan(**search)
    assert message in str(e.value)


def test_grid_larger_than_trials_is_an_error_and_counts_conditional_points():
    space = {"train.batch_size": {"int": [8, 24], "step": 8},  # 3 values
             "strategy.name": {"choice": ["full", "llrd"]},
             "strategy.decay": {"uniform": [0.6, 1.0], "step": 0.2, "when": {"strategy.name": "llrd"}}}  # 3
    assert parse_space(recipe_with(space)).grid_size() == 3 * (1 + 3)
    with pytest.raises(PretuneError, match="the grid has 12 points but --trials is 10"):
        plan(space, sampler="grid", trials=10)
    assert plan(space, sampler="grid", trials=30).budget == 12


def test_directions_metric_defaults_and_durations():
    p = plan(metric=["f1_macro", "loss", "train_seconds"], pruner="none")
    assert p.directions == ["maximize", "minimize", "minimize"]
    assert plan().metrics == ["accuracy"] and plan(direction="minimize").directions == ["minimize"]
    assert [parse_duration(v) for v in ("90s", "30m", "2h", 45, None)] == [90, 1800, 7200, 45, None]


def test_space_saved_as_written_and_reloaded():
    recipe = recipe_with()
    assert Recipe.from_dict(__import__("yaml").safe_load(recipe.to_yaml())) == recipe
    assert "int:" in recipe.to_yaml() and "int_:" not in recipe.to_yaml()


def _synthetic(space):
    """An objective with a known optimum: lr near 1e-3, batch 16; lists become values."""
    def objective(trial):
        p = space.sample(trial)
        assert isinstance(p["train.optimizer.betas"], list)
        assert ("strategy.decay" in p) == (p["strategy.name"] == "llrd")
        assert ("strategy.lora.rank" in p) == (p["strategy.name"] == "lora")
        assert 1e-4 <= p["train.optimizer.lr"] <= 1e-2 and p["train.batch_size"] in (8, 16, 24, 32)
        return abs(math.log10(p["train.optimizer.lr"]) + 3) + abs(p["train.batch_size"] - 16) / 16
    return objective


@pytest.mark.parametrize("name", samplers.available())
def test_sampler_contract_seeded_conditional_space(name):
    space_cfg = dict(SPACE)
    if name == "grid":  # a grid needs discrete ranges
        space_cfg["train.optimizer.lr"] = {"choice": [1.0e-4, 1.0e-3]}
        space_cfg["strategy.decay"] = {"uniform": [0.6, 1.0], "step": 0.4, "when": {"strategy.name": "llrd"}}
    recipe = recipe_with(space_cfg, startup_trials=2)
    space = parse_space(recipe)
    params = []
    for _ in range(2):
        study = optuna.create_study(sampler=create_sampler(name, 3, recipe.search))
        study.optimize(_synthetic(space), n_trials=100 if name == "grid" else 6)
        params.append([t.params for t in study.trials])
    assert params[0] == params[1], "same seed, same trials"
    assert len({str(p) for p in params[0]}) > 1
    if name == "grid":  # each point of the conditional grid once, then the study stops
        assert len(params[0]) == space.grid_size() == 2 * 4 * (1 + 2 + 2) * 2
        assert len({str(sorted(p.items())) for p in params[0]}) == len(params[0])


@pytest.mark.parametrize("prune_from", [1, 2, 5])
@pytest.mark.parametrize("name", pruners.available())
def test_pruner_contract_a_weak_trial_is_cancelled_at_its_evaluation(name, prune_from):
    """Through the callback the fit runs: reports go in at evaluation 1..N; a trial far worse
    than the others at every evaluation is cancelled by every pruner but `none`, never before
    `search.prune_from` (past the last evaluation: never)."""
    cfg = recipe_with(startup_trials=2, evaluations=4, prune_from=prune_from).search
    # Named: hyperband puts trials in brackets by a hash of the study name and trial number.
    study = optuna.create_study(study_name="contract", direction="maximize", pruner=create_pruner(name, cfg))

    class State:
        total_steps, last_loss = 20, 0.5

    def run_trial(level: float) -> int | None:
        trial = study.ask()
        callback = ReportCallback(trial, "accuracy", cfg.evaluations)
        for step in range(5, 21, 5):
            state = State()
            state.step, state.last_eval = step, {"accuracy": level + step / 100}
            try:
                callback.on_evaluate(state)
            except CancelTraining:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return callback.pruned_at
        study.tell(trial, level + 0.2)
        return None

    for level in (0.7, 0.75, 0.8, 0.72, 0.74, 0.78, 0.71, 0.76):
        assert run_trial(level) is None or name != "none"
    pruned_at = [run_trial(0.1) for _ in range(2)]
    if name == "none" or prune_from > cfg.evaluations:
        assert pruned_at == [None, None]
    else:  # median: the first evaluation it may; asha: its rungs; hyperband: its brackets' first rungs
        allowed = {"median": {prune_from}, "asha": {prune_from, 3 * prune_from},
                   "hyperband": {prune_from, 3 * prune_from}}[name]
        assert all(p in allowed for p in pruned_at), f"{name} let weaker trials go on: {pruned_at}"


def test_a_non_finite_loss_fails_the_trial():
    study = optuna.create_study(direction="maximize")
    callback = ReportCallback(study.ask(), "accuracy", 4)

    class State:
        step, total_steps, last_loss, last_eval = 5, 20, float("nan"), {"accuracy": 0.5}

    with pytest.raises(CancelTraining):
        callback.on_evaluate(State())
    assert "train loss became nan" in callback.failure


def test_edge_of_range_warning():
    recipe = recipe_with()
    info = StudyInfo(__import__("pathlib").Path("s"), {}, parse_space(recipe), ["accuracy"], ["maximize"], {})
    dists = {"train.optimizer.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "train.batch_size": optuna.distributions.IntDistribution(8, 32, step=8)}
    trial = optuna.trial.create_trial(params={"train.optimizer.lr": 1.1e-4, "train.batch_size": 16},
                                      distributions=dists, value=0.9)
    found = edge_warnings(info, trial)
    assert len(found) == 1 and "train.optimizer.lr = 0.00011 sits at the low edge of its range" in found[0]
    trial = optuna.trial.create_trial(params={"train.optimizer.lr": 1e-3, "train.batch_size": 32},
                                      distributions=dists, value=0.9)
    assert ["high edge" in w and "train.batch_size" in w for w in edge_warnings(info, trial)] == [True]


def test_unreachable_storage_names_the_host():
    cfg = recipe_with().search
    with pytest.raises(PretuneError) as e:
        open_storage("postgresql://u:secret@127.0.0.1:9/db", cfg)
    message = str(e.value)
    assert "cannot open the study storage at 127.0.0.1:9" in message and "secret" not in message
    with pytest.raises(PretuneError, match="is not a database URL"):
        open_storage("nowhere", cfg)
