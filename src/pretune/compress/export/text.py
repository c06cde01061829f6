"""`export` of a text classifier: input_ids / attention_mask (/ token_type_ids) with dynamic
batch and sequence axes. Attention is exported in its eager form, which ONNX Runtime's
transformer optimizer fuses into one `Attention` op (the SDPA form is not fused)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pretune.compress import base
from pretune.compress.export.fusions import optimize_onnx
from pretune.compress.export.onnx import check_export, prepare_export, trace
from pretune.compress.export.openvino import onnx_to_openvino
from pretune.compress.loaded import LoadedRun
from pretune.compress.variant import scratch, write_variant
from pretune.models.onnx_runner import ONNX_FILE
from pretune.recipe import CompressConfig

CHECK_ROWS = 32  # validation texts the export is checked on, in batches of 16


def export_onnx(model, tokenizer, out_dir: str | Path, batches: list[dict], *, opset: int = 17,
                tolerance: float = 1e-3) -> dict:
    """Write model.onnx, config.json and the tokenizer to `out_dir`; return the check's figures."""
    model, out_dir = prepare_export(model, out_dir)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    trace(model, out_dir, batches, {n: {0: "batch", 1: "sequence"} for n in
                                    ("input_ids", "attention_mask", "token_type_ids")}, opset)
    model.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"max_abs_diff": check_export(model, out_dir / ONNX_FILE, batches, tolerance), "opset": opset}


def export_gives(cfg: CompressConfig) -> str:
    return f"{cfg.export.format}-fp32"


@base.register("export", "text", gives=export_gives, settings=lambda cfg: cfg.export)
def export_text(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    ec = cfg.export
    model, batches = parent.model("export"), parent.batches("validation", CHECK_ROWS, 16)
    notes: dict = {}

    def save(model_dir: Path) -> None:
        if ec.format == "openvino":
            with scratch(parent) as tmp:
                notes["check"] = export_onnx(model, parent.preprocessor, tmp, batches, opset=ec.opset,
                                             tolerance=ec.tolerance)
                notes["check"] |= onnx_to_openvino(tmp, model_dir, model, batches, ec.tolerance)
            return
        notes["check"] = export_onnx(model, parent.preprocessor, model_dir, batches, opset=ec.opset,
                                     tolerance=ec.tolerance)
        if ec.optimize:
            with scratch(parent) as tmp:
                optimized, notes["fusions"] = optimize_onnx(model_dir / ONNX_FILE, tmp / ONNX_FILE, model.config,
                                                            batches)
                if optimized != model_dir / ONNX_FILE:
                    shutil.copyfile(optimized, model_dir / ONNX_FILE)

    return write_variant(out, parent, "export", ec.model_dump(), save, notes=notes)
