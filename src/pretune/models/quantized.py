"""Torch dynamic int8 models on disk: fp32 safetensors plus `quantization.json`, quantized
again at load.

torch's dynamically quantized Linear modules cannot be saved in safetensors nor rebuilt by
`from_pretrained`, so a torch int8 variant keeps its fp32 weights (its size on disk is fp32:
measure says so) and `model/quantization.json` says {"backend": "torch", "mode": "dynamic",
"dtype": "qint8", "exclude": [module names kept fp32]}. `load_quantized(model_dir)` rebuilds
the int8 model; `pretune.models.runners.load_runner` calls it when that file is present.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

MARKER_FILE = "quantization.json"


def quantization_of(model_dir: str | Path) -> dict | None:
    """The torch quantization a saved model asks for at load, or None."""
    path = Path(model_dir) / MARKER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def quantize_torch_dynamic(model: nn.Module, exclude: list[str] | tuple[str, ...] = ()) -> nn.Module:
    """nn.Linear layers to int8 weights, activations quantized per batch, in place; modules named
    in `exclude` stay fp32."""
    targets = {name for name, m in model.named_modules() if isinstance(m, nn.Linear) and name not in exclude}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model.eval(), targets, dtype=torch.qint8, inplace=True)


def write_marker(model_dir: str | Path, exclude: list[str]) -> None:
    from pretune import atomic

    atomic.write_json(Path(model_dir) / MARKER_FILE,
                      {"backend": "torch", "mode": "dynamic", "dtype": "qint8", "exclude": list(exclude)})


def load_quantized(model_dir: str | Path, task) -> nn.Module:
    """A torch int8 variant, ready for inference on CPU (the task's labels restored)."""
    from pretune.models.load import load_saved_model

    model = load_saved_model(model_dir, task)
    marker = quantization_of(model_dir) or {}
    return quantize_torch_dynamic(model.cpu(), marker.get("exclude", []))
