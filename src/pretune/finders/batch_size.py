"""Batch-size finder: the largest batch that fits in memory, and the accumulation for a target.

Every try is the worst case the recipe allows: each sequence padded to data.max_length.

- CUDA ("oom-probe"): one forward + backward + optimizer step at batch sizes 1, 2, 4, ... until
  CUDA runs out of memory (or the peak passes the budget, or the cap); the last that fit wins.
- CPU ("memory-estimate"): running out of memory there means the OS killing the process, and
  the process's peak RSS only ever grows, so nothing can be probed. Instead autograd's
  saved-tensor hooks count the bytes a forward pass keeps for backward (the activations) at
  two batch sizes; a line through them, plus weights, gradients and optimizer state, estimates
  a step's memory, and the largest power of two under the budget wins. It is an estimate:
  short-lived buffers of the backward pass are not counted, hence the default budget of half
  the memory available.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from pretune.errors import PretuneError
from pretune.evaluate import logits_of
from pretune.recipe import OptimizerConfig, Recipe, as_recipe
from pretune.train.loop import create_accelerator
from pretune.train.setup import FitParts, prepare_fit

CAP = 4096  # beyond this, batch size no longer buys throughput on any device we know
PROBE_SIZES = (2, 8)  # two small batches for the line; big enough that per-sample bytes dominate
BUDGET_SHARE = 0.5  # of MemAvailable, when no budget is given
STATE_COPIES = {"adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1}  # optimizer state per weight
GB = 1024**3  # GiB, as --budget-gb reads it


@dataclass
class BatchSizeResult:
    batch_size: int  # train.batch_size to use
    gradient_accumulation_steps: int  # train.gradient_accumulation_steps to use
    effective_batch_size: int  # their product
    method: str  # "oom-probe" (CUDA) or "memory-estimate" (CPU)
    details: dict  # largest batch that fit, budget, and each try or estimate in bytes

    def recipe_lines(self) -> list[str]:
        return [f"train.batch_size={self.batch_size}",
                f"train.gradient_accumulation_steps={self.gradient_accumulation_steps}"]

    def to_dict(self) -> dict:
        return asdict(self)


def find_batch_size(
    recipe: Recipe | dict | str | Path, effective: int | None = None, budget_bytes: int | None = None,
) -> BatchSizeResult:
    """The largest batch that fits; with `effective`, the batch and accumulation that reach it."""
    recipe = as_recipe(recipe)
    if effective is not None and effective < 1:
        raise PretuneError(f"--effective must be a positive number of samples, got {effective}")
    if budget_bytes is not None and budget_bytes <= 0:
        raise PretuneError(f"--budget-gb must be positive, got {budget_bytes / GB:g}")
    parts = prepare_fit(recipe)
    parts.optimizer_factory()  # builds the strategy's groups, which sets requires_grad
    cap = min(CAP, len(parts.encoded["train"]))
    if effective is not None:  # a batch past the target is never used
        cap = min(cap, 1 << (effective - 1).bit_length())
    acc = create_accelerator(recipe.train)
    if acc.device.type == "cuda":
        largest, details = _probe_cuda(parts, acc, cap, budget_bytes)
        method = "oom-probe"
    else:
        budget = budget_bytes if budget_bytes is not None else int(BUDGET_SHARE * available_bytes())
        largest, details = _estimate(parts, acc, cap, budget)
        method = "memory-estimate"
    acc.free_memory()
    batch, accum = plan_accumulation(largest, effective)
    return BatchSizeResult(batch, accum, batch * accum, method, {"largest_batch": largest, "cap": cap, **details})


def plan_accumulation(largest: int, effective: int | None) -> tuple[int, int]:
    """(batch, accumulation): fewest micro-batches of at most `largest` reaching `effective`,
    each as small as possible, so that batch * accumulation >= effective wastes under one step."""
    if effective is None:
        return largest, 1
    accum = math.ceil(effective / largest)
    return math.ceil(effective / accum), accum


def doubling_search(fits: Callable[[int], bool], cap: int) -> tuple[int, list[int]]:
    """Try 1, 2, 4, ... up to cap; stop at the first that does not fit. (largest fit, tried)."""
    largest, tried, size = 0, [], 1
    while size <= cap:
        tried.append(size)
        if not fits(size):
            break
        largest, size = size, size * 2
    return largest, tried


def worst_case_batch(parts: FitParts, size: int, device) -> dict[str, torch.Tensor]:
    """`size` rows of real tokens, none padded: every sequence as long as the recipe allows."""
    train = parts.encoded["train"]
    length = parts.max_length
    longest = np.asarray(train.features["input_ids"][int(np.argmax(train.lengths))])
    batch = {"input_ids": torch.from_numpy(np.tile(np.resize(longest, length), (size, 1)))}
    if "attention_mask" in train.features:
        batch["attention_mask"] = torch.ones(size, length, dtype=torch.long)
    if "token_type_ids" in train.features:
        batch["token_type_ids"] = torch.zeros(size, length, dtype=torch.long)
    batch["labels"] = torch.from_numpy(train.labels[np.arange(size) % len(train)])
    return {k: v.to(device) for k, v in batch.items()}


def _probe_cuda(parts: FitParts, acc, cap: int, budget: int | None) -> tuple[int, dict]:
    model, optimizer = acc.prepare(parts.model, parts.optimizer_factory()(parts.model))
    model.train()
    peaks: dict[int, int | None] = {}

    def fits(size: int) -> bool:
        gc.collect()
        torch.cuda.empty_cache()  # a failed try must not leave its blocks to the next one
        torch.cuda.reset_peak_memory_stats(acc.device)
        try:
            _train_step(model, optimizer, parts, acc, size)
        except torch.cuda.OutOfMemoryError:
            peaks[size] = None
            return False
        finally:
            optimizer.zero_grad(set_to_none=True)
        peaks[size] = torch.cuda.max_memory_allocated(acc.device)
        return budget is None or peaks[size] <= budget

    largest, _ = doubling_search(fits, cap)
    gc.collect()
    torch.cuda.empty_cache()
    if largest == 0:
        raise PretuneError(f"even batch size 1 does not fit on {acc.device} at max_length {parts.max_length}; "
                           "lower data.max_length or train fewer parameters (strategy)")
    return largest, {"budget_bytes": budget, "max_length": parts.max_length, "peak_bytes": peaks}


def _train_step(model, optimizer, parts: FitParts, acc, size: int) -> None:
    # Its own function, so that the step's tensors are freed when it returns or raises.
    batch = worst_case_batch(parts, size, acc.device)
    labels = batch.pop("labels")
    with acc.autocast():
        loss = parts.loss_fn(logits_of(model(**batch)), labels)
    acc.backward(loss)
    optimizer.step()


def _estimate(parts: FitParts, acc, cap: int, budget: int) -> tuple[int, dict]:
    model = parts.model.to(acc.device).train()
    b1, b2 = PROBE_SIZES
    m1, m2 = (saved_activation_bytes(model, parts, acc, b) for b in PROBE_SIZES)
    per_sample = max(0.0, (m2 - m1) / (b2 - b1))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    copies = optimizer_state_copies(parts.recipe.train.optimizer)
    fixed = weights + grads * (1 + copies) + max(0.0, m1 - b1 * per_sample)
    estimates = {}

    def fits(size: int) -> bool:
        estimates[size] = int(fixed + per_sample * size)
        return estimates[size] <= budget

    largest, _ = doubling_search(fits, cap)
    if largest == 0:
        raise PretuneError(
            f"even batch size 1 needs about {estimates[1] / GB:.3g} GiB at max_length {parts.max_length}, over "
            f"the {budget / GB:.3g} GiB budget; lower data.max_length, train fewer parameters, or raise --budget-gb")
    return largest, {
        "budget_bytes": budget, "max_length": parts.max_length, "weight_bytes": weights,
        "gradient_bytes": grads, "optimizer_state_bytes": grads * copies,
        "activation_bytes_fixed": int(fixed - weights - grads * (1 + copies)),
        "activation_bytes_per_sample": per_sample, "measured_activation_bytes": {b1: m1, b2: m2},
        "estimated_bytes": estimates,
    }


def saved_activation_bytes(model, parts: FitParts, acc, size: int) -> int:
    """Bytes autograd keeps for backward during one forward pass, weights left out.

    Many saved tensors are views of one storage (and a linear layer saves its weight), so bytes
    are counted once per storage, and storages of parameters not at all.
    """
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor  # keeps it alive until the graph goes, so no address is reused meanwhile

    batch = worst_case_batch(parts, size, acc.device)
    labels = batch.pop("labels")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), acc.autocast():
        loss = parts.loss_fn(logits_of(model(**batch)), labels)
    del loss  # frees the graph: nothing here needs a backward pass
    return sum(storages.values())


def optimizer_state_copies(cfg: OptimizerConfig) -> int:
    """Extra fp32 copies of each trainable weight the optimizer keeps (Adam: two moments)."""
    if cfg.name == "sgd":
        return 1 if cfg.momentum else 0
    if cfg.name == "rmsprop":
        return 2 if cfg.momentum else 1
    return STATE_COPIES.get(cfg.name, 2)  # an optimizer registered elsewhere: assume Adam's two


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo: what the kernel can hand out without swapping."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise PretuneError("cannot read MemAvailable from /proc/meminfo; give a budget with --budget-gb")
