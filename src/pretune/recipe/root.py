"""The whole Recipe: its sections, dotted overrides (`--set a.b=c`), and one-line errors."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from pretune.errors import PretuneError
from pretune.recipe.base import _Section
from pretune.recipe.compress import CompressConfig
from pretune.recipe.data import DataConfig, task_facts
from pretune.recipe.model import ModelConfig
from pretune.recipe.pipeline import PipelineConfig
from pretune.recipe.pretrain import PretrainConfig
from pretune.recipe.search import SearchConfig
from pretune.recipe.strategy import StrategyConfig
from pretune.recipe.tracking import TrackingConfig
from pretune.recipe.train import TrainConfig
from pretune.recipe.yaml_io import load_yaml, read_yaml


class Recipe(_Section):
    """Everything a run does. Build from YAML with `Recipe.load(path, overrides)`."""

    # numpy takes seeds in [0, 2**32): a negative one was a traceback from deep in a fit.
    seed: int = Field(42, ge=0, lt=2**32, description="seeds model init, data order and dropout")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    pretrain: PretrainConfig | None = Field(
        None, description="continued masked-language-model pretraining on unlabelled text before fine-tuning "
        "(`pretune adapt`; pipeline runs it first when set)")
    report: bool = Field(True, description="fit, search and compress write report.html into their directory")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)

    @model_validator(mode="after")
    def _task_defaults(self) -> Recipe:
        for dotted, value in self.task_defaults().items():
            *sections, key = dotted.split(".")
            node = self
            for name in sections:
                node = getattr(node, name)
            object.__setattr__(node, key, value)  # unset stays unset: a later dump leaves it out
        return self

    def task_defaults(self) -> dict[str, Any]:
        """The settings taken from the task's defaults because the recipe set none (dotted keys)."""
        applied = {}
        for dotted, value in task_facts(self.data.task).defaults.items():
            node: BaseModel = self
            for name in dotted.split("."):
                if name not in node.model_fields_set:
                    applied[dotted] = value
                    break
                node = getattr(node, name)
        return applied

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
        raw: dict[str, Any] = read_yaml(path) if path is not None else {}
        return cls.from_dict(edit(raw, parse_overrides(overrides)))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise PretuneError(f"invalid recipe: {_first_error(e)}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def updated(self, changes: Changes) -> Recipe:
        """A new, validated recipe with each dotted key set (`{"train.epochs": 1}`, or the pairs
        `parse_overrides(["train.epochs=1"])` gives); a key naming a section replaces it whole
        (`{"model.surgery": {}}`). What a task fills in by default (data columns) is filled
        again for the new values, as when the recipe was read. The one way to edit a Recipe by
        dotted key (`edit` does it for a recipe dict not yet validated)."""
        return Recipe.from_dict(edit(self.model_dump(mode="json", exclude_unset=True), changes))


Changes = Mapping[str, Any] | Iterable[tuple[str, Any]]


def edit(raw: dict[str, Any], changes: Changes) -> dict[str, Any]:
    """`raw` (a recipe dict as written, e.g. read from YAML) with each dotted key set in order, in
    place, and returned; every key checked against the Recipe first. Recipe.updated's editor."""
    for dotted, value in changes.items() if isinstance(changes, Mapping) else changes:
        keys = dotted.split(".")
        check_path(dotted)
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise PretuneError(f"{dotted!r}: {key!r} is not a section")
        node[keys[-1]] = value.model_dump(mode="json") if isinstance(value, BaseModel) else copy.deepcopy(value)
    return raw


def parse_overrides(items: list[str] | None) -> list[tuple[str, Any]]:
    """`--set a.b.c=value` items as (dotted key, value) pairs, in order; each value parsed as YAML
    (1e-4, true, [1,2]), an empty one as null."""
    pairs = []
    for item in items or []:
        if "=" not in item:
            raise PretuneError(f"--set expects section.key=value, got {item!r}")
        dotted, value = item.split("=", 1)
        dotted = dotted.strip()
        check_path(dotted)
        try:
            pairs.append((dotted, load_yaml(value, f"--set {dotted}") if value.strip() else None))
        except yaml.YAMLError:
            pairs.append((dotted, value))
    return pairs


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested recipe dict as {dotted key: value} (an empty section is a value)."""
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= flatten(value, dotted + ".")
        else:
            out[dotted] = value
    return out


def check_path(dotted: str, where: str = "") -> None:
    """A dotted key names a field of the Recipe (sections in between); else one line, prefixed
    with `where` (e.g. "search.space: ")."""
    keys = dotted.split(".")
    model: type[BaseModel] = Recipe
    for i, key in enumerate(keys):
        fields = model.model_fields
        if key not in fields:
            section = ".".join(keys[:i]) or "recipe"
            raise PretuneError(f"{where}unknown key {'.'.join(keys[: i + 1])!r}; {section} has: {', '.join(fields)}")
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i < len(keys) - 1:
            raise PretuneError(f"{where}{'.'.join(keys[: i + 1])!r} is a value, not a section")


def validated(section: type[BaseModel], where: str, **values) -> BaseModel:
    """A config section built from a verb's options (`measure(threads=0)`), its problem one line."""
    try:
        return section(**values)
    except ValidationError as e:
        raise PretuneError(f"{where}: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc!r}"
    return f"{loc}: {err['msg']} (got {err.get('input')!r})".replace("\n", " ")


RecipeLike = Recipe | dict | str | Path


def as_recipe(recipe: RecipeLike, overrides: list[str] | None = None) -> Recipe:
    """A Recipe from a Recipe, a dict or a YAML path, with `section.key=value` overrides on top."""
    if isinstance(recipe, (str, Path)):
        return Recipe.load(recipe, overrides)
    if isinstance(recipe, Recipe) and not overrides:
        return recipe
    # Recipe.updated keeps what the recipe left to defaults a default, so that `--set data.task=...`
    # on a bare Recipe() still gets that task's columns and settings.
    if isinstance(recipe, Recipe):
        return recipe.updated(parse_overrides(overrides))
    return Recipe.from_dict(edit(copy.deepcopy(recipe), parse_overrides(overrides)))
