"""What a pipeline will do, settled and checked before any work: which stages run (the recipe's
sections say so), where each writes, and whether the stages can work together.

A stage runs when its section is written in the recipe: `search:` (a study first, the fit takes
its best trial's recipe) and `compress:` (a tree of variants of the fitted model). A Recipe fills
every section with defaults, so "written" is read from pydantic's `model_fields_set`, and the
pipeline directory keeps its recipe as written (`exclude_unset`), so a resume sees the same
sections.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pretune import runs
from pretune.errors import PretuneError
from pretune.recipe import Recipe, RecipeLike, edit, flatten, parse_overrides, read_yaml

STAGES = ("check", "pretrain", "search", "fit", "compress", "report", "release")
OPTIONAL = {"pretrain", "search", "compress"}  # the others always run
STATE = runs.PIPELINE
# Where each stage writes, inside the pipeline directory.
OUTPUTS = {"check": runs.CHECK, "pretrain": "pretrain",
           "search": "search", "fit": "fit", "compress": "compress", "report": runs.REPORT, "release": "model"}


@dataclass
class Plan:
    """A checked pipeline: its recipe (sections as written), directory and stages in order."""

    recipe: Recipe
    path: Path
    stages: list[str]
    fit_overrides: list[str] = field(default_factory=list)
    rerun: tuple[str, ...] = ()  # finished stages to run again: the recipe changed only what they read

    def output(self, stage: str) -> Path:
        return self.path / OUTPUTS[stage]

    @property
    def written(self) -> dict:
        """The recipe as written: only the keys given (what recipe.yaml of the directory holds)."""
        return self.recipe.model_dump(mode="json", exclude_unset=True)


def plan(recipe: RecipeLike | None = None, out: str | Path | None = None, *, resume: str | Path | None = None,
         overrides: list[str] | None = None, fit_overrides: list[str] | None = None) -> Plan:
    """The pipeline to run or continue; raises PretuneError, before any work, on a recipe whose
    stages cannot work together, or on a directory started from another recipe."""
    if resume is not None:
        if recipe is not None or overrides or fit_overrides:
            raise PretuneError("--resume takes the recipe saved in the pipeline directory; give no other recipe")
        path = Path(resume)
        if not (path / runs.RECIPE).is_file() or not (path / STATE).is_file():
            raise PretuneError(f"{path} is not a pretune pipeline directory (no {STATE} and {runs.RECIPE})")
        saved = runs.read_pipeline(path)
        return _checked(Recipe.from_dict(read_yaml(path / runs.RECIPE)), path, saved.get("fit_overrides", []))
    written = _written(recipe if recipe is not None else {}, overrides)
    base = Recipe.from_dict(written)
    path = Path(out) if out else default_dir(recipe)
    result = _checked(base, path, list(fit_overrides or []))
    refuse_other_directory(path)
    if (path / runs.RECIPE).is_file():  # written after pipeline.json: both are there
        # The same command again continues; a different recipe would mix two pipelines' stages.
        saved = read_yaml(path / runs.RECIPE)
        state = runs.read_pipeline(path)
        changed = differences(saved, result.written)
        if state.get("fit_overrides", []) != result.fit_overrides:
            changed.append("--fit-set")
        if changed and set(changed) <= BUDGET_KEYS:
            # A new accuracy budget on a pipeline that has its variants: the compression chooses
            # again among them (finished nodes are reused), then the report and the release.
            result.rerun = ("compress", "report", "release")
        elif changed:
            raise PretuneError(f"{path} holds a pipeline started from a different recipe ({', '.join(changed[:5])}"
                               f"{' ...' if len(changed) > 5 else ''} differ); use --resume {path} to continue it, "
                               f"or another --out")
    return result


BUDGET_KEYS = {"compress.max_drop"}  # what a finished pipeline takes again: compress chooses anew


def differences(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two recipe dicts (a key absent on one side counts)."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in fa.keys() | fb.keys() if k not in fa or k not in fb or fa[k] != fb[k])


def refuse_other_directory(path: Path) -> None:
    """--out naming a fit run, a study or a compression: a pipeline would write its stages into it."""
    if (path / runs.RECIPE).is_file() and not (path / STATE).is_file():
        raise PretuneError(f"--out {path} holds a run ({runs.RECIPE} without {STATE}), not a pipeline; give "
                           f"another --out")
    for name, kind in ((runs.METRICS, "run"), (runs.STUDY, "study"), (runs.COMPRESSION, "compression")):
        if (path / name).exists():
            raise PretuneError(f"--out {path} holds a {kind} ({name}), not a pipeline; give another --out")


def default_dir(recipe: RecipeLike | None) -> Path:
    """Deterministic, so that the same command run again continues the same pipeline."""
    name = Path(recipe).stem if isinstance(recipe, (str, Path)) else "recipe"
    return Path("runs") / f"pipeline-{name}"


def _written(recipe: RecipeLike, overrides: list[str] | None) -> dict:
    """The recipe as a dict of what was written (YAML, dict or the set fields of a Recipe)."""
    if isinstance(recipe, (str, Path)):
        raw = read_yaml(recipe)
    elif isinstance(recipe, Recipe):
        raw = recipe.model_dump(mode="json", exclude_unset=True)
    else:
        raw = copy.deepcopy(recipe)
    edit(raw, parse_overrides(overrides))
    Recipe.from_dict(raw)  # a bad key fails here, naming it
    return json.loads(json.dumps(raw))  # YAML-typed values (tuples, paths) as they are saved


def _checked(recipe: Recipe, path: Path, fit_overrides: list[str]) -> Plan:
    stages = [s for s in STAGES if s not in OPTIONAL or s in recipe.model_fields_set]
    result = Plan(recipe, path, stages, fit_overrides)
    if fit_overrides:
        recipe.updated(parse_overrides(fit_overrides))  # the final fit's recipe must be valid too
    check(result)
    return result


def check(p: Plan) -> None:
    """Refuse a recipe whose stages cannot work together, naming the first problem."""
    from pretune.tasks import create_task

    recipe = p.recipe
    task = create_task(recipe.data)
    if "search" in p.stages:
        from pretune.search.study import plan_search

        searched = plan_search(recipe, p.output("search"))
        if len(searched.metrics) > 1:
            raise PretuneError(f"pipeline: search.metric names {len(searched.metrics)} metrics, a Pareto front with "
                               f"no single best recipe to fit; search one metric")
    if "compress" in p.stages:
        cfg = recipe.updated(parse_overrides(p.fit_overrides)).compress
        # The same checks `pretune compress` makes, before the fit: the fit will give a torch model.
        from pretune.compress.steps import TORCH
        from pretune.compress.tree import check_compression

        check_compression(cfg, task, TORCH)


def save(p: Plan, state: dict) -> None:
    """The state, then (once) the recipe as written: a directory with a recipe.yaml is a
    pipeline's, and its pipeline.json (the fit overrides) is already there."""
    from pretune import atomic

    atomic.write_json(p.path / STATE, state)
    target = p.path / runs.RECIPE
    if not target.is_file() or (p.rerun and read_yaml(target) != p.written):
        atomic.write_text(target, yaml.safe_dump(p.written, sort_keys=False))
