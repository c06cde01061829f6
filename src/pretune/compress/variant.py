"""How every step writes its variant: a Run directory with fit's layout (recipe.yaml first, which
makes the directory a run, then model/, then metrics.json, which marks it done), evaluated on its
validation and test splits through the one evaluation path."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pretune.compress.loaded import SHOWN, LoadedRun
from pretune.recipe import Recipe
from pretune.runs import RunDir

FIT_OPTIONS = {"quiet": True, "lean": True, "save_model": True}  # no checkpoints, no test pass: scored here


def write_variant(out: Path, parent: LoadedRun, step: str, settings: dict, save_model: Callable[[Path], object],
                  recipe: Recipe | None = None, notes: dict | None = None,
                  noted: Callable[[LoadedRun], dict] | None = None, max_length: int | None = None) -> LoadedRun:
    """Save a variant's model with the parent's inputs (the same effective max_length, unless the
    step reads texts to another `max_length`), then score it (finish_variant)."""
    run = RunDir.create(out, recipe or parent.recipe)
    with run.writing_model() as tmp:
        save_model(tmp)
        inputs = parent.inputs if max_length is None else replace(parent.inputs, max_length=max_length)
        inputs.save(tmp)
    return finish_variant(out, parent, step, settings, notes, noted=noted)


def finish_variant(out: Path, parent: LoadedRun, step: str, settings: dict, notes: dict | None = None,
                   extra: dict | None = None, noted: Callable[[LoadedRun], dict] | None = None) -> LoadedRun:
    """Load the saved variant, score it on validation and test, write metrics.json (done);
    `noted(node)`: more notes read from the loaded variant."""
    node = parent.child(Path(out))
    validation, test = node.score("validation"), node.score("test")
    notes = {**(notes or {}), **(noted(node) if noted else {})}
    node.run.write_metrics({**(extra or {}), "validation": {**(extra or {}).get("validation", {}), **validation},
                            "test": test, "compress": {"step": step, "parent": str(parent.path),
                                                       "settings": settings, **(notes or {})}})
    return node


def figures(scores: dict) -> dict:
    return {k: scores[k] for k in SHOWN if k in scores}


@contextmanager
def scratch(parent: LoadedRun):
    """A temporary folder under the command's work folder (never the system's temporary
    directory: a killed command's leftovers go with its next start)."""
    parent.work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent.work) as tmp:
        yield Path(tmp)
