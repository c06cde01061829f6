"""Use a run: predict with its saved model, or measure it on labelled data, through the same
task and evaluation path that fit used.

`RunInputs` is the one loaded run's input side (task, preprocessor, effective max_length, pad
id, label names): fit builds it once and saves it beside the model; predict, eval, serve,
compress, report and the finders load it from there. `Run` is the run directory (runs.RunDir)
plus the verbs; it is what `pretune.fit` returns and `pretune.load_run` opens.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from pretune import atomic
from pretune.data.prepare import TextTable, prepare, read_rows
from pretune.evaluate import evaluate, run_split
from pretune.recipe import DataConfig
from pretune.runs import RunDir
from pretune.tasks import Task, create_task

INPUTS = "inputs.json"  # in model/: the effective max_length fit encoded with


def capped_max_length(requested: int, config) -> tuple[int, str | None]:
    """The one max_length computation: texts never get longer than the model's position table
    (RoBERTa's offset included), whatever data.max_length says. (length, notice or None)."""
    from pretune.models.load import position_limit

    limit = position_limit(config)
    if limit and requested > limit:
        return limit, f"data.max_length {requested} is beyond the model's {limit} positions; using {limit}"
    return requested, None


@dataclass
class RunInputs:
    """What turns a run's rows into its model's inputs, and outputs back into answers."""

    task: Task
    preprocessor: object  # a tokenizer, or an image run's ImageSettings
    max_length: int  # effective: capped at the model's positions; 0 for images (nothing to cut)

    @property
    def pad_id(self) -> int:
        # Read from the preprocessor saved with the model, so a trimmed vocabulary's new id counts.
        return getattr(self.preprocessor, "pad_token_id", None) or 0

    @property
    def label_names(self) -> list[str] | None:
        return self.task.label_names

    @classmethod
    def build(cls, data_cfg: DataConfig, task: Task, preprocessor, config) -> tuple[RunInputs, list[str]]:
        """At fit: the recipe's max_length capped by the model's `config`; the notices to tell."""
        if task.inputs == "image":
            return cls(task, preprocessor, 0), []
        length, notice = capped_max_length(data_cfg.max_length, config)
        return cls(task, preprocessor, length), [notice] if notice else []

    @classmethod
    def load(cls, model_dir: str | Path, data_cfg: DataConfig) -> RunInputs:
        """A saved model's inputs: its task (labels from its config), preprocessor and max_length."""
        from pretune.models.load import load_saved_config

        model_dir = Path(model_dir)
        task = create_task(data_cfg)
        config = load_saved_config(model_dir)
        task.restore(config)
        if task.inputs == "image":  # the saved size and normalisation: they are the model's
            from pretune.models.vision import load_image_settings

            return cls(task, load_image_settings(str(model_dir)), 0)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(task, tokenizer, saved_max_length(model_dir, data_cfg))

    def save(self, model_dir: str | Path) -> None:
        atomic.write_json(Path(model_dir) / INPUTS, {"max_length": self.max_length})

    def encode(self, table: TextTable):
        return self.task.encode(table, self.preprocessor, self.max_length)


def saved_max_length(model_dir: str | Path, data_cfg: DataConfig) -> int:
    """The effective max_length a saved model encodes with, read without loading the model (a run
    written before inputs.json: the same cap, from its config.json)."""
    model_dir = Path(model_dir)
    if (model_dir / INPUTS).is_file():
        return int(atomic.read_json(model_dir / INPUTS)["max_length"])
    config = model_dir / "config.json"
    return capped_max_length(data_cfg.max_length, atomic.read_json(config) if config.is_file() else None)[0]


class HoldsInputs:
    """Forwards the parts of the one loaded run (`self.inputs`, a RunInputs) that every holder of
    one reads: fit's FitParts, the Predictor, compression's LoadedRun."""

    inputs: RunInputs

    @property
    def task(self) -> Task:
        return self.inputs.task

    @property
    def preprocessor(self):
        """The tokenizer, or for an image run its ImageSettings."""
        return self.inputs.preprocessor

    tokenizer = preprocessor

    @property
    def pad_id(self) -> int:
        return self.inputs.pad_id

    @property
    def max_length(self) -> int:
        return self.inputs.max_length


class Predictor(HoldsInputs):
    """A saved model and its RunInputs, ready to encode, predict and evaluate."""

    def __init__(self, model_dir: str | Path, data_cfg: DataConfig, batch_size: int = 64,
                 inputs: RunInputs | None = None):
        from pretune.models.runners import load_runner
        from pretune.models.weights_check import loading_weights

        self.data_cfg, self.batch_size = data_cfg, batch_size
        self.inputs = inputs or RunInputs.load(model_dir, data_cfg)
        with loading_weights(model_dir):
            self.runner = load_runner(model_dir, self.task)

    @property
    def label_names(self) -> list[str] | None:
        return self.task.label_names

    def encode(self, table: TextTable):
        return self.inputs.encode(table)

    def predict_table(self, table: TextTable) -> list[dict]:
        split = self.encode(table)
        outputs, _ = run_split(self.runner, split, self.batch_size, self.pad_id)
        return self.task.decode(outputs, split, table)

    def predict(self, texts: list, pairs: list[str] | None = None) -> list[dict]:
        return self.predict_table(self.task.unlabelled(texts, pairs))

    def evaluate_table(self, table: TextTable) -> dict:
        return {"samples": len(table), **evaluate(self.runner, self.encode(table), self.task, self.batch_size,
                                                  self.pad_id)}

    def read(self, path: str | Path, with_labels: bool = True, **columns) -> TextTable:
        """A held-out table through the run's columns (or those given); `encoding` unset: the
        file's own (UTF-8, else detected with a notice), never the training file's, which says
        nothing about a file made elsewhere (a latin-1 run read a UTF-8 file as latin-1)."""
        if columns.get("encoding") is None:
            import sys

            from pretune.data.tables import detect_encoding

            columns["encoding"], notice = detect_encoding(path)
            if notice:
                print(f"pretune: notice: {notice}", file=sys.stderr)
        cfg = self.data_cfg.model_copy(update={k: v for k, v in columns.items() if v is not None})
        task = copy.copy(self.task)  # the same labels, read through the overridden columns
        task.cfg = cfg
        return read_rows(path, cfg, task, with_labels)


@dataclass
class SplitAnswers:
    """The answers of a model on a test table, in row order, with the task that decoded them."""

    task: Task
    table: TextTable
    answers: list[dict]


class Run(RunDir):
    """A run directory with its model in reach: `predict`, `evaluate`."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._predictor: Predictor | None = None
        # What fit's one test pass answered, kept in memory for the report's predictions/test.jsonl
        # (no second pass, no reload); None for a run loaded from disk.
        self.test_predictions: SplitAnswers | None = None

    def predictor(self) -> Predictor:
        if self._predictor is None:
            self._predictor = Predictor(self.model_path, self.recipe.data)
        return self._predictor

    def predict(self, texts: list, pairs: list[str] | None = None) -> list[dict]:
        """For each text: label and scores (or labels, entities, a value: as the task says)."""
        return self.predictor().predict(texts, pairs)

    def evaluate(self, data: str | Path | None = None, split: str = "test", **columns) -> dict:
        """Metrics on a labelled table file, with the run's column names unless overridden; with
        no file, on the run's own `split` of its recipe's data."""
        p = self.predictor()
        if data is not None:
            return p.evaluate_table(p.read(data, **columns))
        prepared = prepare(self.recipe.data, p.task, label_names=p.task.label_names)
        return p.evaluate_table(prepared.splits[split])


def load_run(path: str | Path) -> Run:
    return Run(path)
