"""The compression steps, registered per input kind (`text`, `image`): each step is one function
`(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun` for one kind, so no step
branches on the modality. A step also says which model formats it takes and which it gives, so a
chain that cannot work (`quantize,distill`: distill needs the fp32 torch model that quantize no
longer gives) is refused before its first step runs, naming the order.

Adding a step: in its own module, decorate the function with `base.register` (never import this
module there: it imports the built-ins, see `register_builtin`):

    from pretune.compress import base

    def _check(parent: base.Parent, cfg: CompressConfig) -> None:   # before any work
        if cfg.mine.x and "accuracy" not in parent.task.metric_names:
            raise PretuneError("compress.mine.x needs ...")

    @base.register("mine", "text", takes=(base.TORCH,), gives="onnx-int8",
                   settings=lambda cfg: cfg.mine, check=_check)
    def mine_text(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun: ...

and add the module to `register_builtin`. `settings` is the section the node's result depends
on (a changed section redoes the node); `check(parent, cfg)` sees the task and the parent's model
format, not a loaded model, and is called by `check_chain` for every step of every chain, by
`pretune compress` and by the pipeline's plan alike, so a refusal comes before the first node.
"""

from __future__ import annotations

from pathlib import Path

from pretune.compress.base import KINDS, TORCH, Parent, Step, _steps, register
from pretune.errors import PretuneError
from pretune.recipe import CompressConfig

__all__ = ["KINDS", "TORCH", "Parent", "Step", "available", "check_chain", "get", "register", "run_step"]


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


def check_chain(chain: list[str], task, backend: str, cfg: CompressConfig) -> None:
    """Every step resolves for the task's input kind, each takes what the one before it gives (the
    first: the original's `backend`), and each step's own `check` passes; else one line."""
    if not chain:
        raise PretuneError("an empty chain: no compression steps given; known: " + ", ".join(available(task.inputs)))
    given, before = backend, "the original run"
    for name in chain:
        step = get(name, task.inputs)
        if given not in step.takes(cfg):
            raise PretuneError(
                f"step order {','.join(chain)} cannot work: {name} needs a {' or '.join(step.takes(cfg))} model "
                f"but {before} gives {given}; put quantize and export last")
        step.check(Parent(task, given), cfg)
        given, before = step.gives(cfg), name


def run_step(step: Step, parent, cfg: CompressConfig, out: Path):
    return step.run(parent, cfg, Path(out))
