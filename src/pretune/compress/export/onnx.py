"""What every ONNX export shares (text and image): the prologue (the onnx extra present, the
directory made, the model in eval mode on the CPU), the trace, and the check against torch.

The TorchScript exporter (`dynamo=False`) is used: it handles the BERT family's dynamic batch
and sequence axes in one call, its graph is the one ONNX Runtime's transformer optimizer
recognises, and in eval mode it folds each BatchNorm into the convolution before it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from pretune.errors import MissingExtraError, PretuneError
from pretune.evaluate import logits_of
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner

INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values")


def prepare_export(model, out_dir: str | Path) -> tuple[torch.nn.Module, Path]:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise MissingExtraError("onnx", "compress") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return model.eval().cpu(), out_dir


def trace(model, out_dir: Path, batches: list[dict], dynamic: dict[str, dict], opset: int) -> list[str]:
    """Write out_dir/model.onnx traced on the first two rows of `batches[0]`; returns the input names."""
    sample = batches[0]
    names = [n for n in INPUTS if n in sample]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python conditionals on shapes
        torch.onnx.export(model, tuple(sample[n][:2] for n in names), str(out_dir / ONNX_FILE), input_names=names,
                          output_names=["logits"], dynamic_axes={**{n: dynamic[n] for n in names},
                                                                 "logits": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return names


def check_export(model, onnx_path: Path, batches: list[dict], tolerance: float) -> float:
    """Largest |logit difference| between torch and ONNX Runtime on `batches` (real inputs:
    padding and lengths vary), relative to the largest |logit| when above 1: a deep CNN's fp32
    sums (BatchNorm folded into each convolution) differ by ~1e-3 on logits of size ~10,
    harmlessly. Above `tolerance` it is an error, never a silent variant."""
    return check_agreement(model, OnnxRunner(onnx_path), batches, tolerance, f"ONNX export of {onnx_path.parent}")


def check_agreement(model, runner, batches: list[dict], tolerance: float, what: str) -> float:
    """The largest relative logit difference between the torch `model` and `runner` (any exported
    form: ONNX Runtime, OpenVINO) on `batches`; above `tolerance` an error naming `what`."""
    worst = 0.0
    for batch in batches:
        with torch.inference_mode():
            expected = logits_of(model(**{n: batch[n] for n in INPUTS if n in batch})).float().numpy()
        scale = max(1.0, float(np.abs(expected).max()))
        worst = max(worst, float(np.abs(runner(batch) - expected).max()) / scale)
    if worst > tolerance:
        raise PretuneError(f"{what} differs from torch by {worst:.2e} of its logits' scale "
                           f"(> tolerance {tolerance:.0e})")
    return worst
