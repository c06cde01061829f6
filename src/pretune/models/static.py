"""Static-embedding classifiers on disk and as a runner (numpy only, no torch at inference).

A static model's directory holds `static.safetensors` (the token embeddings, fp16 on disk; the
linear head; the ids pooling skips), `static.json` (what it is), the tokenizer files and the
teacher's `config.json` with the task's labels (and tuned thresholds), so `pretune predict`,
`eval`, `serve` and `measure` read labels and encode texts exactly as for a transformer.

The forward pass is model2vec's: the mean of the embeddings of a text's tokens (padding, [UNK]
and special tokens skipped), scaled to unit length, then the head. The weights are not named
`model.safetensors` so that nothing mistakes the directory for a Hugging Face checkpoint and
`from_pretrained` it into random weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pretune.errors import PretuneError

WEIGHTS_FILE, STATIC_FILE = "static.safetensors", "static.json"
FORMAT = "pretune-static-embeddings"


def is_static(model_dir: str | Path) -> bool:
    return (Path(model_dir) / STATIC_FILE).is_file()


def pool(embeddings: np.ndarray, skip: np.ndarray, batch: dict, normalize: bool = True) -> np.ndarray:
    """(rows, dimensions): each row's mean token embedding over its kept tokens, unit length."""
    ids = _numpy(batch["input_ids"]).astype(np.int64, copy=False)
    mask = _numpy(batch["attention_mask"]).astype(bool) if "attention_mask" in batch else np.ones(ids.shape, bool)
    mask &= ~skip[ids]
    weights = mask.astype(np.float32)
    # einsum over (rows, tokens) x (rows, tokens, dim): no (rows, tokens, dim) mask product.
    summed = np.einsum("rt,rtd->rd", weights, embeddings[ids], optimize=False)
    pooled = summed / np.maximum(weights.sum(1, keepdims=True), 1.0)
    if normalize:
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled


class StaticRunner:
    """`runner(batch) -> logits` (numpy): pooled static embeddings through the linear head."""

    def __init__(self, model_dir: str | Path):
        from safetensors.numpy import load_file

        model_dir = Path(model_dir)
        try:
            spec = json.loads((model_dir / STATIC_FILE).read_text())
            tensors = load_file(str(model_dir / WEIGHTS_FILE))
        except (OSError, ValueError) as e:
            raise PretuneError(f"{model_dir} is not a readable static-embedding model: {e}") from None
        if spec.get("format") != FORMAT:
            raise PretuneError(f"{model_dir / STATIC_FILE} is not a pretune static-embedding model")
        self.path, self.spec = model_dir, spec
        self.embeddings = tensors["embeddings"].astype(np.float32)  # fp16 on disk, fp32 arithmetic
        self.skip = np.zeros(len(self.embeddings), dtype=bool)
        self.skip[tensors["skip_ids"]] = True
        self.weight, self.bias = tensors["classifier.weight"], tensors["classifier.bias"]
        self.normalize = bool(spec.get("normalize", True))

    def features(self, batch: dict) -> np.ndarray:
        return pool(self.embeddings, self.skip, batch, self.normalize)

    def __call__(self, batch: dict) -> np.ndarray:
        return self.features(batch) @ self.weight.T + self.bias


def save_static(model_dir: str | Path, embeddings: np.ndarray, skip_ids: list[int], weight: np.ndarray,
                bias: np.ndarray, spec: dict) -> None:
    """Write static.safetensors and static.json into a model directory being written."""
    from safetensors.numpy import save_file

    model_dir = Path(model_dir)
    save_file({"embeddings": np.ascontiguousarray(embeddings, dtype=np.float16),
               "skip_ids": np.asarray(sorted(set(skip_ids)), dtype=np.int64),
               "classifier.weight": np.ascontiguousarray(weight, dtype=np.float32),
               "classifier.bias": np.ascontiguousarray(bias, dtype=np.float32)}, str(model_dir / WEIGHTS_FILE))
    (model_dir / STATIC_FILE).write_text(json.dumps({"format": FORMAT, "pooling": "mean", "normalize": True,
                                                     "dimensions": int(embeddings.shape[1]),
                                                     "tokens": int(embeddings.shape[0]), **spec}, indent=2))


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
