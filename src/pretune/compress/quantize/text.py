"""`quantize` of a text run: int8 weights and activations.

- onnx (default): export (unless the parent is ONNX already), optionally ONNX Runtime's
  transformer fusions (Attention, BiasGelu, SkipLayerNormalization), then `quantize_dynamic` or,
  with calibration texts from the training split, `quantize_static`. `optimize: auto` builds the
  int8 model with and without the fusions and keeps the fused one only when it runs clearly faster
  at batch 32 on this CPU (measured on MiniLM: fused 5% faster at batch 1 and 13% slower at batch
  32 on one machine; 9% faster at batch 32 on another, quiet, and 14% slower there beside a test
  run; which wins depends on the CPU, the model's shapes and the load, so it is measured, not
  fixed). "Clearly": the plain graph slower by more than FUSION_MARGIN and than the rounds' own
  spread (compress/choice.py's tie between variants), because those 9% and 14% were two identical
  compressions that kept different graphs.
- torch: `torch.ao.quantization.quantize_dynamic` of every nn.Linear (see models/quantized.py
  for how it is stored: fp32 on disk, re-quantized at load).
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

from pretune.compress import base
from pretune.compress.choice import noise, tied_with
from pretune.compress.export.fusions import optimize_onnx
from pretune.compress.export.text import CHECK_ROWS, export_onnx
from pretune.compress.loaded import LoadedRun
from pretune.compress.quantize.gate import (
    QUANTIZABLE_OPS,
    budget_of,
    check_gate,
    gated,
    gated_int8,
    int8_quantizer,
    quantize_settings,
    validation_scorer,
)
from pretune.compress.quantize.openvino import copy_openvino, openvino_int8, pick_backend
from pretune.compress.rounds import throughput_of, time_rounds
from pretune.compress.variant import scratch, write_variant
from pretune.evaluate import TorchRunner
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner
from pretune.models.openvino_runner import OpenVinoRunner
from pretune.models.quantized import quantize_torch_dynamic, write_marker
from pretune.recipe import CompressConfig, QuantizeConfig

TIMING_ROUNDS = 5  # optimize auto: interleaved rounds, each candidate keeps its best
FUSION_MARGIN = 0.1  # the fused graph is kept when faster by more than this (or the rounds' spread)


def _takes(cfg: CompressConfig) -> tuple[str, ...]:
    return ("torch-fp32",) if cfg.quantize.backend == "torch" else ("torch-fp32", "onnx-fp32")


def _gives(cfg: CompressConfig) -> str:
    return {"torch": "torch-int8", "openvino": "openvino-int8"}.get(cfg.quantize.backend, "onnx-int8")


@base.register("quantize", "text", takes=_takes, gives=_gives, settings=quantize_settings, check=check_gate)
def quantize_text(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    qc = cfg.quantize
    qc = qc.model_copy(update={"mode": qc.mode or "dynamic", "per_channel": bool(qc.per_channel)})
    budget = budget_of(qc, cfg.max_drop)
    return (_torch if qc.backend == "torch" else _onnx)(parent, qc, budget, out)


def _onnx(parent: LoadedRun, qc: QuantizeConfig, budget: float | None, out: Path) -> LoadedRun:
    batches = parent.batches("validation", CHECK_ROWS, 16)
    notes: dict = {}
    validation = validation_scorer(parent)
    with scratch(parent) as tmp:
        if parent.backend == "onnx-fp32":
            source = parent.model_path / ONNX_FILE
            config = None
        else:
            model = parent.model("quantize")
            notes["export"] = export_onnx(model, parent.preprocessor, tmp / "fp32", batches)
            source, config = tmp / "fp32" / ONNX_FILE, model.config
        calibration = parent.encoded("train", qc.calibration_samples) if qc.mode == "static" else None
        # The DefaultTensorType: shape inference cannot type the outputs of ONNX Runtime's fused ops.
        extra = {"DefaultTensorType": 1}  # onnx.TensorProto.FLOAT

        def int8_of(graph: Path, where: Path) -> tuple[Path, list[str], dict]:
            where.mkdir()
            quantize = int8_quantizer(graph, qc, calibration, parent.pad_id, parent.max_length,
                                      op_types=["MatMul", "Gather"], extra=extra)
            return gated_int8(graph, node_groups(graph), quantize, validation, budget, where)

        final, kept, gate = int8_of(source, tmp / "unfused") if qc.backend != "openvino" else (None, [], {})
        # Static calibration cannot read ranges through ONNX Runtime's fused (contrib) ops: a static
        # model is quantized unfused (QDQ) and ONNX Runtime fuses the QDQ pairs when it loads it.
        if qc.optimize and qc.mode == "dynamic" and final is not None:
            if config is None:
                from transformers import AutoConfig

                config = AutoConfig.from_pretrained(parent.model_path)
            fused_source, fusions = optimize_onnx(source, tmp / "optimized.onnx", config, batches)
            if fused_source != source:
                fused = int8_of(fused_source, tmp / "fused")
                if qc.optimize == "auto":
                    speeds = faster(final, fused[0], parent.batches("validation", 64, 32))
                    notes["fusion_choice"] = speeds
                    if speeds["chosen"] == "fused":
                        (final, kept, gate), notes["fusions"] = fused, fusions
                else:
                    (final, kept, gate), notes["fusions"] = fused, fusions
        notes |= {"kept_fp32": kept, **gate}
        chosen = "onnx"
        if qc.backend in ("openvino", "auto"):
            calibration = parent.encoded("train", qc.calibration_samples)
            ov_dir = openvino_int8(source, calibration, parent.pad_id, True, tmp / "openvino")
            notes["openvino"] = {"mode": "static (NNCF)", "calibration_texts": len(calibration)}
            chosen = "openvino"
            if qc.backend == "openvino":  # no gate: its figures, for a later budget to compare with
                notes |= {"validation_accuracy_fp32": validation(OnnxRunner(source)),
                          "validation_accuracy_int8": validation(OpenVinoRunner(ov_dir, 2))}
            else:
                # auto: the other ONNX Runtime mode too (static QDQ calibrated on the same texts,
                # gated alike), so the mode is measured as well as the backend.
                other = "static" if qc.mode == "dynamic" else "dynamic"
                other_qc = qc.model_copy(update={"mode": other, "optimize": False})
                (tmp / other).mkdir()
                other_final, other_kept, other_gate = gated_int8(source, node_groups(source), int8_quantizer(
                    source, other_qc, calibration, parent.pad_id, parent.max_length, op_types=["MatMul", "Gather"],
                    extra=extra), validation, budget, tmp / other)
                onnx = {f"onnx-{qc.mode}": (final, kept, gate), f"onnx-{other}": (other_final, other_kept, other_gate)}
                runners = {name: OnnxRunner(path, 2) for name, (path, _, _) in onnx.items()}
                runners["openvino"] = OpenVinoRunner(ov_dir, 2)
                chosen, notes["backend_choice"] = pick_backend(runners, validation, validation(OnnxRunner(source)),
                                                               budget, parent.batches("validation", 64, 32))
                if chosen != "openvino":
                    final, kept, gate = onnx[chosen]
                    notes |= {"kept_fp32": kept, **gate}

        def save(model_dir: Path) -> None:
            if chosen == "openvino":
                copy_openvino(ov_dir, model_dir)
            else:
                shutil.copyfile(final, model_dir / ONNX_FILE)
            for name in parent.model_path.iterdir():
                if name.is_file() and name.suffix != ".onnx" and not name.name.startswith("model.safetensors"):
                    shutil.copyfile(name, model_dir / name.name)

        return write_variant(out, parent, "quantize", qc.model_dump() | {"max_drop": budget}, save, notes=notes)


def faster(unfused: Path, fused: Path, batches: list[dict], threads: int = 2) -> dict:
    """Batch throughput (rows/s) of two ONNX models on the same batches, timed in interleaved
    rounds (a slow spell on a shared machine hits both), each keeping its best round; "fused"
    is chosen only when it wins by more than the noise (see the module docstring)."""
    given = {"batches": batches, "rows": sum(len(b["input_ids"]) for b in batches)}
    timed = time_rounds([OnnxRunner(unfused, threads), OnnxRunner(fused, threads)], [given, given], TIMING_ROUNDS)
    plain, fused_row = (throughput_of(r) for r in timed)
    # compress/choice.py's tie, at least FUSION_MARGIN wide: the plain graph unless clearly slower.
    kept_plain = bool(tied_with(fused_row, [plain], FUSION_MARGIN))
    return {"unfused_rows_per_s": round(plain["throughput"], 1), "fused_rows_per_s": round(fused_row["throughput"], 1),
            "margin": round(noise(plain, fused_row, FUSION_MARGIN), 3), "chosen": "unfused" if kept_plain else "fused"}


def _torch(parent: LoadedRun, qc: QuantizeConfig, budget: float | None, out: Path) -> LoadedRun:
    model = parent.model("quantize")
    validation = validation_scorer(parent)
    groups = linear_groups(model)
    kept, gate = gated(list(groups), lambda names: validation(TorchRunner(quantize_torch_dynamic(
        copy.deepcopy(model), [n for g in names for n in groups[g]]))), validation(TorchRunner(model)), budget)
    exclude = [n for g in kept for n in groups[g]]

    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        parent.preprocessor.save_pretrained(model_dir)
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
