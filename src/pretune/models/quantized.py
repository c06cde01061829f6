"""Torch dynamic int8 models on disk: fp32 safetensors plus a marker, quantized again at load.

torch's dynamically quantized Linear modules cannot be saved in safetensors nor rebuilt by
`from_pretrained`, so a torch int8 variant keeps its fp32 weights (its size on disk is fp32)
and config.json says `pretune_quantization: {"backend": "torch", "mode": "dynamic",
"exclude": [module names kept fp32]}`. `load_quantized(model_dir)` rebuilds the int8 model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

MARKER = "pretune_quantization"


def quantization_of(config) -> dict | None:
    """The marker of a torch-quantized model, or None."""
    marker = getattr(config, MARKER, None)
    return marker if marker and marker.get("backend") == "torch" else None


def quantize_torch_dynamic(model: nn.Module, exclude: list[str] | tuple[str, ...] = ()) -> nn.Module:
    """nn.Linear layers to int8 weights with int8 activations quantized per batch, in place.

    Modules named in `exclude` (and the classifier head when listed) stay fp32."""
    targets = {name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name not in exclude}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), targets, dtype=torch.qint8, inplace=True)


def mark(config, exclude: list[str]) -> None:
    setattr(config, MARKER, {"backend": "torch", "mode": "dynamic", "dtype": "qint8", "exclude": list(exclude)})


def load_quantized(model_dir: str | Path) -> nn.Module:
    """A torch int8 variant, ready for inference on CPU."""
    from pretune.models.load import load_saved_classifier

    model = load_saved_classifier(model_dir)
    marker = quantization_of(model.config) or {}
    return quantize_torch_dynamic(model, marker.get("exclude", []))
