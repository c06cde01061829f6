"""Planning a study: the recipe's search section checked and resolved (space, metrics and their
directions, sampler, pruner, budget, storage, name) before any trial starts; a study joined by a
second command (or machine) checked to be searching the same thing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from pretune.errors import PretuneError
from pretune.evaluate import LOWER_IS_BETTER
from pretune.recipe import Recipe, RecipeLike, SearchConfig
from pretune.search import results
from pretune.search.objective import TRAIN_SECONDS
from pretune.search.pruners import pruners
from pretune.search.samplers import SINGLE_OBJECTIVE, samplers
from pretune.search.space import Space, parse_space, trial_base
from pretune.search.storage import shown, storage_url
from pretune.tasks import create_task

# Keys that may change between two commands joining one study; any other difference is refused.
RUNTIME_KEYS = {"trials", "timeout", "workers", "storage", "study", "keep", "heartbeat_seconds",
                "grace_seconds", "retries"}


@dataclass
class SearchPlan:
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
        return results.StudyInfo(self.path, trial_base(self.recipe),
                                 self.space, self.metrics, self.directions, settings)



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


def plan_search(base: Recipe, path: Path, sampler=None, pruner=None) -> SearchPlan:
    """The study the recipe describes, checked; raises PretuneError naming the first problem."""
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
    return SearchPlan(base, cfg, path, space, metrics, directions, budget, storage_url(cfg, path),
                 cfg.study or path.resolve().name, timeout)


def _directions(cfg: SearchConfig, metrics: list[str]) -> list[str]:
    given = [cfg.direction] * len(metrics) if isinstance(cfg.direction, str) else list(cfg.direction)
    if len(given) != len(metrics):
        raise PretuneError(f"search.direction has {len(given)} entries for {len(metrics)} metrics")
    return [("minimize" if m in LOWER_IS_BETTER else "maximize") if d == "auto" else d
            for d, m in zip(given, metrics, strict=True)]


def check_same_study(study: optuna.Study, plan: SearchPlan) -> None:
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


