"""The Run directory, pretune's one output format (its files: names.py), and its atomic writes.

`RunDir` reads and writes these files and knows nothing of models; `pretune.Run` (predictor.py)
adds predict and evaluate on top. Every start (a new run, a restart, a resume) first refuses a
directory holding a symbolic link, so nothing lands outside the directory the user chose, and
removes the temporary work a killed process left there.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from pretune import atomic
from pretune.errors import PretuneError
from pretune.recipe import Recipe
from pretune.runs.names import CHECKPOINTS, HISTORY, METRICS, MODEL, PLOTS, RECIPE
from pretune.runs.readers import read_history, read_metrics


class RunDir:
    """A finished (or interrupted) run on disk: its recipe, metrics and model files."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / RECIPE).is_file():
            raise PretuneError(f"{self.path} is not a pretune run directory (no {RECIPE})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @classmethod
    def create(cls, path: str | Path, recipe: Recipe):
        """Start a run directory by writing its recipe; refuses a directory that holds one."""
        path = Path(path)
        if (path / RECIPE).exists():
            raise PretuneError(f"{path} already holds a run; use --resume {path} or another --out")
        prepare_output(path)
        atomic.write_text(path / RECIPE, recipe.to_yaml())
        return cls(path)

    @classmethod
    def restart(cls, path: str | Path, recipe: Recipe):
        """Start afresh in a run directory that holds nothing worth keeping (killed before its
        first checkpoint: see `restartable`)."""
        path = Path(path)
        prepare_output(path)
        for name in (HISTORY, METRICS, CHECKPOINTS, PLOTS, MODEL):
            target = path / name
            try:
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            except OSError as e:
                raise PretuneError(f"cannot remove {target} to start afresh: {e.strerror or e}") from None
        atomic.write_text(path / RECIPE, recipe.to_yaml())
        return cls(path)

    @property
    def restartable(self) -> bool:
        """Nothing to continue from and nothing worth keeping: killed, or failed (a write error, a
        loss gone NaN), before its first checkpoint. The same command starts it afresh."""
        checkpoints = self.path / CHECKPOINTS
        if checkpoints.is_dir() and any(checkpoints.glob("step-*")):
            return False
        return not self.finished or self.status == "failed"

    @property
    def recipe(self) -> Recipe:
        try:
            return Recipe.load(self.path / RECIPE)
        except PretuneError as e:
            where = str(self.path / RECIPE)
            raise PretuneError(str(e) if where in str(e) else f"{where}: {e}") from None

    @property
    def finished(self) -> bool:
        return (self.path / METRICS).is_file()

    @property
    def metrics(self) -> dict:
        path = self.path / METRICS
        if not path.is_file():
            raise PretuneError(f"run {self.path} has not finished: no {METRICS}")
        return read_metrics(self.path)

    @property
    def status(self) -> str:
        """completed, cancelled, failed, or running (no metrics.json yet: running or killed)."""
        return self.metrics.get("status", "completed") if self.finished else "running"

    @property
    def history(self) -> list[dict]:
        return read_history(self.path)

    @property
    def model_path(self) -> Path:
        path = self.path / MODEL
        if not (path / "config.json").is_file() and not (path / "model.safetensors").is_file():
            raise PretuneError(f"run {self.path} has no saved model (did it finish?)")
        return path

    def prepare(self) -> None:
        """Before a resume writes again: no links, no leftovers (see prepare_output)."""
        prepare_output(self.path)

    def write_metrics(self, metrics: dict) -> None:
        atomic.write_json(self.path / METRICS, metrics)

    @contextmanager
    def writing_model(self):
        """A temporary directory that becomes `model/` whole, or not at all."""
        with atomic.atomic_dir(self.path / MODEL) as tmp:
            yield tmp


def prepare_output(path: str | Path) -> None:
    """Make `path` ready for pretune's writes: refuse symbolic links inside it (never written
    through) and remove what killed atomic writes left behind."""
    atomic.refuse_links(path)
    atomic.clean_leftovers(path)
