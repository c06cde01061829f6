"""The `search` verb and its result: plan (search/plan.py), open or join the study, run the
workers (search/workers.py), write the results (search/results.py), and return a `Study`, which
reads a study directory back.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from pretune import atomic, runs
from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.recipe import Recipe, RecipeLike, as_recipe
from pretune.search import results
from pretune.search.plan import check_same_study, default_study_dir, parse_duration, plan_search
from pretune.search.storage import open_storage, open_study
from pretune.search.workers import spawn_workers, work

__all__ = ["Study", "default_study_dir", "parse_duration", "plan_search", "search"]

optuna.logging.set_verbosity(optuna.logging.WARNING)
_plan = plan_search  # the name tests and older callers use


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
        return runs.read_study(self.path)  # checked: a study directory may have been sent

    @property
    def optuna(self) -> optuna.Study:
        """The optuna study itself (its storage), for optuna's own tools."""
        if self._optuna is None:
            plan = plan_search(Recipe.load(self.path / runs.RECIPE), self.path)
            self._optuna = optuna.load_study(study_name=plan.name, storage=open_storage(plan.url, plan.cfg))
        return self._optuna

    @property
    def trials(self):
        """Every trial as a table (pandas): parameters, state, metric(s), seconds, reason."""
        return runs.read_trials(self.path, self.summary["metrics"])

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



def search(
    recipe: RecipeLike = None, out: str | Path | None = None, *, resume: str | Path | None = None,
    overrides: list[str] | None = None, trials: int | None = None, timeout: str | float | None = None,
    sampler=None, pruner=None, storage: str | None = None, study: str | None = None,
    workers: int | None = None, keep: str | None = None, callbacks: list | None = None, loss=None,
) -> Study:
    """Search the recipe's `search.space`; every trial is a Run under the study directory.

    Running the same command again (or `resume=STUDY_DIR`) joins the study: completed trials
    are kept and the budget counts them. `sampler` / `pruner` take a name or an optuna object;
    `callbacks` and `loss` (a callable or nn.Module) go to every trial's `fit` (with one worker,
    in this process).
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
    base = base.updated({f"search.{k}": v for k, v in given.items() if v is not None})
    path = Path(out) if out else default_study_dir(recipe, base)
    plan = plan_search(base, path, sampler, pruner)
    if (isinstance(sampler, BaseSampler) or isinstance(pruner, BasePruner) or callbacks or loss is not None) \
            and plan.cfg.workers > 1:
        raise PretuneError("workers > 1 need sampler and pruner names, and no callbacks or loss object: objects "
                           "stay in this process (name an installed loss in train.loss.name instead)")

    path.mkdir(parents=True, exist_ok=True)
    storage_obj = open_storage(plan.url, plan.cfg)
    optuna_study = open_study(storage_obj, plan.name, plan.directions)
    check_same_study(optuna_study, plan)
    atomic.write_text(path / runs.RECIPE, base.to_yaml())
    deadline = time.time() + plan.timeout if plan.timeout else None
    if plan.cfg.workers == 1:
        work(plan, 0, deadline, sampler, pruner, storage_obj, callbacks, loss)
    else:
        spawn_workers(plan, deadline)
    info = plan.info()
    optuna_study = optuna.load_study(study_name=plan.name, storage=storage_obj)
    results.write_results(info, optuna_study, plan.cfg.keep)
    results.write_plots(info, optuna_study)
    return Study(path, optuna_study)


