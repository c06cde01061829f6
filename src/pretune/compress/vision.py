"""What image runs need beyond the text path: ONNX export with a `pixel_values` input, the
calibration images for static int8, and the quantizable nodes of a CNN grouped by stage.

Export uses the TorchScript exporter (`dynamo=False`) as text export does; in eval mode it folds
each BatchNorm into the convolution before it, so the graph is Conv / Clip / Add / Gemm. Only
the batch axis is dynamic: a CNN's 'same' padding (EfficientNet's static padding) is built for
one input size, the run's image size.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from pretune.data.encode import EncodedSplit
from pretune.errors import PretuneError
from pretune.evaluate import logits_of
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner

INPUT = "pixel_values"
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
STAGE = re.compile(r"(?:^|/)([A-Za-z_]+\.\d+)(?:/|$)")  # the first numbered module: _blocks.3, stages.1


def export_image_onnx(model, settings, out_dir: str | Path, images: list[dict], *, opset: int = 17,
                      tolerance: float = 1e-3) -> dict:
    """Write `model.onnx`, config.json and preprocessor_config.json to `out_dir`; return the
    check's figures. `images`: collated batches of real images (normalised pixel_values); the
    export runs on them in ONNX Runtime and a logit difference above `tolerance` is an error."""
    from pretune.compress.export import prepare_export  # export.py reaches here for images

    model, out_dir = prepare_export(model, out_dir)
    sample = images[0][INPUT][:2]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python conditionals on shapes
        torch.onnx.export(model, (sample,), str(out_dir / ONNX_FILE), input_names=[INPUT], output_names=["logits"],
                          dynamic_axes={INPUT: {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    model.config.save_pretrained(out_dir)
    settings.save_pretrained(out_dir)
    return {"max_abs_diff": check_images(model, out_dir / ONNX_FILE, images, tolerance), "opset": opset}


def check_images(model, onnx_path: Path, images: list[dict], tolerance: float) -> float:
    """Largest |logit difference| between torch and ONNX Runtime on the batches `images`, relative
    to the largest |logit| (when above 1)."""
    runner = OnnxRunner(onnx_path)
    worst = 0.0
    for batch in images:
        with torch.inference_mode():
            expected = logits_of(model(pixel_values=batch[INPUT])).float().numpy()
        # Relative to the logits' scale: a deep CNN's fp32 sums (BatchNorm folded into each
        # convolution by the exporter) differ by ~1e-3 on logits of size ~10, harmlessly.
        scale = max(1.0, float(np.abs(expected).max()))
        worst = max(worst, float(np.abs(runner(batch) - expected).max()) / scale)
    if worst > tolerance:
        raise PretuneError(f"ONNX export of {onnx_path.parent} differs from torch by {worst:.2e} of its logits' scale "
                           f"(> tolerance {tolerance:.0e})")
    return worst


def conv_node_groups(path: Path) -> dict[str, list[str]]:
    """Quantizable node names (Conv, Gemm, MatMul) by stage, the first numbered module in the
    node's name ('_blocks.3' in EfficientNet, 'stages.1' in a Hugging Face ResNet); nodes before
    the first stage are 'stem', after the last 'head'. The accuracy gate keeps whole groups fp32."""
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


class ImageCalibrationReader:
    """Training images, 8 at a time, normalised as the model takes them: ONNX Runtime's
    CalibrationDataReader for static quantization (it reads each activation's range from them)."""

    def __init__(self, split: EncodedSplit, batch_size: int = 8):
        from pretune.compress.variant import input_batches

        self._batches = iter([{INPUT: b[INPUT].numpy()} for b in input_batches(split, batch_size, 0)])

    def get_next(self) -> dict | None:
        return next(self._batches, None)
