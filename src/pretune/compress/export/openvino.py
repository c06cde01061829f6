"""`export` with `compress.export.format: openvino`: the checked ONNX export converted to OpenVINO
IR (`openvino_model.xml` + `.bin`, fp32) beside the same config and tokenizer / preprocessor
files, then checked against torch again, with the same tolerance (an OpenVINO that computes
something else is an error, never a silent variant)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pretune.compress.export.onnx import check_agreement
from pretune.models.onnx_runner import ONNX_FILE
from pretune.models.openvino_runner import OpenVinoRunner, convert_onnx


def onnx_to_openvino(onnx_dir: Path, model_dir: Path, model, batches: list[dict], tolerance: float) -> dict:
    """Convert `onnx_dir`'s model.onnx into `model_dir`, copy its other files; the check's figures."""
    convert_onnx(onnx_dir / ONNX_FILE, model_dir)
    for file in onnx_dir.iterdir():
        if file.is_file() and file.name != ONNX_FILE:
            shutil.copyfile(file, model_dir / file.name)
    return {"max_abs_diff_openvino": check_openvino(model, model_dir, batches, tolerance)}


def check_openvino(model, model_dir: Path, batches: list[dict], tolerance: float) -> float:
    """Largest |logit difference| to torch, relative to the largest |logit| when above 1 (as
    export/onnx.py's check)."""
    return check_agreement(model, OpenVinoRunner(model_dir), batches, tolerance,
                           f"OpenVINO conversion of {model_dir.parent}")
