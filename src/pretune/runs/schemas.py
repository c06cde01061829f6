"""The shape of each file pretune writes and reads back, as pydantic models.

Strict (a number is a JSON number, never a string or a boolean) on every field a reader uses,
open (`extra="allow"`) to the fields other parts add over time, so that a file written by a
newer or older pretune still reads. A run directory is shared between colleagues: what is read
from it is checked against these shapes first (readers.py), and a mismatch is one line naming
the file and the field, never a TypeError deep in a plot. The writers of compression.json and
pipeline.json validate what they write against the same models (`check`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0)]


class Shape(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


# metrics.json -------------------------------------------------------------------------------------

class TrainFigures(Shape):
    steps: Count = 0
    total_steps: Count | None = None
    epochs: Annotated[float, Field(ge=0)] | None = None
    train_seconds: Seconds | None = None
    train_samples_per_second: float | None = None
    samples: Count | None = None
    loss: float | None = None
    stop_reason: str | None = None
    best_step: Count | None = None
    best_metric: str | None = None  # the metric keep_best followed

    @model_validator(mode="after")
    def _steps_within_total(self):
        if self.total_steps is not None and self.steps > self.total_steps:
            raise ValueError(f"steps {self.steps} exceeds total_steps {self.total_steps}")
        return self


class ClassFigures(Shape):  # every task writes all four (None: an undefined ratio)
    precision: float | None
    recall: float | None
    f1: float | None
    support: Count


class SplitFigures(Shape):  # a section absent, never null: readers test `in` and then index
    samples: Count | None = None
    confusion_matrix: list[list[Count]] = None
    per_class: dict[str, ClassFigures] = None
    per_type: dict[str, ClassFigures] = None
    per_label: dict[str, ClassFigures] = None


class ModelChange(Shape):
    change: str
    parameters: Count
    trainable: Count


class ModelFacts(Shape):
    source: str | None = None
    labels: list[str] | None = None
    parameters: Count | None = None
    trainable: Count | None = None
    changes: list[ModelChange] = []


class MetricsFile(Shape):
    status: str = "completed"
    task: str | None = None
    # A section may be absent (a compressed variant has no train), never null: readers index it.
    train: TrainFigures = None
    validation: SplitFigures = None
    test: SplitFigures = None
    model: ModelFacts = None
    notices: list[str] = None
    calibration: dict[str, Any] = None
    compress: dict[str, Any] = None

    @model_validator(mode="after")
    def _consistent(self):
        labels = self.model.labels if self.model else None
        for split in ("validation", "test"):
            figures = getattr(self, split)
            matrix = figures.confusion_matrix if figures else None
            if matrix is None:
                continue
            size = len(labels) if labels is not None else len(matrix)  # a variant records no labels
            if len(matrix) != size or any(len(row) != size for row in matrix):
                raise ValueError(f"{split}.confusion_matrix is not {size} x {size} (one row and column per label)")
        if self.train is not None and self.status == "completed":  # a fit's, not a compressed variant's
            if self.model is None or self.model.parameters is None or self.model.trainable is None:
                raise ValueError("a completed fit records model.parameters and model.trainable")
            if self.task is None or self.train.train_seconds is None or self.train.epochs is None:
                raise ValueError("a completed fit records its task, train.train_seconds and train.epochs")
        return self


# metrics.jsonl: one record per logged step or evaluation ------------------------------------------

class HistoryRecord(Shape):
    step: Count
    split: str
    epoch: Annotated[float, Field(ge=0)] | None = None
    loss: float | None = None
    lr: float | None = None


# predictions/test.jsonl: one row per test example, by task (report/predictions.py writes them) ---

class ScoredRow(Shape):  # classification, image classification
    text: str
    true: str
    pred: str
    score: Annotated[float, Field(ge=0, le=1)]
    thumbnail: str | None = None


class ValueRow(Shape):  # regression
    text: str
    true: float
    pred: float


class LabelSetRow(Shape):  # multi-label
    text: str
    true: list[str]
    pred: list[str]
    scores: dict[str, float] = {}


class TaggedRow(Shape):  # token classification
    tokens: list[str]
    true: list[str]
    pred: list[str]


# environment.json ---------------------------------------------------------------------------------

class Environment(Shape):
    cpu: str | None = None
    cpu_flags: list[str] = []
    cores: Count | None = None
    gpu: str | None = None
    python: str | None = None
    platform: str | None = None
    versions: dict[str, str] = {}


# compression.json: each fact once ------------------------------------------------------------------

class Choice(Shape):
    name: str | None = None  # the chosen row's name; None: no budget given
    reason: str = ""
    on: str = "validation accuracy drop"
    reported: str = "test"


class MeasuredRow(Shape):
    name: str
    node: str | None = None
    backend: str | None = None
    throughput: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    size_mb: float | None = None
    accuracy: float | None = None
    validation_accuracy: float | None = None
    drop_points: float | None = None
    validation_drop_points: float | None = None
    speedup_batch: float | None = None
    speedup_latency: float | None = None
    size_ratio: float | None = None
    validation: dict[str, float | None] = {}
    note: str | None = None


class TreeNode(Shape):
    step: str | None = None
    parent: str = ""
    reused: bool | None = None


class CompressionTable(Shape):
    """compression.json as written today: the chains, the budget, the choice, the rows (the first
    is the original), the tree (node -> parent). `steps`, `chosen`, `message`, `chosen_on`,
    `original_validation` and each row's `chosen` of earlier versions are derived, not stored."""

    original: str | None = None
    variants: list[list[str]] = []
    max_drop: float | None = None
    choice: Choice = Choice()
    rows: list[MeasuredRow] = []
    tree: dict[str, TreeNode] = {}
    skipped: list[str] = []  # nodes a time limit left unmade (pipeline.time_limit)

    @model_validator(mode="after")
    def _choice_names_a_row(self):
        if self.choice.name is not None and self.choice.name not in {r.name for r in self.rows}:
            raise ValueError(f"choice.name {self.choice.name!r} names no row of the table")
        return self


class NodeRecord(Shape):
    """node.json: what a compression node was made from (compared whole with today's)."""
    original: str
    path: list[str]
    settings: dict[str, Any] = {}


class NodeMeasurement(Shape):
    """measurement.json (and original.json): a node's row, and what it was measured from."""
    key: dict[str, Any]
    row: MeasuredRow


# pipeline.json ------------------------------------------------------------------------------------

class StageRecord(Shape):
    status: str
    seconds: Seconds | None = None
    attempts: Count | None = None
    path: str | None = None
    made: str | None = None
    pages: list[str] | None = None
    chosen: str | None = None
    message: str | None = None
    run: str | None = None


class PipelineState(Shape):
    stages: dict[str, StageRecord]  # pretune writes it from the first save on
    fit_overrides: list[str] = []
    order: list[str] = []
    chosen: str | None = None
    model: str | None = None
    load: str | None = None
    figures: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _completed_stages_say_what_they_made(self):
        for name, record in self.stages.items():
            if record.status == "completed" and name in OUTPUT_STAGES and not record.path:
                raise ValueError(f"stages.{name}: a completed stage records its output's path")
        release = self.stages.get("release")
        if release is not None and release.status == "completed" and not (self.chosen and self.model):
            raise ValueError("a completed release records the chosen run and the released model")
        return self


OUTPUT_STAGES = ("check", "search", "fit", "compress", "report", "release")  # each writes a file, a directory or a page


# check.json (data/check.py) -----------------------------------------------------------------------

class RepeatedText(Shape):
    text: str
    rows: list[str]


class Repeats(Shape):
    exact: Count
    near: Count
    listed: list[RepeatedText] = Field(default_factory=list)


class ClassFacts(Shape):
    counts: dict[str, dict[str, Count]]
    imbalance: Annotated[float, Field(ge=1)]
    majority_share: Annotated[float, Field(ge=0, le=1)]
    sampling: str
    advice: str | None = None


class Truncated(Shape):
    rows: Count
    share: Annotated[float, Field(ge=0, le=1)]


class DataCheck(Shape):
    source: str
    task: str
    text_column: str | None = None
    label_column: str | None = None
    rows: dict[str, Count]
    notices: list[str] = Field(default_factory=list)
    duplicates: dict[str, Repeats] | None = None
    leaked: dict[str, Repeats] | None = None
    empty: dict[str, Count] | None = None
    drops: dict[str, bool]
    classes: ClassFacts | None = None
    truncated: dict[str, Truncated | Count] | None = None

    @model_validator(mode="after")
    def _train_is_there(self):
        if "train" not in self.rows or (self.duplicates is not None and {"train", "all"} - set(self.duplicates)):
            raise ValueError("a data check counts the training split (rows.train, duplicates.train and .all)")
        if self.classes is not None and "train" not in self.classes.counts:
            raise ValueError("classes.counts: the training split's counts are missing")
        return self


# study.json ---------------------------------------------------------------------------------------

class BestTrial(Shape):
    number: Count
    values: dict[str, float | None]
    params: dict[str, Any] = {}


class StudySummary(Shape):
    metrics: list[str] = Field(min_length=1)
    directions: list[str]
    trials: dict[str, Count] = {}
    space: dict[str, Any] = {}
    best: BestTrial | None = None
    warnings: list[str] = []
    pareto_front: list[BestTrial] | None = None

    @model_validator(mode="after")
    def _one_direction_per_metric(self):
        if len(self.directions) != len(self.metrics):
            raise ValueError(f"{len(self.metrics)} metrics but {len(self.directions)} directions")
        if any(d not in ("minimize", "maximize") for d in self.directions):
            raise ValueError("each direction is minimize or maximize")
        return self


# checkpoints/step-N/state.json --------------------------------------------------------------------

class LoopState(Shape):
    step: Count
    epoch: Count
    batch_in_epoch: Count
    samples_seen: Count
    train_seconds: Seconds
    loss_sum: float
    loss_count: Count
    last_loss: float | None = None
    lr: float
    last_eval: dict[str, Any]
    history: list[HistoryRecord]


class CheckpointState(Shape):
    loop: LoopState
