"""What a task is: everything that differs between problems, asked for by the loop, evaluation,
prediction, serving, the report and the card, which never compare a task's name themselves.

A task reads and checks labels (`learn_labels`, `to_table`), encodes and says how rows are
sampled (`encode`, `sampling_classes`), configures the model (`auto_class`, `configure`), picks
and shapes the loss (`default_loss`, `losses`, `loss_weight`, `shape_loss`), scores outputs
(`metrics`, `calibrate`) and turns them into predictions (`decode`). It also says how those
predictions are served (`oip_outputs`, `pipeline_answer`), shown in the report (`report_rows`,
`error_view`, `curves`) and described in the card (`pipeline_tag`, `card_limitation`,
`card_example`), and what compression compares (`predicts_values`). One object per run: it
holds the label names (and, for multi-label, tuned thresholds) that the saved config carries.

Tasks register by name in `tasks` (below); a module of pretune.tasks registers its own, so a
new task is one new file, and a user's task registers from the user's module the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from pretune.data.encode import EncodedSplit, encode_texts
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.recipe import TASK_FACTS, DataConfig, LossConfig, TaskFacts
from pretune.registry import Registry


class Task:
    name: ClassVar[str]  # set by `tasks.register(name)`: the one spelling of the name
    auto_class: ClassVar[str] = "AutoModelForSequenceClassification"
    default_loss: ClassVar[str] = "cross_entropy"
    losses: ClassVar[tuple[str, ...]] = ("cross_entropy", "focal")
    metric_names: ClassVar[tuple[str, ...]] = ("loss",)  # scalar validation metrics
    headline: ClassVar[str] = "loss"  # the metric a plot or a summary shows first
    stratify: ClassVar[bool] = False  # carve splits stratified by the label column
    calibrates: ClassVar[bool] = False  # `calibrate` tunes something on validation after training
    one_label_per_row: ClassVar[bool] = False  # rows carry one class each (label issues, calibration)
    inputs: ClassVar[str] = "text"  # what rows hold: "text" (a tokenizer encodes) or "image"
    # The columns read when the recipe names none, and recipe settings this task serves better
    # than the text defaults (dotted keys, used where the recipe sets none).
    text_column: ClassVar[str] = "text"
    text_pair_column: ClassVar[str | None] = None
    label_column: ClassVar[str] = "label"
    recipe_defaults: ClassVar[dict[str, Any]] = {}
    # The labels (recipe.LABEL_KINDS) that `pretune pipeline DATA` reads as this task; None: never inferred.
    inferred_from: ClassVar[str | None] = None
    # Outputs are the answers themselves (regression), not logits over classes: distillation and
    # pruning recovery match them by squared error, not by softened probabilities.
    predicts_values: ClassVar[bool] = False
    # The validation metric a compression budget (`compress.max_drop`, points lost) is counted in;
    # None: this task's figures take no budget (every variant is listed, none chosen by it).
    budget_metric: ClassVar[str | None] = None
    # Serving: `decode`'s keys as Open Inference Protocol outputs (name, datatype), in order;
    # and whether `transformers.pipeline` answers a list of inputs with one top answer each.
    oip_outputs: ClassVar[tuple[tuple[str, str], ...]] = ()
    pipeline_flat: ClassVar[bool] = False
    # The report: validation metrics drawn per evaluation (one scale per figure), and which list
    # of readable errors its page shows (a view of pretune.report.errors_section; None: none).
    curves: ClassVar[tuple[str, ...]] = ()
    error_view: ClassVar[str | None] = None
    # The model card: the Hub's pipeline tag, the limitation it states, and the arguments of the
    # `run.predict(...)` call its example runs (with the imports they need).
    pipeline_tag: ClassVar[str] = "text-classification"
    card_limitation: ClassVar[str] = ("Trained on a small, specific data set; check it on your own data "
                                      "before relying on it.")
    card_example: ClassVar[tuple[tuple[str, ...], str]] = ((), '["An example text to check the model with."]')

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.label_names: list[str] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.label_names})"

    # -- data ------------------------------------------------------------------------------
    @property
    def num_labels(self) -> int:
        return len(self.label_names or ()) or 1

    def learn_labels(self, train: pd.DataFrame) -> None:
        """Fix the label names from the training split (kept for every later split)."""

    def labels_of(self, frame: pd.DataFrame, where: str):
        """The label column as the model's targets."""
        raise NotImplementedError

    def to_table(self, frame: pd.DataFrame, where: str, with_labels: bool = True) -> TextTable:
        cfg = self.cfg
        texts = frame[cfg.text_column].astype(str).tolist()
        pairs = frame[cfg.text_pair_column].astype(str).tolist() if cfg.text_pair_column else None
        labels = self.labels_of(frame, where) if with_labels else None
        return TextTable(texts, pairs, labels)

    def unlabelled(self, texts: list, pairs: list | None = None) -> TextTable:
        return TextTable(list(texts), pairs, None)

    def encode(self, table: TextTable, tokenizer, max_length: int) -> EncodedSplit:
        return encode_texts(table, tokenizer, max_length)

    def for_training(self, split: EncodedSplit, seed: int) -> EncodedSplit:
        """The training split as the loop draws it (image augmentation); default: as it is."""
        return split

    def notices(self) -> list[str]:
        """What the data made the fit do differently from what the recipe reads (tags fixed up,
        sentences cut), told to the user even under --quiet and kept in metrics.json."""
        return []

    def check_model(self, model, preprocessor) -> None:
        """Fail in one line, before training, when the model cannot take the encoded input."""

    def sampling_classes(self, split: EncodedSplit) -> list[list[int]] | None:
        """The classes each training row belongs to, for balanced sampling; None: not sampleable."""
        return None

    # -- model -----------------------------------------------------------------------------
    def configure(self, config) -> None:
        """Write the task's labels (and settings) into a Hugging Face config before loading."""
        config.num_labels = self.num_labels
        if self.label_names:
            config.id2label = dict(enumerate(self.label_names))
            config.label2id = {name: i for i, name in enumerate(self.label_names)}

    def restore(self, config) -> None:
        """The inverse of `configure`: read labels back from a saved model's config."""
        if getattr(config, "id2label", None):
            self.label_names = [config.id2label[i] for i in range(config.num_labels)]

    # -- loss ------------------------------------------------------------------------------
    def loss_weight(self, cfg: LossConfig, train: EncodedSplit) -> torch.Tensor | None:
        return None

    def shape_loss(self, loss_fn):
        return loss_fn

    # -- outputs ---------------------------------------------------------------------------
    def metrics(self, outputs, split: EncodedSplit) -> dict:
        raise NotImplementedError

    def calibrate(self, outputs, split: EncodedSplit) -> dict | None:
        """Settle what validation decides (multi-label thresholds); return what was decided."""
        return None

    def scale_confidence(self, outputs, split: EncodedSplit) -> dict | None:
        """Fit what makes the stated probabilities honest on validation outputs (temperature
        scaling, `train.calibrate`), keep it for `decode` and the saved config, and return what was
        fitted with the calibration error before and after; None: the task states no probabilities."""
        return None

    def warnings(self, figures: dict) -> list[str]:
        """What a user must hear about a finished fit's figures (one split's metrics): a model that
        learnt nothing useful, said on the terminal, in the report and in the card."""
        return []

    def decode(self, outputs, split: EncodedSplit, table: TextTable) -> list[dict]:
        raise NotImplementedError

    # -- answers and report ----------------------------------------------------------------
    @classmethod
    def recipe_facts(cls) -> TaskFacts:
        """What the recipe fills in for this task before any task object exists."""
        return TaskFacts(cls.text_column, cls.text_pair_column, cls.label_column, cls.inputs,
                         dict(cls.recipe_defaults), cls.inferred_from)

    def pipeline_answer(self, result: dict, top_k) -> list[dict]:
        """What `transformers.pipeline` answers for one input, from `decode`'s result; top_k:
        "default" (the pipeline's own), None (all) or a number. Default: the result as it is."""
        return [result]

    def report_rows(self, table: TextTable, predicted: list[dict], text_of: Callable[[int], str]) -> list[dict]:
        """One small JSON row per test row for the report: the input as `text_of(i)` shows it,
        the true answer and the predicted one. Default: the input and `decode`'s result."""
        return [{"text": text_of(i), "pred": p} for i, p in enumerate(predicted)]


class TaskRegistry(Registry[type[Task]]):
    """A Registry of task classes that also names each class after the name it is registered
    under and tells the recipe (a layer below) its facts (column defaults, inputs)."""

    def register(self, name: str) -> Callable[[type[Task]], type[Task]]:
        add = super().register(name)

        def add_task(cls: type[Task]) -> type[Task]:
            add(cls)
            cls.name = name  # one spelling: a subclass registered anew is not its parent's name
            TASK_FACTS[name] = cls.recipe_facts()
            return cls

        return add_task

    def alias(self, old: str, name: str) -> None:
        super().alias(old, name)
        TASK_FACTS[old] = TASK_FACTS[name]


tasks = TaskRegistry("task")


def create_task(cfg: DataConfig) -> Task:
    """A fresh task for one run (it will hold that run's labels)."""
    return tasks.get(cfg.task)(cfg)


def task_type(name: str | None) -> type[Task]:
    """The class of a task named in a run directory, for readers (report, card) that need its
    facts, not an object; a name this process never registered (a user's task whose module is
    not imported) reads as the base Task, whose defaults describe text in, answers out."""
    return tasks.get(name) if name and name in tasks else Task


def require_labels(values: pd.Series, where: str, column: str) -> None:
    bad = values.isna()
    if bad.any():
        raise PretuneError(
            f"{where}: {int(bad.sum())} row(s) have no label (NaN) in '{column}', "
            f"first at row {int(np.flatnonzero(bad)[0])}"
        )


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


def class_weights(cfg: LossConfig, label_counts: np.ndarray) -> torch.Tensor | None:
    """'balanced' weights n / (k * count_c), as scikit-learn computes them; or the given list."""
    if cfg.class_weights is None:
        return None
    k = len(label_counts)
    if cfg.class_weights == "balanced":
        counts = np.maximum(label_counts, 1)
        return torch.tensor(counts.sum() / (k * counts), dtype=torch.float32)
    if len(cfg.class_weights) != k:
        raise PretuneError(f"train.loss.class_weights has {len(cfg.class_weights)} values for {k} classes")
    return torch.tensor(cfg.class_weights, dtype=torch.float32)
