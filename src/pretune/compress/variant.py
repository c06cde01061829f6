"""What every step shares: read a parent Run (model, tokenizer, data), run any saved model,
and write a variant as a Run directory with fit's layout (recipe.yaml, model/, metrics.json)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pretune import atomic, runs
from pretune.data import PreparedData, collate, encode, eval_batches, prepare
from pretune.data.encode import EncodedSplit
from pretune.errors import PretuneError
from pretune.evaluate import compute_metrics
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner
from pretune.recipe import Recipe
from pretune.runs import Run


class TorchRunner:
    """`runner(batch) -> logits` for a torch model, on CPU, without gradients."""

    def __init__(self, model):
        self.model = model.eval()

    @torch.inference_mode()
    def __call__(self, batch: dict) -> np.ndarray:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return self.model(**inputs).logits.float().numpy()


def is_onnx(run: Run) -> bool:
    return (run.path / runs.MODEL / ONNX_FILE).is_file()


def load_torch_model(run: Run, step: str):
    """The parent's torch model (fp32); an ONNX or int8 parent cannot be trained or changed."""
    from pretune.models.load import load_saved_classifier
    from pretune.models.quantized import quantization_of

    model_dir = run.model_path
    if is_onnx(run):
        raise PretuneError(f"step '{step}' needs a torch model but {run.path} holds ONNX; "
                           f"put quantize/export last in --steps")
    model = load_saved_classifier(model_dir)
    if quantization_of(model_dir):
        raise PretuneError(f"step '{step}' needs an fp32 model but {run.path} is int8; put quantize last")
    return model.eval()


def load_runner(model_dir: str | Path, threads: int | None = None):
    """A callable from a collated batch to logits for any saved variant: ONNX, torch int8, torch."""
    model_dir = Path(model_dir)
    if (model_dir / ONNX_FILE).is_file():
        return OnnxRunner(model_dir, threads)
    from pretune.models.load import load_saved_classifier
    from pretune.models.quantized import load_quantized, quantization_of

    if threads:
        torch.set_num_threads(threads)
    quantized = quantization_of(model_dir)
    return TorchRunner(load_quantized(model_dir) if quantized else load_saved_classifier(model_dir))


def load_tokenizer_of(run: Run):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(run.model_path)


def label_names_of(run: Run) -> list[str] | None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(run.model_path)
    if config.problem_type == "regression":
        return None
    return [config.id2label[i] for i in range(config.num_labels)]


def load_data(run: Run) -> PreparedData:
    """The run's own splits (same seeded split as its fit), labels in the model's order."""
    return prepare(run.recipe.data, label_names_of(run))


def predict(runner, split: EncodedSplit, pad_id: int, batch_size: int = 64) -> np.ndarray:
    out = None
    for indices in eval_batches(split.lengths, batch_size):
        logits = runner(collate(split, indices, pad_id))
        if out is None:
            out = np.empty((len(split), logits.shape[-1]), dtype=np.float32)
        out[indices] = logits
    return out


def evaluate_runner(runner, data: PreparedData, tokenizer, max_length: int, split: str = "test") -> dict:
    encoded = encode(data.splits[split], tokenizer, max_length)
    logits = predict(runner, encoded, tokenizer.pad_token_id or 0)
    return {"samples": len(encoded), **compute_metrics(logits, encoded.labels, data.label_names)}


def write_variant(out: Path, parent: Run, step: str, settings: dict, save_model: Callable[[Path], object],
                  recipe: Recipe | None = None, notes: dict | None = None) -> Run:
    """recipe.yaml first (it makes the directory a run), then model/, then metrics.json (done)."""
    out = Path(out)
    if (out / runs.RECIPE).exists():
        raise PretuneError(f"{out} already holds a run; choose another --out")
    recipe = recipe or parent.recipe
    atomic.write_text(out / runs.RECIPE, recipe.to_yaml())
    with atomic.atomic_dir(out / runs.MODEL) as tmp:
        save_model(tmp)
    return finish_variant(out, parent, step, settings, notes)


def finish_variant(out: Path, parent: Run, step: str, settings: dict, notes: dict | None = None,
                   extra: dict | None = None) -> Run:
    """Evaluate the saved variant on its run's test split; write metrics.json."""
    run = Run(out)
    tokenizer = load_tokenizer_of(run)
    test = evaluate_runner(load_runner(run.model_path), load_data(run), tokenizer, run.recipe.data.max_length)
    metrics = {**(extra or {}), "test": test,
               "compress": {"step": step, "parent": str(parent.path), "settings": settings, **(notes or {})}}
    atomic.write_json(out / runs.METRICS, metrics)
    return run


def sample_texts(data: PreparedData, split: str, n: int) -> list[str]:
    texts = data.splits[split].texts
    return list(texts[:n])
