"""One evaluation path for fit's validation and test passes, `Run.evaluate`, `pretune eval` and
compression's measurements: a runner turns a padded batch into logits, the task scores them.

A runner is any callable `runner(batch: dict[str, torch.Tensor]) -> logits` (a tensor or a numpy
array) taking input_ids, attention_mask (and token_type_ids); `TorchRunner` wraps a model, and an
ONNX Runtime session fits the same protocol (models/onnx_runner.py).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import numpy as np
import torch

from pretune.data.encode import EncodedSplit, collate, eval_batches

# Lower is better for these; higher for the rest.
LOWER_IS_BETTER = {"loss", "mse", "mae", "rmse", "hamming_loss", "train_seconds", "latency_ms",
                   "size_mb"}


def logits_of(output) -> torch.Tensor:
    """Logits from what a model returns: a tensor, a Hugging Face output, or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is not None:
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


class TorchRunner:
    """A torch model as a runner: eval mode, no gradients, the caller's autocast."""

    def __init__(self, model, device: torch.device | str = "cpu", autocast=nullcontext):
        self.model, self.device, self.autocast = model, torch.device(device), autocast

    @contextmanager
    def eval_mode(self):
        """Eval mode for a whole pass (`run_split` holds it), restored after: switching every
        module's mode per batch is a walk of the whole model each time."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield self
        finally:
            self.model.train(was_training)

    @torch.inference_mode()
    def __call__(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.model.training:  # called on its own, outside a pass
            with self.eval_mode():
                return self(batch)
        with self.autocast():
            return logits_of(self.model(**{k: v.to(self.device) for k, v in batch.items()}))


def run_split(runner, split: EncodedSplit, batch_size: int, pad_id: int, loss_fn=None, shard=None):
    """Outputs in row order (an (n, k) array, or a list of per-token (length, k) arrays for
    models with one output per token) and the mean loss when `loss_fn` and labels are given.

    `shard` (an accelerate Accelerator or PartialState) splits the batches between the
    processes of a distributed fit, each running every N-th batch, and gathers the outputs, so
    that N processes evaluate N times faster and all of them get every row (a callback that
    stops training or keeps the best weights decides the same on every process)."""
    batches = list(eval_batches(split.lengths, batch_size))
    world = shard.num_processes if shard is not None else 1
    if world > 1:
        batches = batches[shard.process_index::world]
    pairs, loss_sum, seen = [], 0.0, 0
    with getattr(runner, "eval_mode", nullcontext)():
        for indices in batches:
            batch = collate(split, indices, pad_id)
            labels = batch.pop("labels", None)
            logits = torch.as_tensor(runner(batch)).float().cpu()
            if loss_fn is not None and labels is not None:
                loss_sum += float(loss_fn(logits, labels)) * len(indices)
                seen += len(indices)
            array = logits.numpy()
            per_token = array.ndim == 3
            pairs += [(i, array[r, : split.lengths[i]] if per_token else array[r]) for r, i in enumerate(indices)]
    if world > 1:
        from accelerate.utils import gather_object

        parts = gather_object([(pairs, loss_sum, seen)])
        pairs = [pair for part in parts for pair in part[0]]
        loss_sum, seen = sum(part[1] for part in parts), sum(part[2] for part in parts)
    rows: list = [None] * len(split)
    for i, row in pairs:
        rows[i] = row
    outputs = rows if rows and rows[0] is not None and rows[0].ndim == 2 else np.stack(rows)
    return outputs, (loss_sum / seen if seen else None)


def evaluate(runner, split: EncodedSplit, task, batch_size: int = 64, pad_id: int = 0,
             loss_fn=None, shard=None) -> dict:
    """The task's metrics of `runner` on a labelled split (with the loss first, when given)."""
    outputs, loss = run_split(runner, split, batch_size, pad_id, loss_fn, shard)
    metrics = task.metrics(outputs, split)
    return metrics if loss is None else {"loss": loss, **metrics}


def is_better(metric: str, new: float, old: float | None, min_delta: float = 0.0,
              mode: str = "auto") -> bool:
    if old is None:
        return True
    lower = metric in LOWER_IS_BETTER if mode == "auto" else mode == "min"
    return new < old - min_delta if lower else new > old + min_delta
