"""Run an OpenVINO classifier (`openvino_model.xml` + `.bin`, converted from the ONNX export, fp32 or
NNCF int8) on the CPU: collated batch of tensors in, logits out, like models/onnx_runner.py.

The directory also holds config.json and the tokenizer (or an image run's preprocessor
settings), so labels and encoding come from the same places as for every other runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretune.errors import MissingExtraError, PretuneError

OPENVINO_FILE = "openvino_model.xml"


def is_openvino(model_dir: str | Path) -> bool:
    return (Path(model_dir) / OPENVINO_FILE).is_file()


def is_int8(model_dir: str | Path) -> bool:
    """NNCF's post-training int8 leaves FakeQuantize ops that OpenVINO runs as int8 kernels."""
    return 'type="FakeQuantize"' in (Path(model_dir) / OPENVINO_FILE).read_text(encoding="utf-8")


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise MissingExtraError("openvino", "openvino") from None
    return openvino


class OpenVinoRunner:
    """`runner(batch) -> logits`: feeds the inputs the model declares, ignores the rest (labels)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ov = import_openvino()
        path = Path(path)
        if path.is_dir():
            path = path / OPENVINO_FILE
        if not path.is_file():
            raise PretuneError(f"no OpenVINO model at {path}")
        self.path = path
        # f32 explicitly: on CPUs with bf16 support OpenVINO's default runs an fp32 model in bf16
        # (logits 4e-4 off torch's on the tiny test model, more on a real one); int8 ops stay int8.
        config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.input_names = [i.get_any_name() for i in self.compiled.inputs]
        self.dtypes = {i.get_any_name(): np.float32 if i.get_element_type().is_real() else np.int64
                       for i in self.compiled.inputs}

    def __call__(self, batch: dict) -> np.ndarray:
        missing = [n for n in self.input_names if n not in batch]
        if missing:
            raise PretuneError(f"{self.path} needs input(s) {', '.join(missing)}")
        feed = {n: _numpy(batch[n]).astype(self.dtypes[n], copy=False) for n in self.input_names}
        # A fresh infer request per call: a served model is called from several threads at once.
        return self.compiled.create_infer_request().infer(feed)[0].copy()


def convert_onnx(onnx_path: Path, out_dir: Path) -> Path:
    """The ONNX model as OpenVINO IR in `out_dir` (weights kept fp32: int8 comes from NNCF)."""
    ov = import_openvino()
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(out_dir / OPENVINO_FILE), compress_to_fp16=False)
    return out_dir / OPENVINO_FILE


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
