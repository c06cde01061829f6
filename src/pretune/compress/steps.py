"""The compression steps, registered per input kind (`text`, `image`): each step is one function
`(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun` for one kind, so no step
branches on the modality. A step also says which model formats it takes and which it gives, so a
chain that cannot work (`quantize,distill`: distill needs the fp32 torch model that quantize no
longer gives) is refused before its first step runs, naming the order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pretune.errors import PretuneError
from pretune.recipe import CompressConfig

KINDS = ("text", "image")
TORCH = "torch-fp32"  # what training, surgery and pruning need; measure.backend_of's names


@dataclass(frozen=True)
class Step:
    """One method for one input kind: the function, the model formats it takes, the one it gives."""

    name: str
    kind: str
    run: Callable
    takes: Callable[[CompressConfig], tuple[str, ...]]
    gives: Callable[[CompressConfig], str]


_steps: dict[tuple[str, str], Step] = {}


def register(name: str, kind: str, takes: tuple[str, ...] | Callable = (TORCH,),
             gives: str | Callable = TORCH) -> Callable:
    """`@register("quantize", "image", takes=..., gives=...)` over a step function."""
    if kind not in KINDS:
        raise ValueError(f"unknown input kind '{kind}'; known: {', '.join(KINDS)}")

    def add(fn: Callable) -> Callable:
        if (name, kind) in _steps:
            raise ValueError(f"compression step '{name}' for {kind} runs is already registered")
        _steps[(name, kind)] = Step(name, kind, fn, takes if callable(takes) else (lambda _cfg: takes),
                                    gives if callable(gives) else (lambda _cfg: gives))
        return fn

    return add


def register_builtin() -> None:
    """Import the built-in methods (each registers itself on import)."""
    from pretune.compress import static as _static  # noqa: F401
    from pretune.compress import trim_vocab as _trim_vocab  # noqa: F401
    from pretune.compress.distill import image as _distill_image  # noqa: F401
    from pretune.compress.distill import text as _distill_text  # noqa: F401
    from pretune.compress.export import image as _export_image  # noqa: F401
    from pretune.compress.export import text as _export_text  # noqa: F401
    from pretune.compress.prune import channels as _channels  # noqa: F401
    from pretune.compress.prune import heads as _heads  # noqa: F401
    from pretune.compress.quantize import image as _quantize_image  # noqa: F401
    from pretune.compress.quantize import text as _quantize_text  # noqa: F401


def available(kind: str | None = None) -> list[str]:
    register_builtin()
    return sorted({name for name, k in _steps if kind is None or k == kind})


def get(name: str, kind: str) -> Step:
    """The step `name` for `kind` runs; an unknown name, or one without this kind, in one line."""
    register_builtin()
    if (name, kind) in _steps:
        return _steps[(name, kind)]
    if name not in available():
        raise PretuneError(f"unknown compression step '{name}'; known: {', '.join(available())}")
    raise PretuneError(f"compression step '{name}' has no implementation for {kind} runs; "
                       f"{kind} runs take: {', '.join(available(kind))}")


def check_chain(chain: list[str], kind: str, backend: str, cfg: CompressConfig) -> None:
    """Every step resolves for `kind`, and each takes what the one before it gives (the first:
    the original's `backend`); else one line naming the order."""
    if not chain:
        raise PretuneError("an empty chain: no compression steps given; known: " + ", ".join(available(kind)))
    given, before = backend, "the original run"
    for name in chain:
        step = get(name, kind)
        if given not in step.takes(cfg):
            raise PretuneError(
                f"step order {','.join(chain)} cannot work: {name} needs a {' or '.join(step.takes(cfg))} model "
                f"but {before} gives {given}; put quantize and export last")
        given, before = step.gives(cfg), name


def run_step(step: Step, parent, cfg: CompressConfig, out: Path):
    return step.run(parent, cfg, Path(out))
