"""The Run directory, pretune's one output format.

    recipe.yaml     the resolved recipe        metrics.jsonl  every logged step / evaluation
    metrics.json    final metrics per split    model/         Hugging Face format, safetensors
    checkpoints/    for --resume               plots/         learning curves, lr schedule
"""

from __future__ import annotations

import json
from pathlib import Path

from pretune.errors import PretuneError
from pretune.recipe import Recipe

RECIPE, METRICS, HISTORY, MODEL, CHECKPOINTS, PLOTS = (
    "recipe.yaml", "metrics.json", "metrics.jsonl", "model", "checkpoints", "plots")


class Run:
    """A finished (or interrupted) run on disk: its recipe, metrics and model."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / RECIPE).is_file():
            raise PretuneError(f"{self.path} is not a pretune run directory (no {RECIPE})")
        self._predictor = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def recipe(self) -> Recipe:
        return Recipe.load(self.path / RECIPE)

    @property
    def metrics(self) -> dict:
        path = self.path / METRICS
        if not path.is_file():
            raise PretuneError(f"run {self.path} has not finished: no {METRICS}")
        return json.loads(path.read_text())

    @property
    def history(self) -> list[dict]:
        path = self.path / HISTORY
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    @property
    def model_path(self) -> Path:
        path = self.path / MODEL
        if not (path / "config.json").is_file():
            raise PretuneError(f"run {self.path} has no saved model (did it finish?)")
        return path

    def predictor(self):
        # Imported here: inference sits above this module in the layering.
        from pretune.predictor import Predictor

        if self._predictor is None:
            self._predictor = Predictor(self.model_path, self.recipe.data.max_length)
        return self._predictor

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
        """Label, its probability, and every class's probability, for each text."""
        return self.predictor().predict(texts, pairs)

    def evaluate(self, data: str | Path, **columns) -> dict:
        """Metrics on a labelled table file, with the run's column names unless overridden."""
        return self.predictor().evaluate_file(data, self.recipe.data, **columns)


def load_run(path: str | Path) -> Run:
    return Run(path)
