"""Run an exported ONNX classifier in ONNX Runtime: collated batch of tensors in, logits out.

An ONNX variant's model directory holds `model.onnx` beside config.json and the tokenizer
files, so labels and tokenization come from the same places as for a torch model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretune.errors import MissingExtraError, PretuneError

ONNX_FILE = "model.onnx"


def create_session(path: str | Path, threads: int | None = None):
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime", "compress") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """`runner(batch) -> logits`: feeds the inputs the graph declares (input_ids, attention_mask,
    token_type_ids as int64; an image model's pixel_values as float32) and ignores the rest of
    the batch (labels)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        path = Path(path)
        if path.is_dir():
            path = path / ONNX_FILE
        if not path.is_file():
            raise PretuneError(f"no ONNX model at {path}")
        self.path = path
        self.session = create_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dtypes = {i.name: np.float32 if i.type == "tensor(float)" else np.int64 for i in self.session.get_inputs()}

    def __call__(self, batch: dict) -> np.ndarray:
        missing = [n for n in self.input_names if n not in batch]
        if missing:
            raise PretuneError(f"{self.path} needs input(s) {', '.join(missing)}")
        feed = {n: _numpy(batch[n]).astype(self.dtypes[n], copy=False) for n in self.input_names}
        return self.session.run(None, feed)[0]


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
