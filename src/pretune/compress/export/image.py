"""`export` of an image classifier: one `pixel_values` input. Only the batch axis is dynamic: a
CNN's 'same' padding (EfficientNet's static padding) is built for one input size, the run's."""

from __future__ import annotations

from pathlib import Path

from pretune.compress import base
from pretune.compress.export.onnx import check_export, prepare_export, trace
from pretune.compress.export.openvino import onnx_to_openvino
from pretune.compress.export.text import export_gives
from pretune.compress.loaded import LoadedRun
from pretune.compress.variant import scratch, write_variant
from pretune.models.onnx_runner import ONNX_FILE
from pretune.recipe import CompressConfig

CHECK_ROWS = 32  # validation images the export is checked on, in batches of 16


def export_image_onnx(model, settings, out_dir: str | Path, batches: list[dict], *, opset: int = 17,
                      tolerance: float = 1e-3) -> dict:
    """Write model.onnx, config.json and preprocessor_config.json to `out_dir`; return the check's
    figures. `batches`: collated real images (normalised pixel_values)."""
    model, out_dir = prepare_export(model, out_dir)
    trace(model, out_dir, batches, {"pixel_values": {0: "batch"}}, opset)
    model.config.save_pretrained(out_dir)
    settings.save_pretrained(out_dir)
    return {"max_abs_diff": check_export(model, out_dir / ONNX_FILE, batches, tolerance), "opset": opset}


@base.register("export", "image", gives=export_gives, settings=lambda cfg: cfg.export)
def export_image(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    ec = cfg.export
    model, batches = parent.model("export"), parent.batches("validation", CHECK_ROWS, 16)
    notes: dict = {}

    def save(model_dir: Path) -> None:
        if ec.format == "openvino":
            with scratch(parent) as tmp:
                notes["check"] = export_image_onnx(model, parent.preprocessor, tmp, batches, opset=ec.opset,
                                                   tolerance=ec.tolerance)
                notes["check"] |= onnx_to_openvino(tmp, model_dir, model, batches, ec.tolerance)
            return
        notes["check"] = export_image_onnx(model, parent.preprocessor, model_dir, batches, opset=ec.opset,
                                           tolerance=ec.tolerance)

    return write_variant(out, parent, "export", ec.model_dump(), save, notes=notes)
