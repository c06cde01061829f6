"""The `search.space` section: parse and check it, sample it in a trial, apply a sample to a recipe.

Every check runs before any trial starts: an unknown key, an empty or inverted range, a `when`
naming a key outside the space, a value the recipe refuses, or a grid larger than the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import yaml

from pretune.errors import PretuneError
from pretune.recipe import Recipe, SpaceEntry, check_path

KINDS = ("int", "uniform", "loguniform", "choice")
_PRIMITIVE = (type(None), bool, int, float, str)
_GRID_LIMIT = 100_000


@dataclass(frozen=True)
class Param:
    """One searched recipe key: its kind, range or choices, and when it is searched."""

    path: str
    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    when: dict[str, tuple] = field(default_factory=dict)

    @property
    def encoded(self) -> bool:
        """Choices optuna cannot store (lists, mappings) travel as inline YAML strings."""
        return self.kind == "choice" and not all(isinstance(c, _PRIMITIVE) for c in self.choices)

    def active(self, chosen: dict[str, Any]) -> bool:
        return all(key in chosen and chosen[key] in values for key, values in self.when.items())

    def suggest(self, trial) -> Any:
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1))
        if self.kind in ("uniform", "loguniform"):
            return trial.suggest_float(self.path, self.low, self.high, step=self.step,
                                       log=self.kind == "loguniform")
        if self.encoded:
            return yaml.safe_load(trial.suggest_categorical(self.path, [_inline(c) for c in self.choices]))
        return trial.suggest_categorical(self.path, list(self.choices))

    def decode(self, stored: Any) -> Any:
        """A value as optuna stored it -> the value it stands for in the recipe."""
        return yaml.safe_load(stored) if self.encoded else stored

    def grid(self) -> list:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "loguniform" or (self.kind == "uniform" and self.step is None):
            raise PretuneError(f"search.space.{self.path}: a grid needs `step` on a uniform range or a `choice` "
                               f"(not {self.kind} without step)")
        step = self.step or 1
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(v) for v in values] if self.kind == "int" else values

    def position(self, value: Any) -> float | None:
        """Where a value sits in the range, 0 (low edge) to 1 (high edge); None for choices."""
        if self.kind == "choice" or value is None:
            return None
        if self.kind == "loguniform":
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice {list(self.choices)}"
        return f"{self.kind} [{self.low:g}, {self.high:g}]" + (f" step {self.step:g}" if self.step else "")


@dataclass
class Space:
    """The searched keys in an order where each `when` names keys decided before it."""

    params: list[Param]

    def __bool__(self) -> bool:
        return bool(self.params)

    def __getitem__(self, path: str) -> Param:
        return next(p for p in self.params if p.path == path)

    def sample(self, trial) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        for param in self.params:
            if param.active(chosen):
                chosen[param.path] = param.suggest(trial)
        return chosen

    def decode(self, stored: dict[str, Any]) -> dict[str, Any]:
        known = {p.path: p for p in self.params}
        return {k: known[k].decode(v) if k in known else v for k, v in stored.items()}

    def grid_size(self) -> int:
        """Points of the grid, counting a conditional key only where its `when` holds."""
        grids = {p.path: p.grid() for p in self.params}

        def count(i: int, chosen: dict) -> int:
            if i == len(self.params):
                return 1
            param = self.params[i]
            if not param.active(chosen):
                return count(i + 1, chosen)
            total = 0
            for value in grids[param.path]:
                total += count(i + 1, {**chosen, param.path: value})
                if total > _GRID_LIMIT:
                    raise PretuneError(f"the grid has more than {_GRID_LIMIT:,} points")
            return total

        return count(0, {})


def trial_base(recipe: Recipe) -> Recipe:
    """The recipe each trial's sample edits (through `Recipe.updated`, the one dotted-key editor):
    the study's, with its search section at the defaults (a trial searches nothing)."""
    return recipe.updated({"search": {}})


def parse_space(recipe: Recipe) -> Space:
    """Check `recipe.search.space` against the recipe; raise PretuneError naming the first problem."""
    entries = recipe.search.space
    if not entries:
        raise PretuneError("search.space is empty: name at least one recipe key to search, "
                           "e.g. train.optimizer.lr: {loguniform: [1.0e-5, 1.0e-3]}")
    params = [_param(path, entry) for path, entry in entries.items()]
    by_path = {p.path: p for p in params}
    for p in params:
        for key, values in p.when.items():
            if key not in by_path or key == p.path:
                raise PretuneError(f"search.space.{p.path}: `when` names '{key}', which is not another key of "
                                   f"the space ({', '.join(k for k in by_path if k != p.path)})")
            other = by_path[key]
            if other.kind == "choice":
                unknown = [v for v in values if v not in other.choices]
                if unknown:
                    raise PretuneError(f"search.space.{p.path}: `when` {key}={unknown[0]!r} is never searched; "
                                       f"{key} takes {list(other.choices)}")
    for p in params:
        _check_values(recipe, p)
    return Space(_ordered(params))


def _param(path: str, entry: SpaceEntry) -> Param:
    where = f"search.space.{path}"
    if path.startswith("search.") or path == "search":
        raise PretuneError(f"{where}: the search section itself cannot be searched")
    check_path(path, "search.space: ")
    given = {k: v for k, v in (("int", entry.int_), ("uniform", entry.uniform),
                                ("loguniform", entry.loguniform), ("choice", entry.choice)) if v is not None}
    if len(given) != 1:
        raise PretuneError(f"{where}: give exactly one of {', '.join(KINDS)} (got {', '.join(given) or 'none'})")
    kind, value = next(iter(given.items()))
    when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in (entry.when or {}).items()}
    if kind == "choice":
        if not value:
            raise PretuneError(f"{where}: choice is empty")
        if entry.step is not None:
            raise PretuneError(f"{where}: `step` applies to int and uniform, not choice")
        return Param(path, kind, choices=tuple(value), when=when)
    if len(value) != 2:
        raise PretuneError(f"{where}: {kind} takes [low, high], got {value}")
    low, high = value
    if not low < high:
        raise PretuneError(f"{where}: empty or inverted range [{low}, {high}] (low must be below high)")
    if kind == "loguniform" and low <= 0:
        raise PretuneError(f"{where}: loguniform needs low > 0, got {low}")
    step = entry.step
    if step is not None:
        if kind == "loguniform":
            raise PretuneError(f"{where}: `step` does not apply to loguniform; use uniform or choice")
        if kind == "int" and step != int(step):
            raise PretuneError(f"{where}: an int range takes a whole step, got {step}")
        if step > high - low:
            raise PretuneError(f"{where}: step {step} is wider than the range [{low}, {high}]")
    return Param(path, kind, float(low), float(high), step, when=when)


def _check_values(base: Recipe, p: Param) -> None:
    """Each choice, and each end of a range, must make a valid recipe: fail now, not in trial 7."""
    values = p.choices if p.kind == "choice" else (p.low, p.high)
    if p.kind == "int":
        values = tuple(int(v) for v in values)
    for value in values:
        try:
            base.updated({p.path: value})
        except PretuneError as e:
            raise PretuneError(f"search.space.{p.path}: value {value!r} is refused: {e}") from None


def _ordered(params: list[Param]) -> list[Param]:
    """Order so that every key comes after the keys its `when` names (a cycle is an error)."""
    done: list[Param] = []
    pending = list(params)
    while pending:
        ready = [p for p in pending if all(k in {d.path for d in done} for k in p.when)]
        if not ready:
            raise PretuneError(f"search.space: the `when` conditions of {', '.join(p.path for p in pending)} "
                               "form a cycle")
        done += ready
        pending = [p for p in pending if p not in ready]
    return done


def _inline(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1_000).strip().removesuffix("\n...")
