"""recipe.compress: the tree of variants, each step's settings, and how variants are measured."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pretune.recipe.base import _Section


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
    backend: Literal["onnx", "torch", "openvino", "auto"] = Field(
        "onnx", description="onnx: ONNX Runtime int8; torch: torch dynamic int8; openvino: OpenVINO int8 (NNCF, "
        "static, calibrated); auto: ONNX Runtime and OpenVINO both built, the faster inside the budget kept")
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
    max_unk_rate: float | None = Field(None, ge=0, lt=1, description="keep only the most frequent training tokens "
                                       "that leave at most this share of the validation tokens out of the "
                                       "vocabulary (null: every token seen min_count times)")


class StaticConfig(_Section):
    # 256 is model2vec's default: its published models keep most of the encoder's accuracy there.
    dimensions: int | None = Field(256, gt=0, description="PCA dimensions of the static embeddings (null: the "
                                   "encoder's width)")
    vocabulary: int = Field(0, ge=0, description="most frequent training words added as tokens of their own "
                            "(model2vec's vocabulary; 0: the encoder's tokens only)")
    tokens: Literal["all", "seen"] = Field("all", description="all: distil every token of the encoder's "
                                           "vocabulary; seen: only those the training texts use, plus single "
                                           "characters (WordPiece; faster to distil, smaller)")
    max_length: int | None = Field(None, gt=0, description="tokens of a text the student reads (null: the teacher "
                                   "run's max_length); it costs almost nothing per token, so it may read whole "
                                   "documents the teacher cut")
    epochs: int = Field(30, gt=0, description="passes of the classifier over the teacher-labelled texts")
    lr: float = Field(3e-3, gt=0, description="peak learning rate of the classifier (AdamW, cosine decay)")
    temperature: float = Field(1.0, gt=0, description="softmax temperature of the teacher's soft labels")
    unlabeled: str | None = Field(None, description="a file of more texts the teacher labels for the classifier "
                                  "(.txt: one per line; a table: the recipe's text column)")


class ExportConfig(_Section):
    format: Literal["onnx", "openvino"] = Field("onnx", description="onnx: ONNX Runtime; openvino: OpenVINO IR "
                                                "converted from the checked ONNX export")
    opset: int = Field(17, ge=14, description="ONNX opset")
    optimize: bool = Field(False, description="apply ONNX Runtime transformer fusions to the export")
    tolerance: float = Field(1e-3, gt=0, description="largest |logit difference| to torch allowed")


class MeasureConfig(_Section):
    threads: int = Field(2, gt=0, description="intra-op threads for every backend")
    samples: int = Field(256, gt=0, description="test texts timed (accuracy uses the whole test split)")
    repeats: int = Field(3, gt=0, description="timed passes; the median counts")
    batch_size: int = Field(32, gt=0, description="throughput batch size")
    isolate: bool = Field(True, description="measure each variant in a fresh process (fair peak memory)")
    rounds: int = Field(3, gt=0, description="a compression's throughput: rounds interleaved across its rows, "
                        "each row keeping its best")
    # A floor under the measured spread: three rounds can agree by chance on a noisy machine.
    tie: float = Field(0.03, ge=0, lt=1, description="throughputs within this fraction of the fastest (or its "
                       "measured spread, if larger) are tied; a tie goes to accuracy, then size, then chain length")
    evaluate: bool = Field(True, description="also measure test accuracy (off: timing only)")


class CompressConfig(_Section):
    steps: list[str] | None = Field(
        None, description="one chain, in order: distill, prune, trim-vocab, quantize, export (or static alone); "
        "each runs on the one before (null: `variants`)")
    variants: list[list[str]] | None = Field(
        None, description="a tree of chains, e.g. [[quantize], [distill, quantize]]; shared prefixes run once "
        "(null: `steps` when given, else the input kind's default tree)")
    max_drop: float | None = Field(None, ge=0, allow_inf_nan=False,
                                   description="validation accuracy points a variant may lose; names the fastest")
    distill: DistillConfig = Field(default_factory=DistillConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    quantize: QuantizeConfig = Field(default_factory=QuantizeConfig)
    trim_vocab: TrimVocabConfig = Field(default_factory=TrimVocabConfig)
    static: StaticConfig = Field(default_factory=StaticConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)

    @field_validator("variants", mode="before")
    @classmethod
    def _chains(cls, value):
        if value is not None and (not isinstance(value, list)
                                  or not all(isinstance(chain, list) for chain in value)):
            raise ValueError("a list of chains, each a list of step names, e.g. [[quantize], [distill, quantize]]")
        return value
