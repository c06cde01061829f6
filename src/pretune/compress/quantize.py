"""`quantize`: int8 weights and activations.

- onnx (default): export (unless the parent is ONNX already), ONNX Runtime's transformer
  fusions (Attention, BiasGelu, SkipLayerNormalization), then `quantize_dynamic` or, with
  calibration texts from the training split, `quantize_static`.
- torch: `torch.ao.quantization.quantize_dynamic` of every nn.Linear (see models/quantized.py
  for how it is stored: fp32 on disk, re-quantized at load).

Accuracy-gated: with a budget (`max_drop`, accuracy points on the validation split), layers are
ranked by the drop their int8 form alone causes, and the most sensitive are kept fp32 one by
one until the drop is inside the budget. The notes name the layers kept fp32.

Image runs (onnx only) default to static QDQ int8 with per-channel weight scales, calibrated on
training images: static Q/DQ pairs around each Conv are fused into QLinearConv when ONNX Runtime
loads the model (int8 in, int8 out, its fast int8 convolution kernels), while dynamic
quantization turns a Conv into ConvInteger, which measures each activation's range per call and
hands back int32 to be rescaled to float around every convolution. Per-channel scales because
depthwise convolutions' channels have very different ranges (one scale per tensor loses the
small ones).
The gate ranks stages ('_blocks.3', 'stages.1'), not encoder layers.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from pretune.compress.export import export_onnx, optimize_onnx
from pretune.compress.variant import (
    TorchRunner,
    encode_rows,
    input_batches,
    is_image,
    is_onnx,
    load_data,
    load_preprocessor_of,
    load_torch_model,
    sample_texts,
    task_of,
    write_variant,
)
from pretune.data.images import PREPROCESSOR_FILE
from pretune.errors import MissingExtraError
from pretune.evaluate import evaluate
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner
from pretune.models.quantized import quantize_torch_dynamic, write_marker
from pretune.predictor import Run
from pretune.recipe import CompressConfig, QuantizeConfig

QUANTIZABLE_OPS = ("MatMul", "Attention", "Gemm", "EmbedLayerNormalization", "Gather")


def quantize_step(parent: Run, cfg: CompressConfig, out: Path) -> Run:
    image = is_image(task_of(parent))
    qc = cfg.quantize
    qc = qc.model_copy(update={"mode": qc.mode or ("static" if image else "dynamic"),
                               "per_channel": image if qc.per_channel is None else qc.per_channel})
    budget = qc.max_drop if qc.max_drop is not None else cfg.max_drop
    if image and qc.backend == "onnx":
        return _onnx_images(parent, qc, budget, out)
    return (_onnx if qc.backend == "onnx" else _torch)(parent, qc, budget, out)


def _onnx(parent: Run, qc: QuantizeConfig, budget: float | None, out: Path) -> Run:
    try:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    except ImportError:
        raise MissingExtraError("onnxruntime", "compress") from None
    task = task_of(parent)
    data, tokenizer = load_data(parent, task), load_preprocessor_of(parent)
    max_length = parent.recipe.data.max_length
    texts = sample_texts(data, "validation", 32)
    notes: dict = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if is_onnx(parent):
            source = parent.model_path / ONNX_FILE
        else:
            model = load_torch_model(parent, "quantize", task)
            notes["export"] = export_onnx(model, tokenizer, tmp / "fp32", texts, max_length=max_length)
            source = tmp / "fp32" / ONNX_FILE
        # Static calibration cannot read ranges through ONNX Runtime's fused (contrib) ops: a static
        # model is quantized unfused (QDQ) and ONNX Runtime fuses the QDQ pairs when it loads it.
        if qc.optimize and qc.mode == "dynamic":
            source, notes["fusions"] = optimize_onnx(source, tmp / "optimized.onnx", parent.model_path, tokenizer,
                                                     texts, max_length)

        def quantize(exclude: list[str], target: Path) -> Path:
            # Shape inference cannot type the outputs of ONNX Runtime's fused (contrib) ops.
            common = {"per_channel": qc.per_channel, "weight_type": QuantType.QInt8, "nodes_to_exclude": exclude,
                      "extra_options": {"DefaultTensorType": 1}}  # onnx.TensorProto.FLOAT
            with _quiet_onnxruntime():
                if qc.mode == "dynamic":
                    quantize_dynamic(str(source), str(target), **common)
                else:
                    names = [i.name for i in OnnxRunner(source).session.get_inputs()]
                    calibration = _CalibrationReader(tokenizer, data.splits["train"].texts[:qc.calibration_samples],
                                                     max_length, names, equal_shapes=histogram_calibration(qc))
                    quantize_static(str(source), str(target), calibration, activation_type=QuantType.QUInt8,
                                    quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul", "Gather"],
                                    calibrate_method=calibration_method(qc), **common)
            return target

        final, kept, gate = _gated_int8(source, node_groups(source), quantize,
                                        _validation_scorer(data, task, tokenizer, max_length), budget, tmp)
        notes |= {"kept_fp32": kept, **gate}

        def save(model_dir: Path) -> None:
            shutil.copyfile(final, model_dir / ONNX_FILE)
            for name in parent.model_path.iterdir():
                if name.is_file() and name.suffix != ".onnx" and not name.name.startswith("model.safetensors"):
                    shutil.copyfile(name, model_dir / name.name)

        settings = qc.model_dump() | {"max_drop": budget}
        return write_variant(out, parent, "quantize", settings, save, notes=notes)


def _onnx_images(parent: Run, qc: QuantizeConfig, budget: float | None, out: Path) -> Run:
    """Export (unless the parent is ONNX), then int8 (static QDQ by default, see the docstring)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    from pretune.compress.vision import ImageCalibrationReader, conv_node_groups, export_image_onnx

    task = task_of(parent)
    data, settings = load_data(parent, task), load_preprocessor_of(parent)
    notes: dict = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if is_onnx(parent):
            source = parent.model_path / ONNX_FILE
        else:
            images = input_batches(encode_rows(data, task, settings, 0, "validation", 32), 16, 0)
            notes["export"] = export_image_onnx(load_torch_model(parent, "quantize", task), settings, tmp / "fp32",
                                                images)
            source = tmp / "fp32" / ONNX_FILE
        calibration = encode_rows(data, task, settings, 0, "train", qc.calibration_samples)

        def quantize(exclude: list[str], target: Path) -> Path:
            common = {"per_channel": qc.per_channel, "weight_type": QuantType.QInt8, "nodes_to_exclude": exclude}
            with _quiet_onnxruntime():
                if qc.mode == "dynamic":
                    quantize_dynamic(str(source), str(target), **common)
                else:
                    reader = ImageCalibrationReader(calibration, batch_size=1 if histogram_calibration(qc) else 8)
                    quantize_static(str(source), str(target), reader,
                                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                                    calibrate_method=calibration_method(qc), **common)
            return target

        final, kept, gate = _gated_int8(source, conv_node_groups(source), quantize,
                                        _validation_scorer(data, task, settings, 0), budget, tmp)
        notes |= {"kept_fp32": kept, "calibration_images": len(calibration) if qc.mode == "static" else 0, **gate}

        def save(model_dir: Path) -> None:
            shutil.copyfile(final, model_dir / ONNX_FILE)
            source_dir = parent.model_path if is_onnx(parent) else tmp / "fp32"
            for name in ("config.json", PREPROCESSOR_FILE):
                shutil.copyfile(source_dir / name, model_dir / name)

        return write_variant(out, parent, "quantize", qc.model_dump() | {"max_drop": budget}, save, notes=notes)


def histogram_calibration(qc: QuantizeConfig) -> bool:
    """Percentile and entropy stack every calibration batch's activations into one array, so the
    batches must share a shape: one sample each, texts padded to max_length."""
    return qc.calibration != "minmax"


def calibration_method(qc: QuantizeConfig):
    """ONNX Runtime's CalibrationMethod for `compress.quantize.calibration`."""
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy}[qc.calibration]


def _gated_int8(source: Path, groups: dict[str, list[str]], quantize: Callable[[list[str], Path], Path],
                validation: Callable, budget: float | None, tmp: Path) -> tuple[Path, list[str], dict]:
    """The int8 model of `source` with the groups the accuracy gate keeps fp32 left out (text and
    images alike: only the node groups and the quantize call differ): (path, kept, gate notes)."""
    kept, gate = _gated(list(groups), lambda names: validation(OnnxRunner(quantize(
        [n for g in names for n in groups[g]], tmp / "trial.onnx"))), validation(OnnxRunner(source)), budget)
    return quantize([n for g in kept for n in groups[g]], tmp / "int8.onnx"), kept, gate


def _torch(parent: Run, qc: QuantizeConfig, budget: float | None, out: Path) -> Run:
    import copy

    task = task_of(parent)
    model = load_torch_model(parent, "quantize", task)
    data, tokenizer = load_data(parent, task), load_preprocessor_of(parent)
    validation = _validation_scorer(data, task, tokenizer, parent.recipe.data.max_length)
    groups = linear_groups(model)
    kept, gate = _gated(list(groups), lambda names: validation(TorchRunner(quantize_torch_dynamic(
        copy.deepcopy(model), [n for g in names for n in groups[g]]))), validation(TorchRunner(model)), budget)
    exclude = [n for g in kept for n in groups[g]]

    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        write_marker(model_dir, exclude)

    notes = {"kept_fp32": kept, **gate,
             "disk": "fp32 weights on disk; Linear layers are quantized to int8 when loaded"}
    return write_variant(out, parent, "quantize", qc.model_dump() | {"max_drop": budget}, save, notes=notes)


def node_groups(path: Path) -> dict[str, list[str]]:
    """Quantizable node names by encoder layer ('layer.3'), in graph order; the rest 'embeddings'
    (before the first layer) or 'head' (after the last). Fused nodes lose their module path, so a
    node without one belongs to the layer of the nearest named node before it."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    groups: dict[str, list[str]] = {}
    current, seen_layer = "embeddings", False
    for node in graph.node:
        found = re.search(r"layer\.(\d+)", node.name)
        if found:
            current, seen_layer = f"layer.{found.group(1)}", True
        elif seen_layer and re.search(r"pooler|classifier", node.name):
            current = "head"
        if node.op_type in QUANTIZABLE_OPS:
            groups.setdefault(current, []).append(node.name)
    return groups


def linear_groups(model) -> dict[str, list[str]]:
    from torch import nn

    groups: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = re.search(r"layer\.(\d+)", name)
            groups.setdefault(f"layer.{found.group(1)}" if found else "head", []).append(name)
    return groups


def _validation_scorer(data, task, preprocessor, max_length: int) -> Callable:
    """Validation accuracy of a runner; the split is encoded once for every trial of the gate."""
    split = task.encode(data.splits["validation"], preprocessor, max_length)
    pad_id = preprocessor.pad_token_id or 0
    return lambda runner: evaluate(runner, split, task, 64, pad_id).get("accuracy", 0.0)


def _gated(groups: list[str], score: Callable[[list[str]], float], base: float,
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
def _quiet_onnxruntime():
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


class _CalibrationReader:
    """Training texts, 8 at a time, as ONNX Runtime feeds for static-quantization calibration;
    with `equal_shapes` (histogram calibration), one text at a time padded to `max_length`."""

    def __init__(self, tokenizer, texts: list[str], max_length: int, names: list[str], equal_shapes: bool = False):
        size, padding = (1, "max_length") if equal_shapes else (8, True)
        self._batches = iter([
            {k: v for k, v in tokenizer(texts[i:i + size], padding=padding, truncation=True,
                                        max_length=max_length, return_tensors="np").items() if k in names}
            for i in range(0, len(texts), size)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)
