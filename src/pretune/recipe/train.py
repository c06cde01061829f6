"""recipe.train: optimizer, schedule, loss, early stopping and the loop's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pretune.recipe.base import _Section


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
    step_size_epochs: float | None = Field(None, gt=0, description="step / exponential: epochs per decay by gamma "
                                           "(overrides step_size; converted with the run's real steps per epoch)")
    gamma: float = Field(0.5, gt=0, description="step/multistep/exponential factor; polynomial power")
    milestones: list[int] = Field(default_factory=list, description="multistep: steps where lr *= gamma")
    milestones_epochs: list[float] | None = Field(None, description="multistep: epochs where lr *= gamma "
                                                  "(overrides milestones; converted like step_size_epochs)")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor, as a fraction of lr")

    @field_validator("milestones_epochs")
    @classmethod
    def _positive(cls, value: list[float] | None) -> list[float] | None:
        if any(m <= 0 for m in value or []):
            raise ValueError("every milestone must be above 0 epochs")
        return value


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


class LabelIssuesConfig(_Section):
    source: Literal["off", "validation", "cross-validation"] = Field(
        "off", description="after the fit, rank rows whose label the model contradicts (cleanlab) over "
        "out-of-sample probabilities: the model's on validation, or K-fold cross-validated over the training "
        "split (K more fits)")
    folds: int = Field(3, ge=2, description="cross-validation: folds (fits) over the training split")
    max_rows: int = Field(200, gt=0, description="rows kept in label_issues.json, most suspect first")


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
    train_sample: int | None = Field(
        None, ge=0, description="training rows scored like validation at each evaluation (the train-"
        "validation gap in metrics.json's convergence); null: as many as validation, at most 512; 0: off "
        "(search trials leave it off unless set)")
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
    label_issues: LabelIssuesConfig = Field(default_factory=LabelIssuesConfig)
    calibrate: bool = Field(
        False, description="after the fit, fit a softmax temperature on validation (Guo et al. 2017) so that "
        "stated probabilities match accuracy; saved with the model, applied by predict, eval, serve and variants "
        "(classification tasks)")
    compile: bool | Literal["auto"] = Field(
        "auto", description="torch.compile the model (inductor); auto: only where measured to pay "
        "(train/speed.py)")
    pad_to_multiple_of: int | None = Field(
        None, gt=0, description="round each training batch's length up to a multiple of this; "
        "null: 16 when compiled (a few shapes to compile), else none")
