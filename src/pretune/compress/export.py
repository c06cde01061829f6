"""`export`: a torch classifier to ONNX, checked in ONNX Runtime against the torch logits.

The TorchScript exporter (`dynamo=False`) is used: it handles the BERT family's dynamic batch
and sequence axes in one call, and its graph is the one ONNX Runtime's transformer optimizer
recognises. Attention is exported in its eager form, which that optimizer fuses into one
`Attention` op (the SDPA form is not fused).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from pretune.compress.variant import (
    encode_rows,
    input_batches,
    is_image,
    load_data,
    load_preprocessor_of,
    load_torch_model,
    sample_texts,
    task_of,
    write_variant,
)
from pretune.errors import MissingExtraError, PretuneError
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner
from pretune.predictor import Run
from pretune.recipe import CompressConfig

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_step(parent: Run, cfg: CompressConfig, out: Path) -> Run:
    ec = cfg.export
    if is_image(task_of(parent)):
        return _export_images(parent, cfg, out)
    model, tokenizer = load_torch_model(parent, "export"), load_preprocessor_of(parent)
    texts = sample_texts(load_data(parent), "validation", 32)
    max_length = parent.recipe.data.max_length
    notes: dict = {}

    def save(model_dir: Path) -> None:
        notes["check"] = export_onnx(model, tokenizer, model_dir, texts, opset=ec.opset, tolerance=ec.tolerance,
                                     max_length=max_length)
        if ec.optimize:
            with tempfile.TemporaryDirectory() as tmp:
                optimized, notes["fusions"] = optimize_onnx(model_dir / ONNX_FILE, Path(tmp) / ONNX_FILE, model_dir,
                                                            tokenizer, texts, max_length)
                if optimized != model_dir / ONNX_FILE:
                    shutil.copyfile(optimized, model_dir / ONNX_FILE)

    return write_variant(out, parent, "export", ec.model_dump(), save, notes=notes)


def _export_images(parent: Run, cfg: CompressConfig, out: Path) -> Run:
    """An image classifier with a `pixel_values` input, checked on 32 validation images."""
    from pretune.compress.vision import export_image_onnx

    ec, task = cfg.export, task_of(parent)
    model, settings = load_torch_model(parent, "export", task), load_preprocessor_of(parent)
    images = input_batches(encode_rows(load_data(parent, task), task, settings, 0, "validation", 32), 16, 0)
    notes: dict = {}

    def save(model_dir: Path) -> None:
        notes["check"] = export_image_onnx(model, settings, model_dir, images, opset=ec.opset, tolerance=ec.tolerance)

    return write_variant(out, parent, "export", ec.model_dump(), save, notes=notes)


def prepare_export(model, out_dir: str | Path) -> tuple[torch.nn.Module, Path]:
    """What every export starts with (text and image): the onnx extra present, the directory
    made, the model in eval mode on the CPU."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise MissingExtraError("onnx", "compress") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return model.eval().cpu(), out_dir


def export_onnx(model, tokenizer, out_dir: str | Path, texts: list[str], *, opset: int = 17,
                tolerance: float = 1e-3, max_length: int = 128) -> dict:
    """Write `model.onnx`, config.json and the tokenizer to `out_dir`; return the check's figures.

    The export is run on `texts` (real ones: padding and lengths vary) in ONNX Runtime and
    compared with torch; a difference above `tolerance` is an error, never a silent variant.
    """
    model, out_dir = prepare_export(model, out_dir)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    sample = tokenizer(texts[:2] or ["a"], padding=True, truncation=True, max_length=max_length,
                       return_tensors="pt")
    names = [n for n in INPUTS if n in sample]
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python conditionals on shapes
        torch.onnx.export(model, tuple(sample[n] for n in names), str(out_dir / ONNX_FILE),
                          input_names=names, output_names=["logits"], dynamic_axes=dynamic,
                          opset_version=opset, dynamo=False)
    model.config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"max_abs_diff": check_against_torch(model, tokenizer, out_dir / ONNX_FILE, texts, tolerance, max_length),
            "opset": opset}


def check_against_torch(model, tokenizer, onnx_path: Path, texts: list[str], tolerance: float,
                        max_length: int) -> float:
    """Largest |logit difference| between torch and ONNX Runtime on `texts`, batched with padding."""
    runner = OnnxRunner(onnx_path)
    worst = 0.0
    for start in range(0, len(texts), 16):
        batch = tokenizer(texts[start:start + 16], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        with torch.inference_mode():
            expected = model(**{n: batch[n] for n in INPUTS if n in batch}).logits.float().numpy()
        worst = max(worst, float(np.abs(runner(batch) - expected).max()))
    if worst > tolerance:
        raise PretuneError(f"ONNX export of {onnx_path.parent} differs from torch by {worst:.2e} "
                           f"(> tolerance {tolerance:.0e})")
    return worst


def optimize_onnx(source: Path, target: Path, model_dir: Path, tokenizer, texts: list[str],
                  max_length: int) -> tuple[Path, dict]:
    """ONNX Runtime's BERT fusions; falls back to no attention fusion if the fused graph's logits
    differ from the unfused ones (e.g. heads pruned unevenly), and to the source if that fails too."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoConfig

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("onnxruntime", "fusion")):
            logging.getLogger(name).setLevel(logging.ERROR)
    config = AutoConfig.from_pretrained(model_dir)
    heads, hidden = _attention_shape(config)
    reference = OnnxRunner(source)
    for attention in (heads is not None, False):
        options = FusionOptions("bert")
        options.enable_attention = attention
        optimized = optimize_model(str(source), model_type="bert", num_heads=heads or 0, hidden_size=hidden or 0,
                                   optimization_options=options)
        optimized.save_model_to_file(str(target))
        if _max_diff(reference, OnnxRunner(target), tokenizer, texts, max_length) <= 1e-3:
            return target, {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    return source, {}


def _attention_shape(config) -> tuple[int | None, int | None]:
    pruning = getattr(config, "pretune_pruning", None)
    if not pruning:
        return config.num_attention_heads, config.hidden_size
    heads = set(pruning["heads"])
    if len(heads) != 1:
        return None, None  # uneven heads: one num_heads cannot describe every layer
    kept = heads.pop()
    return kept, kept * (config.hidden_size // config.num_attention_heads)


def _max_diff(a: OnnxRunner, b: OnnxRunner, tokenizer, texts: list[str], max_length: int) -> float:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return float(abs(a(batch) - b(batch)).max())
