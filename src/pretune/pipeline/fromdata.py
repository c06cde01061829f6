"""A pipeline's recipe from what the user handed over: a data file or folder (with `--label`,
`--text`), or a recipe; a preset beneath it and a time limit on top.

`pretune pipeline reviews.csv --label sentiment --time-limit 15m` becomes the recipe below, every
inferred fact printed as one line and written into it, so that `pretune pipeline DIR/recipe.yaml`
runs the same pipeline without inferring anything:

    preset (pipeline/presets/NAME.yaml) < data: inferred from the file < the recipe / --set
"""

from __future__ import annotations

from pathlib import Path

from pretune.errors import PretuneError
from pretune.pipeline import presets
from pretune.recipe import DataConfig, Recipe, RecipeLike, edit, parse_overrides, task_facts


def request(recipe: RecipeLike | None, *, label: str | None = None, text: str | None = None,
            preset: str | None = None, time_limit: str | float | None = None,
            overrides: list[str] | None = None, say=print) -> dict | None:
    """The recipe as written (a dict) for a data path or a recipe with a preset or a time limit;
    None when the recipe needs none of this (the pipeline then reads it as it always did)."""
    from pretune.data.infer import infer, is_data

    data = isinstance(recipe, (str, Path)) and is_data(recipe)
    if not data and (label or text):
        raise PretuneError("--label and --text name the columns of a data file; the first argument is a recipe "
                           "(set data.label_column / data.text_column in it instead)")
    if not data and preset is None and time_limit is None and not _unplanned_limit(recipe, overrides):
        return None
    if data:
        inferred = infer(recipe, label, text)
        for line in inferred.facts:
            say(f"inferred: {line}")
        name = preset or presets.DEFAULT
        raw = presets.merged(presets.load_preset(name, inferred.inputs), {"data": inferred.data})
        say(f"preset: {name} ({presets.describe(name)})")
        raw = _without_unmeasurable_budget(raw, say)
        raw["pipeline"] = {**raw.get("pipeline", {}), "preset": name}
    else:
        raw = _as_written(recipe if recipe is not None else {})
        if preset is not None:
            inputs = task_facts(str(raw.get("data", {}).get("task") or DataConfig().task)).inputs
            raw = presets.merged(presets.load_preset(preset, inputs), raw)  # the recipe's own keys win
            raw.setdefault("pipeline", {})["preset"] = preset
    if time_limit is not None:
        raw.setdefault("pipeline", {})["time_limit"] = time_limit
    edit(raw, parse_overrides(overrides))
    Recipe.from_dict(raw)  # a bad key or value fails here, naming it
    return raw


def _unplanned_limit(recipe: RecipeLike | None, overrides: list[str] | None) -> bool:
    """A recipe (with its --set) whose own `pipeline.time_limit` has not been planned yet (a user's
    recipe, not one saved by a planned pipeline)."""
    if recipe is None and not overrides:
        return False
    timed = Recipe.from_dict(_as_written(recipe if recipe is not None else {}, overrides)).pipeline
    return timed.time_limit is not None and not timed.planned


def _as_written(recipe: RecipeLike, overrides: list[str] | None = None) -> dict:
    from pretune.pipeline.plan import _written

    return _written(recipe, overrides)


def default_out(recipe: RecipeLike | None) -> Path:
    name = Path(recipe).name.split(".")[0] if isinstance(recipe, (str, Path)) else "recipe"
    return Path("runs") / f"pipeline-{name}"


def _without_unmeasurable_budget(raw: dict, say) -> dict:
    """A preset's accuracy budget, kept only for a task that reports accuracy (a token-tagging or
    regression task would be refused by the plan's check); its best weights by the task's headline."""
    from pretune.tasks import create_task

    task = create_task(Recipe.from_dict({"data": {"task": raw["data"]["task"]}}).data)
    if "accuracy" in task.metric_names:
        return raw
    if raw.get("compress", {}).pop("max_drop", None) is not None:
        say(f"preset: compress.max_drop left out: a {task.name} task reports no accuracy (every variant is "
            f"listed, the fine-tuned model released)")
    if raw.get("train", {}).get("keep_best") == "accuracy":
        raw["train"]["keep_best"] = task.headline
        say(f"preset: train.keep_best: {task.headline} (the task's headline metric)")
    return raw
