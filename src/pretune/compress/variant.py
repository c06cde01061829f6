"""What every step shares: read a parent Run (task, model, preprocessor, data), run any saved model
through the one evaluation path (`pretune.evaluate` + `models.runners`), and write a variant as a
Run directory with fit's layout (recipe.yaml, model/, metrics.json).

The preprocessor is a text run's tokenizer or an image run's ImageSettings (size and
normalisation, saved as preprocessor_config.json): `task.encode(table, preprocessor, max_length)`
and `collate` turn either kind of rows into a batch, so every step encodes the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pretune import runs
from pretune.data import PreparedData, prepare
from pretune.data.encode import EncodedSplit, collate
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.evaluate import TorchRunner, evaluate, run_split
from pretune.models.onnx_runner import ONNX_FILE, OnnxRunner
from pretune.predictor import Run
from pretune.recipe import Recipe
from pretune.runs import RunDir
from pretune.tasks import Task, create_task

__all__ = ["TorchRunner", "evaluate_runner", "finish_variant", "load_data", "load_preprocessor_of", "load_runner",
           "load_torch_model", "task_of", "write_variant"]


def is_onnx(run: RunDir) -> bool:
    return (run.path / runs.MODEL / ONNX_FILE).is_file()


def is_image(task: Task) -> bool:
    return task.inputs == "image"


def task_of(run: RunDir) -> Task:
    """The run's task with the labels its saved model carries."""
    from pretune.models.load import load_saved_config

    task = create_task(run.recipe.data)
    task.restore(load_saved_config(run.model_path))
    return task


def load_torch_model(run: RunDir, step: str, task: Task | None = None):
    """The parent's torch model (fp32); an ONNX or int8 parent cannot be trained or changed."""
    from pretune.models.load import load_saved_model
    from pretune.models.quantized import quantization_of

    if is_onnx(run):
        raise PretuneError(f"step '{step}' needs a torch model but {run.path} holds ONNX; "
                           f"put quantize/export last in --steps")
    if quantization_of(run.model_path):
        raise PretuneError(f"step '{step}' needs an fp32 model but {run.path} is int8; put quantize last")
    return load_saved_model(run.model_path, task or task_of(run)).eval()


def load_runner(model_dir: str | Path, task: Task, threads: int | None = None):
    """The run's runner (ONNX, torch int8 or torch) on CPU, with `threads` intra-op threads."""
    from pretune.models.runners import load_runner as runner_of

    if threads:
        torch.set_num_threads(threads)
    runner = runner_of(model_dir, task, device="cpu")
    if threads and isinstance(runner, OnnxRunner):
        runner = OnnxRunner(runner.path, threads)
    return runner


def load_preprocessor_of(run: RunDir):
    """The saved model's tokenizer, or for an image run its ImageSettings (the model's size and
    normalisation, as predict reads them)."""
    if is_image(create_task(run.recipe.data)):
        from pretune.models.vision import load_image_settings

        return load_image_settings(str(run.model_path))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(run.model_path)


def load_data(run: RunDir, task: Task | None = None) -> PreparedData:
    """The run's own splits (the same seeded split as its fit), labels in the model's order."""
    task = task or task_of(run)
    return prepare(run.recipe.data, task, label_names=task.label_names)


def predict(runner, split: EncodedSplit, pad_id: int, batch_size: int = 64) -> np.ndarray:
    return run_split(runner, split, batch_size, pad_id)[0]


def evaluate_runner(runner, data: PreparedData, task: Task, preprocessor, max_length: int,
                    split: str = "test") -> dict:
    encoded = task.encode(data.splits[split], preprocessor, max_length)
    return {"samples": len(encoded), **evaluate(runner, encoded, task, 64, preprocessor.pad_token_id or 0)}


def encode_rows(data: PreparedData, task: Task, preprocessor, max_length: int, split: str,
                n: int | None = None) -> EncodedSplit:
    """The first `n` rows of a split (all with None), encoded as the model takes them."""
    table = data.splits[split]
    if n is not None:
        table = TextTable(table.texts[:n], table.pairs[:n] if table.pairs else None,
                          None if table.labels is None else table.labels[:n])
    return task.encode(table, preprocessor, max_length)


def input_batches(split: EncodedSplit, size: int, pad_id: int) -> list[dict]:
    """Model inputs of `size` rows each, in row order, collated (padded or normalised), no labels."""
    batches = []
    for start in range(0, len(split), size):
        batch = collate(split, list(range(start, min(start + size, len(split)))), pad_id)
        batch.pop("labels", None)
        batches.append(batch)
    return batches


def write_variant(out: Path, parent: RunDir, step: str, settings: dict, save_model: Callable[[Path], object],
                  recipe: Recipe | None = None, notes: dict | None = None) -> Run:
    """recipe.yaml first (it makes the directory a run), then model/, then metrics.json (done)."""
    run = RunDir.create(out, recipe or parent.recipe)
    with run.writing_model() as tmp:
        save_model(tmp)
    return finish_variant(out, parent, step, settings, notes)


def finish_variant(out: Path, parent: RunDir, step: str, settings: dict, notes: dict | None = None,
                   extra: dict | None = None) -> Run:
    """Evaluate the saved variant on its run's test split; write metrics.json."""
    run = Run(out)
    task = task_of(run)
    test = evaluate_runner(load_runner(run.model_path, task), load_data(run, task), task, load_preprocessor_of(run),
                           run.recipe.data.max_length)
    run.write_metrics({**(extra or {}), "test": test,
                       "compress": {"step": step, "parent": str(parent.path), "settings": settings, **(notes or {})}})
    return run


def sample_texts(data: PreparedData, split: str, n: int) -> list[str]:
    return list(data.splits[split].texts[:n])
