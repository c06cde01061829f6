"""recipe.data: the task, its columns and splits, and the image augmentation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from pretune.recipe.base import _Section

# The columns each task reads when the recipe names none (text in, labels out).
TASK_COLUMNS = {"token-classification": ("tokens", "tags"), "multi-label": ("text", "labels"),
                "image-classification": ("image", "label")}
DEFAULT_COLUMNS = ("text", "label")
# Settings a task serves better than the text defaults, used where the recipe sets none. Image
# classification: EfficientNet-Lite0 on 1,500 MNIST images, 2 epochs, reached 0.50 test accuracy
# at the text default AdamW 1e-4 and 0.96 at 1e-3 (issue 16).
TASK_DEFAULTS: dict[str, dict[str, Any]] = {"image-classification": {"train.optimizer.lr": 1e-3}}


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
    task: str = Field("sequence-classification", description="sequence-classification (alias classification), "
                      "token-classification, multi-label, regression, image-classification")
    text_column: str | None = Field(None, description="column holding the text (token-classification: the "
                                    "token lists; image-classification: image paths or arrays); null: text, "
                                    "tokens for token-classification, image for image-classification")
    text_pair_column: str | None = Field(None, description="second text column for pair tasks")
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
    sampling: Literal["natural", "balanced", "sqrt"] = Field(
        "natural", description="training rows drawn as they come, or with class weights 1/n (balanced) "
        "or 1/sqrt(n) (sqrt); multi-label and tagging tasks weigh a row by its rarest label")

    @model_validator(mode="after")
    def _task_columns(self) -> DataConfig:
        text, label = TASK_COLUMNS.get(self.task, DEFAULT_COLUMNS)
        # object.__setattr__: plain assignment would re-run this validator (validate_assignment).
        if self.text_column is None:
            object.__setattr__(self, "text_column", text)
        if self.label_column is None:
            object.__setattr__(self, "label_column", label)
        if self.task != "image-classification" and (self.image_size or self.augment.active):
            raise ValueError("data.image_size and data.augment apply to task image-classification only")
        return self
