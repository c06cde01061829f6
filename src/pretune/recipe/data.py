"""recipe.data: the task, its columns and splits, and the image augmentation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from pretune.recipe.base import _Section


@dataclass(frozen=True)
class TaskFacts:
    """What a recipe knows of a task before any task object exists: the columns it reads when
    the recipe names none, what its rows hold, and settings it serves better than the text
    defaults. The tasks (pretune.tasks, a layer above) fill TASK_FACTS as each one registers,
    so a task defined in a user's module gets its defaults too; a name none registered reads
    as text in, a label out."""

    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    inputs: str = "text"  # "text" or "image"
    defaults: Mapping[str, Any] = field(default_factory=dict)  # dotted recipe keys -> values
    # The kind of labels that `pretune pipeline DATA` reads as this task (data/infer.py): one of
    # LABEL_KINDS; None: inference never picks it (a user names it in the recipe).
    inferred_from: str | None = None


# What data/infer.py tells apart in a file a user hands over, each read as the task that claims it.
LABEL_KINDS = ("classes", "label-lists", "quantities", "token-tags", "image-folders")


TASK_FACTS: dict[str, TaskFacts] = {}


def task_facts(name: str) -> TaskFacts:
    return TASK_FACTS.get(name) or TaskFacts()


def task_inferred_from(kind: str) -> str:
    """The registered task that reads labels of `kind` (LABEL_KINDS), asked of the tasks' own
    facts so that inference names no task: the first registered claim wins (the built-in tasks
    register first; a user's subclass inherits the claim but not the choice)."""
    names = [name for name, facts in TASK_FACTS.items() if facts.inferred_from == kind]
    if not names:
        raise LookupError(f"no registered task reads {kind}: import pretune.tasks first")
    return names[0]


class AugmentConfig(_Section):
    """Training-time image augmentation (image-classification only), seeded by the recipe's seed."""

    crop_scale: float | None = Field(
        None, gt=0, le=1, description="random resized crop: smallest share of the image area kept (null: off)")
    flip: float = Field(0.0, ge=0, le=1, description="probability of a horizontal flip")
    color_jitter: float = Field(0.0, ge=0, lt=1, description="brightness / contrast / saturation jitter strength")
    mixup: float = Field(0.0, ge=0, description="mixup Beta(alpha, alpha) (0: off)")
    cutmix: float = Field(0.0, ge=0, description="cutmix Beta(alpha, alpha) (0: off); with mixup, one of the two "
                          "per batch")

    @property
    def active(self) -> bool:
        return bool(self.crop_scale or self.flip or self.color_jitter or self.mixup or self.cutmix)


class DataConfig(_Section):
    source: str = Field("rotten-tomatoes", description="bundled dataset name, table file, or hf:NAME")
    train: str | None = Field(None, description="train table file (overrides source)")
    validation: str | None = Field(None, description="validation table file")
    test: str | None = Field(None, description="test table file")
    # The default is the task that claims plain classes (tasks register before any recipe is read:
    # importing pretune.recipe imports the package): the recipe names no task of its own.
    task: str = Field(default_factory=lambda: task_inferred_from("classes"),
                      description="sequence-classification (alias classification), "
                      "text-pair-classification, token-classification, multi-label, regression, "
                      "image-classification, or a task registered from your own module")
    text_column: str | None = Field(None, description="column holding the text (token-classification: the "
                                    "token lists; image-classification: image paths or arrays); null: text, "
                                    "tokens for token-classification, image for image-classification")
    text_pair_column: str | None = Field(None, description="second text column for pair tasks; null: none, "
                                         "text_pair for text-pair-classification")
    unlabeled: str | None = Field(None, description="unlabelled texts for `pretune adapt` (a .txt file, one text "
                                  "a line, or a table with the text column); null: the training texts")
    label_column: str | None = Field(None, description="column holding the label; null: label, tags for "
                                     "token-classification, labels for multi-label")
    label_separator: str | None = Field(
        None, description="multi-label: labels joined by this in one string (else a JSON list per cell)")
    encoding: str = Field("utf-8", description="text encoding of the data files")
    delimiter: str | None = Field(
        None, min_length=1, max_length=1,
        description="delimited text files (.csv, .tsv): the column separator (null: sniffed among , ; tab |)")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="carved from train when no file")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="carved from train when no file")
    split_seed: int = Field(0, ge=0, lt=2**32, description="seed of the stratified split of a single table")
    max_train_samples: int | None = Field(None, gt=0, description="use a seeded slice of train")
    max_eval_samples: int | None = Field(None, gt=0, description="cap validation and test size")
    max_length: int = Field(128, gt=1, description="tokens per text (truncation); capped at the model's limit")
    image_size: int | None = Field(
        None, gt=0, description="image-classification: side of the square input in pixels (null: the model's own)")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    group_by_length: bool = Field(True, description="batch texts of similar length together")
    drop_missing: bool = Field(
        False, description="drop rows with no text or no label (with a count) instead of refusing the file")
    drop_duplicates: bool = Field(
        False, description="drop training texts that repeat an earlier one (case, spacing and punctuation "
        "aside), with a count; `pretune check` lists them")
    drop_leaked: bool = Field(
        False, description="drop training texts that also occur in validation or test, with a count")
    sampling: Literal["natural", "balanced", "sqrt"] = Field(
        "natural", description="training rows drawn as they come, or with class weights 1/n (balanced) "
        "or 1/sqrt(n) (sqrt); multi-label and tagging tasks weigh a row by its rarest label")

    @model_validator(mode="after")
    def _task_columns(self) -> DataConfig:
        facts = task_facts(self.task)
        # object.__setattr__: plain assignment would re-run this validator (validate_assignment).
        if self.text_column is None:
            object.__setattr__(self, "text_column", facts.text_column)
        if self.text_pair_column is None and facts.text_pair_column:
            object.__setattr__(self, "text_pair_column", facts.text_pair_column)
        if self.label_column is None:
            object.__setattr__(self, "label_column", facts.label_column)
        if facts.inputs != "image" and (self.image_size or self.augment.active):
            raise ValueError("data.image_size and data.augment apply to tasks that read images only "
                             "(image-classification)")
        return self

    @property
    def inputs(self) -> str:
        """What the task's rows hold: "text" or "image"."""
        return task_facts(self.task).inputs
