"""What a compression step is, and the table steps register into.

A step module imports this module only, never steps.py: steps.py imports every built-in step
to list them, so a step importing it back would be an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pretune.recipe import CompressConfig

if TYPE_CHECKING:
    from pretune.tasks import Task

KINDS = ("text", "image")
TORCH = "torch-fp32"  # what training, surgery and pruning need; loaded.backend_of's names


@dataclass(frozen=True)
class Parent:
    """What a step's `check` sees, before any work: the task of the run the tree starts from and
    the model format the step's parent holds (in a chain, what the step before gives). Nothing is
    loaded: in a pipeline's plan nothing is fitted yet. A LoadedRun has both attributes too."""

    task: Task
    backend: str


def no_check(parent: Parent, cfg: CompressConfig) -> None:
    return None


def no_settings(cfg: CompressConfig):
    return None


@dataclass(frozen=True)
class Step:
    """One method for one input kind: the function, the model formats it takes, the one it gives,
    its settings (the CompressConfig section its result depends on) and its preconditions."""

    name: str
    kind: str
    run: Callable  # (parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun
    takes: Callable[[CompressConfig], tuple[str, ...]]
    gives: Callable[[CompressConfig], str]
    settings: Callable[[CompressConfig], object] = no_settings  # a pydantic section, a dict, or None
    check: Callable[[Parent, CompressConfig], None] = no_check  # raises PretuneError; does no work

    def settings_of(self, cfg: CompressConfig) -> dict:
        """What a node's result depends on besides its parent, as JSON: a change redoes the node."""
        section = self.settings(cfg)
        return section.model_dump(mode="json") if hasattr(section, "model_dump") else dict(section or {})


_steps: dict[tuple[str, str], Step] = {}


def register(name: str, kind: str, takes: tuple[str, ...] | Callable = (TORCH,), gives: str | Callable = TORCH,
             settings: Callable[[CompressConfig], object] = no_settings,
             check: Callable[[Parent, CompressConfig], None] = no_check) -> Callable:
    """`@register("quantize", "image", takes=..., gives=..., settings=lambda cfg: cfg.quantize,
    check=...)` over a step function. `check(parent, cfg)` refuses settings that cannot work for
    this parent with one PretuneError line; `compress` and the pipeline's plan call it for every
    step of every chain before the first step runs."""
    if kind not in KINDS:
        raise ValueError(f"unknown input kind '{kind}'; known: {', '.join(KINDS)}")

    def add(fn: Callable) -> Callable:
        if (name, kind) in _steps:
            raise ValueError(f"compression step '{name}' for {kind} runs is already registered")
        _steps[(name, kind)] = Step(name, kind, fn, takes if callable(takes) else (lambda _cfg: takes),
                                    gives if callable(gives) else (lambda _cfg: gives), settings, check)
        return fn

    return add
