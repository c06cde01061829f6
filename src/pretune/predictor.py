"""Use a run: predict with its saved model, or measure it on labelled data, through the same
task and evaluation path that fit used.

`Run` is the run directory (runs.RunDir) plus these verbs; it is what `pretune.fit` returns
and `pretune.load_run` opens.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pretune.data.prepare import TextTable, prepare, read_rows
from pretune.evaluate import evaluate, run_split
from pretune.recipe import DataConfig
from pretune.runs import RunDir
from pretune.tasks import create_task


class Predictor:
    """A saved model, its tokenizer and its task, ready to encode, predict and evaluate."""

    def __init__(self, model_dir: str | Path, data_cfg: DataConfig, batch_size: int = 64):
        from transformers import AutoTokenizer

        from pretune.models.load import position_limit
        from pretune.models.runners import load_runner
        from pretune.models.vision import load_image_settings
        from pretune.models.weights_check import loading_weights

        self.data_cfg, self.batch_size = data_cfg, batch_size
        self.task = create_task(data_cfg)
        with loading_weights(model_dir):
            self.runner = load_runner(model_dir, self.task)
        if self.task.inputs == "image":  # the saved size and normalisation: they are the model's
            self.tokenizer = load_image_settings(str(model_dir))
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.pad_id = getattr(self.tokenizer, "pad_token_id", None) or 0
        # fit capped max_length at the model's positions (with a notice); cap the same way here.
        limit = position_limit(json.loads((Path(model_dir) / "config.json").read_text()))
        self.max_length = min(data_cfg.max_length, limit or data_cfg.max_length)

    @property
    def label_names(self) -> list[str] | None:
        return self.task.label_names

    def encode(self, table: TextTable):
        return self.task.encode(table, self.tokenizer, self.max_length)

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


class Run(RunDir):
    """A run directory with its model in reach: `predict`, `evaluate`."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._predictor: Predictor | None = None

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
