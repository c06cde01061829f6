"""The `search` verb: check everything, open (or join) the study, run trials in one or more local
worker processes, write the results, and return a `Study`.

The budget, `search.trials`, counts trials run to an end (complete, pruned, or failed by their own
error) plus those running or queued; a trial whose worker died does not count, its retry does.
Each worker checks it before every trial, so N workers on M machines stop at the same total.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from pretune import atomic, runs
from pretune.errors import PretuneError
from pretune.evaluate import LOWER_IS_BETTER
from pretune.predictor import Run
from pretune.recipe import Recipe, RecipeLike, SearchConfig, as_recipe
from pretune.search import results
from pretune.search.objective import TRAIN_SECONDS, Objective, SurplusTrial
from pretune.search.pruners import create_pruner, pruners
from pretune.search.samplers import SINGLE_OBJECTIVE, create_sampler, samplers
from pretune.search.space import Space, parse_space
from pretune.search.storage import open_storage, open_study, shown, storage_url
from pretune.tasks import create_task

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Keys that may change between two commands joining one study; any other difference is refused.
RUNTIME_KEYS = {"trials", "timeout", "workers", "storage", "study", "keep", "heartbeat_seconds",
                "grace_seconds", "retries"}


class Study:
    """A finished (or running) study on disk: its trials, best trial, best run and best recipe."""

    def __init__(self, path: str | Path, study: optuna.Study | None = None):
        self.path = Path(path)
        if not (self.path / runs.RECIPE).is_file():
            raise PretuneError(f"{self.path} is not a pretune study directory (no {runs.RECIPE})")
        self._optuna = study

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r})"

    @property
    def summary(self) -> dict:
        return json.loads((self.path / results.STUDY).read_text())

    @property
    def optuna(self) -> optuna.Study:
        """The optuna study itself (its storage), for optuna's own tools."""
        if self._optuna is None:
            plan = _plan(Recipe.load(self.path / runs.RECIPE), self.path)
            self._optuna = optuna.load_study(study_name=plan.name, storage=open_storage(plan.url, plan.cfg))
        return self._optuna

    @property
    def trials(self):
        """Every trial as a table (pandas): parameters, state, metric(s), seconds, reason."""
        import pandas as pd

        return pd.read_csv(self.path / results.TRIALS)

    @property
    def best_trial(self) -> dict | None:
        return self.summary.get("best")

    @property
    def pareto_front(self) -> list[dict]:
        return self.summary.get("pareto_front", [])

    @property
    def warnings(self) -> list[str]:
        return self.summary.get("warnings", [])

    @property
    def best_recipe_path(self) -> Path:
        return self.path / results.BEST

    @property
    def best_recipe(self) -> Recipe:
        if not self.best_recipe_path.is_file():
            raise PretuneError(f"study {self.path} has no best trial yet (no {results.BEST})")
        return Recipe.load(self.best_recipe_path)

    @property
    def best_run(self) -> Run:
        best = self.best_trial
        if best is None:
            raise PretuneError(f"study {self.path} has no completed trial")
        return Run(best["run"])


@dataclass
class _Plan:
    """Everything checked, before any trial starts."""

    recipe: Recipe
    cfg: SearchConfig
    path: Path
    space: Space
    metrics: list[str]
    directions: list[str]
    budget: int
    url: str
    name: str
    timeout: float | None

    def info(self) -> results.StudyInfo:
        settings = {"sampler": self.cfg.sampler, "pruner": self.cfg.pruner, "budget": self.budget,
                    "storage": shown(self.url), "keep": self.cfg.keep}
        return results.StudyInfo(self.path, self.recipe.model_dump(mode="json", exclude={"search"}),
                                 self.space, self.metrics, self.directions, settings)


def search(
    recipe: RecipeLike = None, out: str | Path | None = None, *, resume: str | Path | None = None,
    overrides: list[str] | None = None, trials: int | None = None, timeout: str | float | None = None,
    sampler=None, pruner=None, storage: str | None = None, study: str | None = None,
    workers: int | None = None, keep: str | None = None, callbacks: list | None = None,
) -> Study:
    """Search the recipe's `search.space`; every trial is a Run under the study directory.

    Running the same command again (or `resume=STUDY_DIR`) joins the study: completed trials
    are kept and the budget counts them. `sampler` / `pruner` take a name or an optuna object;
    `callbacks` go to every trial's `fit` (with one worker, in this process).
    """
    if resume is not None:
        if recipe is not None:
            raise PretuneError("--resume takes the recipe saved in the study; give no other recipe")
        out = Path(resume)
        recipe = out / runs.RECIPE
        if not Path(recipe).is_file():
            raise PretuneError(f"{out} is not a pretune study directory (no {runs.RECIPE})")
    base = as_recipe(recipe if recipe is not None else Recipe(), overrides)
    given = {"trials": trials, "timeout": timeout, "storage": storage, "study": study, "workers": workers,
             "keep": keep, "sampler": sampler if isinstance(sampler, str) else None,
             "pruner": pruner if isinstance(pruner, str) else None}
    raw = base.model_dump(mode="json")
    raw["search"].update({k: v for k, v in given.items() if v is not None})
    base = Recipe.from_dict(raw)
    path = Path(out) if out else default_study_dir(recipe, base)
    plan = _plan(base, path, sampler, pruner)
    if (isinstance(sampler, BaseSampler) or isinstance(pruner, BasePruner) or callbacks) and plan.cfg.workers > 1:
        raise PretuneError("workers > 1 need sampler and pruner names, and no callbacks: objects stay in this process")

    path.mkdir(parents=True, exist_ok=True)
    storage_obj = open_storage(plan.url, plan.cfg)
    optuna_study = open_study(storage_obj, plan.name, plan.directions)
    _check_same_study(optuna_study, plan)
    atomic.write_text(path / runs.RECIPE, base.to_yaml())
    deadline = time.time() + plan.timeout if plan.timeout else None
    if plan.cfg.workers == 1:
        _work(plan, 0, deadline, sampler, pruner, storage_obj, callbacks)
    else:
        _spawn_workers(plan, deadline)
    info = plan.info()
    optuna_study = optuna.load_study(study_name=plan.name, storage=storage_obj)
    results.write_results(info, optuna_study, plan.cfg.keep)
    results.write_plots(info, optuna_study)
    return Study(path, optuna_study)


def default_study_dir(recipe: RecipeLike, base: Recipe) -> Path:
    """Deterministic, so that the same command run again joins the same study."""
    if isinstance(recipe, (str, Path)):
        name = Path(recipe).stem
    else:
        name = Path(base.data.train or base.data.source).stem.replace(":", "-")
    return Path("runs") / f"search-{name}"


def parse_duration(value: str | float | None) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
    if not match or float(match.group(1)) <= 0:
        raise PretuneError(f"search.timeout '{value}' is not a duration like 90s, 30m, 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def _plan(base: Recipe, path: Path, sampler=None, pruner=None) -> _Plan:
    cfg = base.search
    if cfg.seed is None:
        cfg = cfg.model_copy(update={"seed": base.seed})
    space = parse_space(base)
    metrics = [cfg.metric] if isinstance(cfg.metric, str) else list(cfg.metric)
    if not metrics:
        raise PretuneError("search.metric is an empty list")
    task = create_task(base.data)
    metrics = [task.headline if m == "auto" else m for m in metrics]
    known = (*task.metric_names, TRAIN_SECONDS)
    for m in metrics:
        if m not in known:
            raise PretuneError(f"search.metric '{m}' is not a {task.name} metric; known: {', '.join(known)}")
    if len(set(metrics)) != len(metrics):
        raise PretuneError(f"search.metric names a metric twice: {metrics}")
    directions = _directions(cfg, metrics)
    # A sampler or pruner given as an object is the caller's; a name is checked here.
    sampler_named, pruner_named = not isinstance(sampler, BaseSampler), not isinstance(pruner, BasePruner)
    if sampler_named:
        samplers.get(cfg.sampler)
    if pruner_named:
        pruners.get(cfg.pruner)
    if len(metrics) > 1:
        if sampler_named and cfg.sampler in SINGLE_OBJECTIVE:
            raise PretuneError(f"sampler '{cfg.sampler}' optimises one metric; for {len(metrics)} metrics use "
                               f"nsga2, tpe, gp, random, qmc or grid")
        # optuna prunes on one reported value: a study of several metrics runs every trial out.
        cfg = cfg.model_copy(update={"pruner": "none"})
    budget = cfg.trials
    if sampler_named and cfg.sampler == "grid":
        size = space.grid_size()
        if size > cfg.trials:
            raise PretuneError(f"the grid has {size} points but --trials is {cfg.trials}: raise --trials to "
                               f"{size} or search fewer values")
        budget = size
    timeout = parse_duration(cfg.timeout)
    return _Plan(base, cfg, path, space, metrics, directions, budget, storage_url(cfg, path),
                 cfg.study or path.resolve().name, timeout)


def _directions(cfg: SearchConfig, metrics: list[str]) -> list[str]:
    given = [cfg.direction] * len(metrics) if isinstance(cfg.direction, str) else list(cfg.direction)
    if len(given) != len(metrics):
        raise PretuneError(f"search.direction has {len(given)} entries for {len(metrics)} metrics")
    return [("minimize" if m in LOWER_IS_BETTER else "maximize") if d == "auto" else d
            for d, m in zip(given, metrics, strict=True)]


def _check_same_study(study: optuna.Study, plan: _Plan) -> None:
    """A study joined by a second command (or machine) must be searching the same thing."""
    raw = plan.recipe.model_dump(mode="json")
    raw["search"] = {k: v for k, v in raw["search"].items() if k not in RUNTIME_KEYS}
    saved = study.user_attrs.get("recipe")
    if saved is None:
        study.set_user_attr("recipe", raw)
        return
    if [d.name.lower() for d in study.directions] != plan.directions or saved != raw:
        where = _first_difference(saved, raw) or "metric directions"
        raise PretuneError(f"study '{plan.name}' in {shown(plan.url)} was started from a different recipe "
                           f"({where}); give another --study / --out, or the same recipe")


def _first_difference(a, b, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else f"{prefix.rstrip('.')}: {a!r} there, {b!r} here"


def _counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that use the budget: ended by themselves, running, or queued (a retry)."""
    return [t for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
            or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs
                and not t.user_attrs["fail_reason"].startswith(SurplusTrial.__name__))]


def _work(plan: _Plan, index: int, deadline: float | None, sampler=None, pruner=None, storage=None,
          callbacks: list | None = None) -> None:
    """One worker: run trials until the budget is used or the deadline passes."""
    storage = storage or open_storage(plan.url, plan.cfg)
    probe = optuna.load_study(study_name=plan.name, storage=storage)
    # A different stream per worker and per start, so neither parallel workers nor a resumed
    # study draw the points already drawn.
    seed = plan.cfg.seed + 1000 * index + len(probe.get_trials(deepcopy=False))
    study = open_study(storage, plan.name, plan.directions,
                       create_sampler(sampler or plan.cfg.sampler, seed, plan.cfg),
                       create_pruner(pruner or plan.cfg.pruner, plan.cfg))
    objective = Objective(plan.recipe, plan.space, plan.metrics, plan.path, plan.budget, plan.cfg.keep,
                          plan.cfg.evaluations, _counted, callbacks or [])
    info = plan.info()
    poll = min(2.0, plan.cfg.heartbeat_seconds)
    while deadline is None or time.time() < deadline:
        trials = study.get_trials(deepcopy=False)
        counted = _counted(trials)
        running = [t for t in counted if t.state == TrialState.RUNNING]
        waiting = [t for t in counted if t.state == TrialState.WAITING]
        if len(counted) - len(running) - len(waiting) >= plan.budget:
            break
        if len(counted) >= plan.budget and not waiting:
            # The rest run elsewhere: wait for them, or for their heartbeat to lapse (a retry).
            time.sleep(poll)
            optuna.storages.fail_stale_trials(study)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        results.write_results(info, study, plan.cfg.keep)


def _worker_main(recipe_yaml: str, path: str, index: int, threads: int, deadline: float | None) -> None:
    import torch

    torch.set_num_threads(threads)
    _work(_plan(Recipe.from_dict(yaml.safe_load(recipe_yaml)), Path(path)), index, deadline)


def _spawn_workers(plan: _Plan, deadline: float | None) -> None:
    """N local processes, the cores split between them (torch threads), so they do not fight."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // plan.cfg.workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(plan.recipe.to_yaml(), str(plan.path), i, threads, deadline),
                         name=f"pretune-search-worker-{i}") for i in range(plan.cfg.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    dead = [p for p in procs if p.exitcode]
    if dead:
        warnings.warn(f"{len(dead)} search worker(s) ended abnormally (exit codes "
                      f"{', '.join(str(p.exitcode) for p in dead)}); their trials were retried by the others",
                      stacklevel=2)
