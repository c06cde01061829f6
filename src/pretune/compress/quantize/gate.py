"""What text and image quantization share: ONNX Runtime int8 (dynamic, or static with one
calibration reader), and the accuracy gate.

Accuracy-gated: with a budget (`max_drop`, accuracy points on the validation split), node groups
(a text model's encoder layers, a CNN's stages) are ranked by the drop their int8 form alone
causes, and the most sensitive are kept fp32 one by one until the drop is inside the budget. The
notes name the groups kept fp32.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import numpy as np

from pretune.compress.loaded import LoadedRun, input_batches
from pretune.data.encode import EncodedSplit
from pretune.errors import MissingExtraError, PretuneError
from pretune.evaluate import evaluate
from pretune.models.onnx_runner import OnnxRunner
from pretune.recipe import CompressConfig, QuantizeConfig

# The node types a group lists for exclusion (ONNX Runtime quantizes these; the rest run as they are).
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul", "Attention", "EmbedLayerNormalization", "Gather")
CALIBRATION_BATCH = 8


def budget_of(qc: QuantizeConfig, max_drop: float | None) -> float | None:
    return qc.max_drop if qc.max_drop is not None else max_drop


def quantize_settings(cfg: CompressConfig) -> dict:
    """The quantize section, without the tree's budget: whether a finished node still holds under
    a new budget is tree.py's `_gate_changed` (changing only --max-drop need not rebuild it)."""
    return cfg.quantize.model_dump(mode="json")


def check_gate(parent, cfg: CompressConfig) -> None:
    """The gate counts validation accuracy points: a budget on a task without accuracy is refused."""
    if budget_of(cfg.quantize, cfg.max_drop) is not None and parent.task.budget_metric is None:
        key = "compress.quantize.max_drop" if cfg.quantize.max_drop is not None else "compress.max_drop"
        raise PretuneError(f"{key} counts accuracy points, which a {parent.task.name} task does not report; "
                           f"remove it")


def histogram_calibration(qc: QuantizeConfig) -> bool:
    """Percentile and entropy stack every calibration batch's activations into one array, so the
    batches must share a shape: one sample each, texts padded to max_length."""
    return qc.calibration != "minmax"


def calibration_method(qc: QuantizeConfig):
    """ONNX Runtime's CalibrationMethod for `compress.quantize.calibration`."""
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[qc.calibration]


class CalibrationReader:
    """Training rows as ONNX Runtime feeds for static-quantization calibration (its
    CalibrationDataReader): collated as the model takes them, `batch_size` at a time, only the
    graph's inputs; with `pad_to`, every text padded to that length (equal shapes)."""

    def __init__(self, split: EncodedSplit, names: list[str], pad_id: int, batch_size: int,
                 pad_to: int | None = None):
        feeds = []
        for batch in input_batches(split, batch_size, pad_id):
            feed = {k: v.numpy() for k, v in batch.items() if k in names}
            if pad_to:
                feed = {k: np.pad(v, ((0, 0), (0, pad_to - v.shape[1])),
                                  constant_values=pad_id if k == "input_ids" else 0) for k, v in feed.items()}
            feeds.append(feed)
        self._feeds = iter(feeds)

    def get_next(self) -> dict | None:
        return next(self._feeds, None)


def int8_quantizer(source: Path, qc: QuantizeConfig, calibration: EncodedSplit | None, pad_id: int,
                   pad_to: int | None, op_types: list[str] | None = None, extra: dict | None = None) -> Callable:
    """`quantize(exclude, target) -> target`: ONNX Runtime int8 of `source` with the nodes
    `exclude` left fp32: dynamic, or static QDQ calibrated on `calibration` (ONNX Runtime fuses
    the Q/DQ pairs when it loads the model)."""
    try:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    except ImportError:
        raise MissingExtraError("onnxruntime", "compress") from None

    def quantize(exclude: list[str], target: Path) -> Path:
        common = {"per_channel": qc.per_channel, "weight_type": QuantType.QInt8, "nodes_to_exclude": exclude,
                  **({"extra_options": extra} if extra else {})}
        with quiet_onnxruntime():
            if qc.mode == "dynamic":
                quantize_dynamic(str(source), str(target), **common)
            else:
                names = [i.name for i in OnnxRunner(source).session.get_inputs()]
                histogram = histogram_calibration(qc)
                reader = CalibrationReader(calibration, names, pad_id, 1 if histogram else CALIBRATION_BATCH,
                                           pad_to if histogram else None)
                quantize_static(str(source), str(target), reader, activation_type=QuantType.QUInt8,
                                quant_format=QuantFormat.QDQ, calibrate_method=calibration_method(qc),
                                **({"op_types_to_quantize": op_types} if op_types else {}), **common)
        return target

    return quantize


def validation_scorer(parent: LoadedRun) -> Callable:
    """Validation accuracy of a runner; the split is encoded once, for every trial of the gate."""
    split = parent.encoded("validation")
    return lambda runner: evaluate(runner, split, parent.task, 64, parent.pad_id).get("accuracy", 0.0)


def gated_int8(source: Path, groups: dict[str, list[str]], quantize: Callable[[list[str], Path], Path],
               validation: Callable, budget: float | None, tmp: Path) -> tuple[Path, list[str], dict]:
    """The int8 model of `source` with the groups the accuracy gate keeps fp32 left out:
    (path, kept, gate notes)."""
    kept, gate = gated(list(groups), lambda names: validation(OnnxRunner(quantize(
        [n for g in names for n in groups[g]], tmp / "trial.onnx"))), validation(OnnxRunner(source)), budget)
    return quantize([n for g in kept for n in groups[g]], tmp / "int8.onnx"), kept, gate


def gated(groups: list[str], score: Callable[[list[str]], float], base: float,
          budget: float | None) -> tuple[list[str], dict]:
    """Groups to keep fp32: none if int8 everywhere is inside the budget, else the most
    sensitive first (each scored with only itself in int8) until the budget holds."""
    accuracy = score([])
    figures = {"validation_accuracy_fp32": base, "validation_accuracy_int8": accuracy}
    if budget is None or (base - accuracy) * 100 <= budget:
        return [], figures
    drop_alone = {g: base - score([o for o in groups if o != g]) for g in groups}
    ranked = sorted(groups, key=lambda g: -drop_alone[g])
    kept: list[str] = []
    for group in ranked:
        kept.append(group)
        accuracy = score(kept)
        if (base - accuracy) * 100 <= budget:
            break
    figures |= {"validation_accuracy_int8": accuracy, "sensitivity": drop_alone}
    return kept, figures


@contextmanager
def quiet_onnxruntime():
    # ONNX Runtime logs "consider pre-processing" per call and its histogram calibrators print
    # their progress to stdout, which is the CLI's (`--json`) output.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
