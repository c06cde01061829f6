"""A saved model as a runner (see evaluate.py): torch for a Hugging Face directory, ONNX
Runtime where the directory holds `model.onnx`, OpenVINO for `openvino_model.xml`, numpy for a static-embedding model
(`static.json`, models/static.py), whichever variant compression wrote."""

from __future__ import annotations

from pathlib import Path

import torch

from pretune.evaluate import TorchRunner
from pretune.models.load import load_saved_model
from pretune.models.openvino_runner import OpenVinoRunner, is_openvino
from pretune.models.static import StaticRunner, is_static


def load_runner(model_dir: str | Path, task, device: str | None = None):
    """The runner of a run's `model/` directory; the task's labels are restored from its config."""
    model_dir = Path(model_dir)
    if is_static(model_dir):
        from pretune.models.load import load_saved_config

        task.restore(load_saved_config(model_dir))
        return StaticRunner(model_dir)
    if is_openvino(model_dir):
        from pretune.models.load import load_saved_config

        task.restore(load_saved_config(model_dir))
        return OpenVinoRunner(model_dir)
    if (model_dir / "model.onnx").is_file():
        from pretune.models.load import load_saved_config
        from pretune.models.onnx_runner import OnnxRunner  # onnxruntime: imported only when needed

        task.restore(load_saved_config(model_dir))
        return OnnxRunner(model_dir / "model.onnx")
    if (model_dir / "quantization.json").is_file():
        from pretune.models.quantized import load_quantized

        return TorchRunner(load_quantized(model_dir, task), "cpu")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_saved_model(model_dir, task).to(device).eval()
    return TorchRunner(model, device)
