"""`quantize` of an image run (ONNX Runtime): static QDQ int8 by default, with per-channel
weight scales, calibrated on training images. Static Q/DQ pairs around each Conv are fused into
QLinearConv when ONNX Runtime loads the model (int8 in, int8 out, its fast int8 convolution
kernels), while dynamic quantization turns a Conv into ConvInteger, which measures each
activation's range per call and hands back int32 to be rescaled to float around every
convolution. Per-channel scales because depthwise convolutions' channels have very different
ranges (one scale per tensor loses the small ones). The gate ranks stages ('_blocks.3',
'stages.1'), not encoder layers.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from pretune.compress import base
from pretune.compress.export.image import CHECK_ROWS, export_image_onnx
from pretune.compress.loaded import LoadedRun
from pretune.compress.quantize.gate import (
    QUANTIZABLE_OPS,
    budget_of,
    check_gate,
    gated_int8,
    int8_quantizer,
    quantize_settings,
    validation_scorer,
)
from pretune.compress.quantize.openvino import copy_openvino, openvino_int8, pick_backend
from pretune.compress.variant import scratch, write_variant
from pretune.data.images import PREPROCESSOR_FILE
from pretune.errors import PretuneError
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner
from pretune.models.openvino_runner import OpenVinoRunner
from pretune.recipe import CompressConfig

STAGE = re.compile(r"(?:^|/)([A-Za-z_]+\.\d+)(?:/|$)")  # the first numbered module: _blocks.3, stages.1


def check_quantize_image(parent: base.Parent, cfg: CompressConfig) -> None:
    if cfg.quantize.backend == "torch":
        raise PretuneError("image runs quantize with ONNX Runtime or OpenVINO (compress.quantize.backend onnx, "
                           "openvino or auto), not torch")
    check_gate(parent, cfg)


def _gives(cfg: CompressConfig) -> str:
    return "openvino-int8" if cfg.quantize.backend == "openvino" else "onnx-int8"


@base.register("quantize", "image", takes=("torch-fp32", "onnx-fp32"), gives=_gives, settings=quantize_settings,
               check=check_quantize_image)
def quantize_image(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    qc = cfg.quantize
    qc = qc.model_copy(update={"mode": qc.mode or "static",
                               "per_channel": True if qc.per_channel is None else qc.per_channel})
    budget = budget_of(qc, cfg.max_drop)
    notes: dict = {}
    with scratch(parent) as tmp:
        if parent.backend == "onnx-fp32":
            source_dir = parent.model_path
        else:
            source_dir = tmp / "fp32"
            notes["export"] = export_image_onnx(parent.model("quantize"), parent.preprocessor, source_dir,
                                                parent.batches("validation", CHECK_ROWS, 16))
        source = source_dir / ONNX_FILE
        calibration = parent.encoded("train", qc.calibration_samples)
        validation = validation_scorer(parent)
        chosen = "openvino" if qc.backend == "openvino" else "onnx"
        if qc.backend != "openvino":
            quantize = int8_quantizer(source, qc, calibration, 0, None)
            final, kept, gate = gated_int8(source, conv_node_groups(source), quantize, validation, budget, tmp)
            notes |= {"kept_fp32": kept, "calibration_images": len(calibration) if qc.mode == "static" else 0,
                      **gate}
        if qc.backend in ("openvino", "auto"):
            ov_dir = openvino_int8(source, calibration, 0, False, tmp / "openvino")
            notes["openvino"] = {"mode": "static (NNCF)", "calibration_images": len(calibration)}
            if qc.backend == "openvino":
                notes |= {"kept_fp32": [], "validation_accuracy_fp32": validation(OnnxRunner(source)),
                          "validation_accuracy_int8": validation(OpenVinoRunner(ov_dir, 2))}
            else:
                runners = {"onnx": OnnxRunner(final, 2), "openvino": OpenVinoRunner(ov_dir, 2)}
                chosen, notes["backend_choice"] = pick_backend(runners, validation, validation(OnnxRunner(source)),
                                                               budget, parent.batches("validation", 64, 32))

        def save(model_dir: Path) -> None:
            if chosen == "openvino":
                copy_openvino(ov_dir, model_dir)
            else:
                shutil.copyfile(final, model_dir / ONNX_FILE)
            for name in ("config.json", PREPROCESSOR_FILE):
                shutil.copyfile(source_dir / name, model_dir / name)

        return write_variant(out, parent, "quantize", qc.model_dump() | {"max_drop": budget}, save, notes=notes)


def conv_node_groups(path: Path) -> dict[str, list[str]]:
    """Quantizable node names by stage, the first numbered module in the node's name ('_blocks.3'
    in EfficientNet, 'stages.1' in a Hugging Face ResNet); nodes before the first stage are
    'stem', after the last 'head'. The accuracy gate keeps whole groups fp32."""
    import onnx

    nodes = list(onnx.load(str(path), load_external_data=False).graph.node)
    stages = [_stage(node.name) for node in nodes]
    last = max((i for i, stage in enumerate(stages) if stage), default=len(nodes))
    groups: dict[str, list[str]] = {}
    current = "stem"
    for i, (node, stage) in enumerate(zip(nodes, stages, strict=True)):
        # A node without a module path (an Add between blocks) belongs to the stage before it.
        current = stage or ("head" if i > last else current)
        if node.op_type in QUANTIZABLE_OPS:
            groups.setdefault(current, []).append(node.name)
    return groups


def _stage(name: str) -> str | None:
    found = STAGE.search(name)
    return found.group(1) if found and not found.group(1).startswith("classifier") else None
