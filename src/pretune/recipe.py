"""The Recipe: one typed, validated description of a run.

Precedence is defaults < YAML < `--set section.key=value`. Unknown keys and wrong types are
errors that name the key path. The resolved recipe is saved with every run and checkpoint.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer, model_validator

from pretune.errors import PretuneError


class _Section(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `epochs: .nan` is a typo, never a setting (it trained to
    # NaN and was marked completed).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class HeadConfig(_Section):
    hidden_size: int | None = Field(None, gt=0, description="MLP head hidden width (null: keep the linear head)")
    dropout: float = Field(0.1, ge=0, lt=1, description="MLP head dropout")
    activation: Literal["gelu", "relu", "tanh"] = Field("gelu", description="MLP head activation")


class SurgeryConfig(_Section):
    keep_layers: list[int] | None = Field(None, description="encoder layers to keep, e.g. [0, 2, 4]")
    num_layers: int | None = Field(None, gt=0, description="keep this many layers, evenly spaced")
    reinit_top_layers: int = Field(0, ge=0, description="re-initialise the top k encoder layers")
    share_layers: int | None = Field(
        None, gt=1, description="ALBERT-style: each run of this many layers shares one set of weights")
    head: HeadConfig = Field(default_factory=HeadConfig)


class ModelConfig(_Section):
    source: str = Field("minilm-l6", description="bundled alias, local Hugging Face model dir, or hub id")
    dropout: float | None = Field(None, ge=0, lt=1, description="override hidden dropout")
    attention_dropout: float | None = Field(None, ge=0, lt=1, description="override attention dropout")
    layer_prefixes: list[str] | None = Field(
        None, description="for architectures pretune does not know: module-name prefixes of the layer "
        "groups, bottom (embeddings) to top; parameters under none of them are the head")
    surgery: SurgeryConfig = Field(default_factory=SurgeryConfig)
    allow_pickle: bool = Field(
        False, description="load pickled weights (pytorch_model.bin) when a model directory has no "
        "safetensors (still weights_only: tensors, never code)")


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


class OptimizerConfig(_Section):
    name: str = Field("adamw", description="sgd, adam, adamw, rmsprop, adagrad")
    # 1e-4 at batch 32: transformers' 5e-5 at batch 8 scaled by sqrt(4); measured in
    # benchmarks/fit_throughput.py (5e-5 at batch 32 lost 12 points in one epoch).
    lr: float = Field(1e-4, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.01, ge=0, description="not applied to biases and norm weights")
    momentum: float = Field(0.9, ge=0, description="sgd / rmsprop momentum")
    nesterov: bool = Field(False, description="sgd Nesterov momentum")
    betas: tuple[float, float] = Field((0.9, 0.999), description="adam / adamw betas")
    eps: float = Field(1e-8, gt=0, description="adam / adamw / rmsprop / adagrad epsilon")


class ScheduleConfig(_Section):
    name: str = Field("linear", description="constant, step, multistep, exponential, cosine, linear, polynomial, "
                      "slanted_triangular, one_cycle")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="fraction of steps of linear warm-up")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up steps (overrides ratio)")
    step_size: int = Field(100, gt=0, description="step / exponential: steps per decay by gamma")
    gamma: float = Field(0.5, gt=0, description="step/multistep/exponential factor; polynomial power")
    milestones: list[int] = Field(default_factory=list, description="multistep: steps where lr *= gamma")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor, as a fraction of lr")


class LossConfig(_Section):
    name: str | None = Field(None, description="null: the task's default (cross_entropy; mse for regression; "
                             "bce for multi-label); also focal, huber")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross-entropy label smoothing")
    class_weights: Literal["balanced"] | list[float] | None = Field(
        None, description="'balanced' (from label counts) or one weight per class"
    )
    focal_gamma: float = Field(2.0, ge=0, description="focal loss focusing parameter")
    huber_delta: float = Field(1.0, gt=0, description="huber: where the loss turns from squared to linear")
    positive_weights: bool = Field(
        False, description="bce: weigh each label's positives by its negatives / positives in train")


class EarlyStoppingConfig(_Section):
    patience: int | None = Field(None, gt=0, description="evaluations without gain before stop")
    metric: str = Field("loss", description="validation metric watched")
    mode: Literal["min", "max", "auto"] = Field("auto", description="auto: min for loss/mse/mae")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as a gain")


class TrainConfig(_Section):
    epochs: float = Field(3, gt=0, description="passes over the training data (may be fractional)")
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps")
    batch_size: int = Field(32, gt=0, description="samples per forward pass, per device")
    eval_batch_size: int = Field(64, gt=0, description="samples per evaluation forward pass")
    gradient_accumulation_steps: int = Field(1, gt=0, description="micro-batches per optimizer step")
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip gradients (null: off)")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 where the device computes it fast, else fp32"
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    eval_every_steps: int | None = Field(None, gt=0, description="also evaluate every N steps")
    evaluations: int | None = Field(
        None, gt=0, description="also evaluate this many times, evenly spaced over the fit's steps (the loop "
        "turns it into eval_every_steps, which wins when both are set)")
    keep_best: str | None = Field(
        None, description="end with the weights of the best validation evaluation of this metric "
        "(e.g. accuracy), not the last (transformers: load_best_model_at_end)")
    log_every_steps: int = Field(10, gt=0, description="train-loss log interval")
    checkpoint_every_steps: int | None = Field(
        200, gt=0, description="checkpoint interval (plus one at each epoch end)"
    )
    keep_checkpoints: int = Field(2, gt=0, description="newest checkpoints kept on disk")
    keep_checkpoints_after_fit: int = Field(
        0, ge=0, description="checkpoints kept once a fit has completed (0: none; the model stays)")
    dataloader_workers: int | None = Field(
        None, ge=0, description="processes collating (and augmenting) training batches ahead of the step; "
        "null: 1 for augmented images on 2+ cores, else 0 (in the training process)"
    )
    compile: bool | Literal["auto"] = Field(
        "auto", description="torch.compile the model (inductor); auto: only where measured to pay "
        "(train/speed.py)")
    pad_to_multiple_of: int | None = Field(
        None, gt=0, description="round each training batch's length up to a multiple of this; "
        "null: 16 when compiled (a few shapes to compile), else none")


class GroupOverride(_Section):
    match: str = Field(..., description="regex searched in parameter names")
    lr: float | None = Field(None, gt=0, description="learning rate of the matched parameters")
    weight_decay: float | None = Field(None, ge=0, description="weight decay of the matched parameters")
    trainable: bool | None = Field(None, description="freeze (false) or unfreeze (true) them")


class LoraConfig(_Section):
    rank: int = Field(8, gt=0, description="LoRA rank r")
    alpha: float = Field(16, gt=0, description="LoRA scaling alpha")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the LoRA path")
    target_modules: list[str] | None = Field(None, description="null: per-architecture default")
    merge: bool = Field(True, description="merge adapters into a plain model on save")


class StrategyConfig(_Section):
    name: str = Field("full", description="full, freeze, llrd, gradual, lora, bitfit")
    train_top_layers: int = Field(0, ge=0, description="freeze: also train the top k encoder layers")
    cache_features: bool = Field(
        True, description="freeze (train_top_layers 0): compute the frozen encoder's output once per row "
        "and train the head on it from the second epoch on")
    decay: float = Field(0.9, gt=0, le=1, description="llrd: lr multiplier per layer down from the head")
    unfreeze_every_epochs: int | None = Field(1, gt=0, description="gradual: epochs between unfreezes")
    unfreeze_every_steps: int | None = Field(None, gt=0, description="gradual: steps between unfreezes")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    groups: list[GroupOverride] = Field(default_factory=list, description="per-parameter overrides")


class DistillConfig(_Section):
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the KL term: (1-a) L_task + a T^2 KL")
    temperature: float = Field(2.0, gt=0, description="softmax temperature T of teacher and student")
    num_layers: int | None = Field(None, gt=0, description="student layers, evenly spaced (null: half the teacher's)")
    student: str | None = Field(None, description="a model directory to use as the student instead of surgery")
    hidden_weight: float = Field(0.0, ge=0, description="weight of hidden-state MSE (same-width students only)")
    epochs: float | None = Field(None, gt=0, description="student epochs (null: the teacher recipe's)")
    lr: float | None = Field(None, gt=0, description="student peak lr (null: the teacher recipe's)")
    full_train: bool = Field(False, description="train the student on every training row, not the teacher "
                             "recipe's max_train_samples slice")


class PruneConfig(_Section):
    method: Literal["structured", "magnitude"] = Field(
        "structured", description="structured: remove heads and FFN neurons (image runs: convolution channels); "
                                   "magnitude: zero small weights")
    heads: float = Field(0.3, ge=0, lt=1, description="structured: fraction of attention heads removed per layer")
    neurons: float = Field(0.3, ge=0, lt=1, description="structured: fraction of FFN neurons removed per layer")
    score_batches: int = Field(8, gt=0, description="structured: training batches scored (gradient x activation); "
                               "image runs: batches of 32 re-estimating BatchNorm statistics")
    channels: float = Field(0.3, ge=0, lt=1, description="image runs: fraction of convolution channels removed")
    # ONNX Runtime's blocked (NCHWc) convolutions need channel counts in multiples of 8: a Lite0
    # pruned to arbitrary counts ran 3x slower in ONNX Runtime fp32 than the unpruned one.
    channel_multiple: int = Field(8, gt=0, description="image runs: each layer keeps a multiple of this many channels")
    sparsity: float = Field(0.5, ge=0, lt=1, description="magnitude: fraction of encoder weights zeroed")
    scope: Literal["global", "layer"] = Field("global", description="magnitude: rank weights globally or per matrix")
    rounds: int = Field(1, gt=0, description="magnitude: gradual rounds, fine-tuning after each")
    recovery_epochs: float = Field(1.0, ge=0, description="fine-tuning epochs after pruning (0: none)")
    lr: float | None = Field(None, gt=0, description="recovery lr (null: half the run recipe's)")
    recovery_distill: float = Field(0.5, ge=0, le=1, description="recovery: weight of distillation from the "
                                    "unpruned parent's logits (0: labels alone; off for augmented images)")


class QuantizeConfig(_Section):
    backend: Literal["onnx", "torch"] = Field("onnx", description="onnx: ONNX Runtime int8; torch: torch dynamic int8")
    mode: Literal["dynamic", "static"] | None = Field(
        None, description="onnx: dynamic or static (calibrated) int8 (null: static for images, dynamic for text)")
    # Measured, not fixed: on MiniLM (benchmarks/compress_tradeoff.py) the fused int8 model was ~5%
    # faster at batch 1 but ~13% slower at batch 32 than the unfused one on one CPU.
    optimize: bool | Literal["auto"] = Field(
        "auto", description="onnx dynamic: ONNX Runtime transformer fusions before quantizing (auto: with and "
        "without, the one faster at batch 32 on this CPU kept)")
    calibration_samples: int = Field(128, gt=0, description="static: training texts or images used for calibration")
    # Percentile by default: benchmarks/compress_tradeoff.py measured MiniLM static int8 at 0.78
    # points' loss with it against 2.12 with min/max; Lite0 0.0 against 0.75 (vision_compress.py).
    calibration: Literal["minmax", "percentile", "entropy"] = Field(
        "percentile", description="static: activation ranges from the calibration data's 99.999th percentile "
        "(clips rare outliers), min/max, or the KL-closest histogram (entropy)")
    per_channel: bool | None = Field(None, description="onnx: per-channel weight scales (null: on for images only)")
    max_drop: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="accuracy points (validation) int8 may lose; past it, sensitive layers stay fp32")


class TrimVocabConfig(_Section):
    min_count: int = Field(1, gt=0, description="keep tokens seen at least this often in the training texts")
    keep_characters: bool = Field(True, description="also keep every single-character piece (and its ## form), "
                                  "so an unseen word is spelled in pieces instead of becoming [UNK]")


class ExportConfig(_Section):
    opset: int = Field(17, ge=14, description="ONNX opset")
    optimize: bool = Field(False, description="apply ONNX Runtime transformer fusions to the export")
    tolerance: float = Field(1e-3, gt=0, description="largest |logit difference| to torch allowed")


class MeasureConfig(_Section):
    threads: int = Field(2, gt=0, description="intra-op threads for every backend")
    samples: int = Field(256, gt=0, description="test texts timed (accuracy uses the whole test split)")
    repeats: int = Field(3, gt=0, description="timed passes; the median counts")
    batch_size: int = Field(32, gt=0, description="throughput batch size")
    isolate: bool = Field(True, description="measure each variant in a fresh process (fair peak memory)")
    evaluate: bool = Field(True, description="also measure test accuracy (off: timing only)")


class CompressConfig(_Section):
    steps: list[str] | None = Field(
        None, description="one chain, in order: distill, prune, trim-vocab, quantize, export; each runs on the one "
        "before (null: `variants`)")
    variants: list[list[str]] | None = Field(
        None, description="a tree of chains, e.g. [[quantize], [distill, quantize]]; shared prefixes run once "
        "(null: `steps` when given, else the input kind's default tree)")
    max_drop: float | None = Field(None, ge=0, allow_inf_nan=False,
                                   description="validation accuracy points a variant may lose; names the fastest")
    distill: DistillConfig = Field(default_factory=DistillConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    trim_vocab: TrimVocabConfig = Field(default_factory=TrimVocabConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)

    @field_validator("variants", mode="before")
    @classmethod
    def _chains(cls, value):
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(chain, list) for chain in value)):
            raise ValueError("a list of chains, each a list of step names, e.g. [[quantize], [distill, quantize]]")
        return value


class SpaceEntry(_Section):
    """One searched key: exactly one of int / uniform / loguniform / choice, optionally `when`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    int_: list[int] | None = Field(None, alias="int", description="integers in [low, high]")
    uniform: list[float] | None = Field(None, description="floats in [low, high]")
    loguniform: list[float] | None = Field(None, description="floats in [low, high], sampled on a log scale")
    choice: list[Any] | None = Field(None, description="one of these values")
    step: float | None = Field(None, gt=0, description="int / uniform: spacing of the values (grid points)")
    when: dict[str, Any] | None = Field(
        None, description="searched only when these searched keys take these values (a value or a list)")

    @model_serializer(mode="wrap")
    def _as_written(self, handler) -> dict:
        # Saved as a user writes it: `int`, not the attribute name, and no unset kinds.
        return {("int" if k == "int_" else k): v for k, v in handler(self).items() if v is not None}


class SearchConfig(_Section):
    """`pretune search`: which keys to search, how to sample and prune, where the study lives."""

    metric: str | list[str] = Field(
        "auto", description="validation metric to optimise (auto: the task's headline: accuracy, mse, f1, ...); "
        "a list (e.g. [accuracy, train_seconds]) makes a multi-objective study with a Pareto front")
    direction: Literal["auto", "maximize", "minimize"] | list[Literal["auto", "maximize", "minimize"]] = Field(
        "auto", description="auto: minimize loss, mse, mae, train_seconds; maximize the rest")
    trials: int = Field(20, gt=0, description="trials run to an end (complete, pruned or failed), all workers together")
    timeout: str | float | None = Field(
        None, description="start no trial after this long: 90s, 30m, 2h, or seconds")
    sampler: str = Field("tpe", description="grid, random, qmc, tpe, gp, cmaes, nsga2")
    pruner: str = Field("asha", description="none, median, asha, hyperband (single metric only)")
    evaluations: int = Field(4, gt=0, description="validation passes per trial, the steps pruners compare "
                             "(sets train.evaluations)")
    startup_trials: int = Field(5, ge=0, description="trials before tpe / gp / median pruning use the history")
    seed: int | None = Field(None, ge=0, lt=2**32, description="sampler seed (null: the recipe's seed)")
    space: dict[str, SpaceEntry] = Field(default_factory=dict, description="dotted recipe key -> its range")
    keep: Literal["none", "best", "all"] = Field(
        "best", description="trials that keep model weights (all: also checkpoints, plots and test metrics)")
    storage: str | None = Field(None, description="optuna storage URL (null: SQLite in the study directory; "
                                "postgresql://... to share one study between machines)")
    study: str | None = Field(None, description="study name (null: the study directory's name)")
    workers: int = Field(1, gt=0, description="local worker processes; the cores are split between them")
    heartbeat_seconds: int = Field(20, gt=0, description="a running trial's heartbeat interval")
    grace_seconds: int | None = Field(None, gt=0, description="a trial silent this long is failed and "
                                      "retried (null: 3 heartbeats)")
    retries: int = Field(2, ge=0, description="times a trial whose worker died is retried")


class MlflowConfig(_Section):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (null: sqlite:///mlflow.db beside the runs)")
    experiment: str = Field("pretune", description="MLflow experiment the runs go into")


class TrackingConfig(_Section):
    """Experiment tracking, off by default; each backend is imported only when it is on."""

    tensorboard: bool = Field(False, description="TensorBoard event files under the run (tb/)")
    mlflow: MlflowConfig | bool = Field(
        False, description="one MLflow run per fit (true, or {tracking_uri, experiment}); false: off")

    @model_validator(mode="after")
    def _mlflow_settings(self) -> TrackingConfig:
        if self.mlflow is True:  # `mlflow: true` means the defaults
            object.__setattr__(self, "mlflow", MlflowConfig())
        return self


class Recipe(_Section):
    """Everything a run does. Build from YAML with `Recipe.load(path, overrides)`."""

    # numpy takes seeds in [0, 2**32): a negative one was a traceback from deep in a fit.
    seed: int = Field(42, ge=0, lt=2**32, description="seeds model init, data order and dropout")
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    report: bool = Field(True, description="fit, search and compress write report.html into their directory")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _task_defaults(self) -> Recipe:
        for dotted, value in self.task_defaults().items():
            *sections, key = dotted.split(".")
            node = self
            for name in sections:
                node = getattr(node, name)
            object.__setattr__(node, key, value)  # unset stays unset: a later dump leaves it out
        return self

    def task_defaults(self) -> dict[str, Any]:
        """The settings taken from the task's defaults because the recipe set none (dotted keys)."""
        applied = {}
        for dotted, value in TASK_DEFAULTS.get(self.data.task, {}).items():
            node: BaseModel = self
            for name in dotted.split("."):
                if name not in node.model_fields_set:
                    applied[dotted] = value
                    break
                node = getattr(node, name)
        return applied

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None) -> Recipe:
        raw: dict[str, Any] = {}
        if path is not None:
            raw = read_yaml(path)
        for item in overrides or []:
            apply_override(raw, item)
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Recipe:
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise PretuneError(f"invalid recipe: {_first_error(e)}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def updated(self, changes: dict[str, Any]) -> Recipe:
        """A new, validated recipe with each dotted key set (`{"train.epochs": 1}`); a key naming
        a section replaces it whole (`{"model.surgery": {}}`). What a task fills in by default
        (data columns) is filled again for the new values, as when the recipe was read."""
        raw = self.model_dump(mode="json", exclude_unset=True)
        for dotted, value in changes.items():
            keys = dotted.split(".")
            _check_path(keys)
            node = raw
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value.model_dump(mode="json") if isinstance(value, BaseModel) else copy.deepcopy(value)
        return Recipe.from_dict(raw)


# A recipe is data of bounded size. YAML aliases let 451 bytes name a billion-node tree (the
# "billion laughs"): the size is counted with every alias expanded, before anything is built.
MAX_RECIPE_BYTES = 1 << 20
MAX_EXPANDED_SIZE = 1_000_000  # nodes plus scalar characters, aliases expanded


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PretuneError(f"recipe file not found: {path}")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise PretuneError(f"{path} is {path.stat().st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    except UnicodeDecodeError:
        raise PretuneError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise PretuneError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise PretuneError(f"{path} must hold a mapping of sections, not {type(raw).__name__}")
    return raw


def load_yaml(text: str, where: str) -> Any:
    """yaml.safe_load, refusing a document whose aliases expand past MAX_EXPANDED_SIZE."""
    if len(text) > MAX_RECIPE_BYTES:
        raise PretuneError(f"{where} is {len(text):,} characters; a recipe is at most {MAX_RECIPE_BYTES:,}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set())
        except RecursionError:
            size = None
        if size is None or size > MAX_EXPANDED_SIZE:
            raise PretuneError(f"{where}: YAML aliases expand it past {MAX_EXPANDED_SIZE:,} nodes and characters "
                               f"(or refer to themselves); write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node, sizes: dict, open_: set) -> int | None:
    """Nodes plus scalar characters with aliases expanded (a shared node counted each time it is
    used); None for a node that contains itself."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        return None
    if isinstance(node, yaml.ScalarNode):
        size = 1 + len(node.value)
    else:
        open_.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        size = 1
        for child in children:
            inner = _expanded_size(child, sizes, open_)
            if inner is None:
                return None
            size += inner
            if size > MAX_EXPANDED_SIZE:
                break  # far enough: the count no longer matters
        open_.discard(key)
    sizes[key] = size
    return size


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (1e-4, true, [1,2])."""
    if "=" not in item:
        raise PretuneError(f"--set expects section.key=value, got {item!r}")
    dotted, value = item.split("=", 1)
    keys = dotted.strip().split(".")
    _check_path(keys)
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise PretuneError(f"--set {dotted!r}: {key!r} is not a section")
    try:
        node[keys[-1]] = load_yaml(value, f"--set {dotted}") if value.strip() else None
    except yaml.YAMLError:
        node[keys[-1]] = value


def _check_path(keys: list[str]) -> None:
    model: type[BaseModel] = Recipe
    for i, key in enumerate(keys):
        fields = model.model_fields
        if key not in fields:
            where = ".".join(keys[:i]) or "recipe"
            raise PretuneError(
                f"unknown key {'.'.join(keys[: i + 1])!r}; {where} has: {', '.join(fields)}"
            )
        annotation = fields[key].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i < len(keys) - 1:
            raise PretuneError(f"{'.'.join(keys[: i + 1])!r} is a value, not a section")


def validated(section: type[BaseModel], where: str, **values) -> BaseModel:
    """A config section built from a verb's options (`measure(threads=0)`), its problem one line."""
    try:
        return section(**values)
    except ValidationError as e:
        raise PretuneError(f"{where}: {_first_error(e)}") from None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal[")))
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc!r}"
    return f"{loc}: {err['msg']} (got {err.get('input')!r})".replace("\n", " ")


RecipeLike = Recipe | dict | str | Path


def as_recipe(recipe: RecipeLike, overrides: list[str] | None = None) -> Recipe:
    """A Recipe from a Recipe, a dict or a YAML path, with `section.key=value` overrides on top."""
    if isinstance(recipe, (str, Path)):
        return Recipe.load(recipe, overrides)
    if isinstance(recipe, Recipe) and not overrides:
        return recipe
    # exclude_unset: what the recipe left to defaults stays a default, so that `--set data.task=...`
    # on a bare Recipe() still gets that task's columns and settings.
    raw = recipe.model_dump(mode="json", exclude_unset=True) if isinstance(recipe, Recipe) else copy.deepcopy(recipe)
    for item in overrides or []:
        apply_override(raw, item)
    return Recipe.from_dict(raw)
