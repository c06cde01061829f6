"""ONNX Runtime's transformer fusions (Attention, BiasGelu, SkipLayerNormalization) on a text
model's ONNX graph, checked against the unfused graph's logits."""

from __future__ import annotations

import logging
from pathlib import Path

from pretune.models.onnx_runner import OnnxRunner


def optimize_onnx(source: Path, target: Path, config, batches: list[dict]) -> tuple[Path, dict]:
    """BERT fusions of `source` into `target`; falls back to no attention fusion if the fused
    graph's logits differ from the unfused ones (e.g. heads pruned unevenly), and to the source
    if that fails too. `config`: the model's Hugging Face config."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    for name in ["onnxruntime.transformers", *logging.root.manager.loggerDict]:
        if name.startswith(("onnxruntime", "fusion")):
            logging.getLogger(name).setLevel(logging.ERROR)
    heads, hidden = _attention_shape(config)
    reference = OnnxRunner(source)
    for attention in (heads is not None, False):
        options = FusionOptions("bert")
        options.enable_attention = attention
        optimized = optimize_model(str(source), model_type="bert", num_heads=heads or 0, hidden_size=hidden or 0,
                                   optimization_options=options)
        optimized.save_model_to_file(str(target))
        fused = OnnxRunner(target)
        if max(float(abs(reference(b) - fused(b)).max()) for b in batches) <= 1e-3:
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
