"""Speed settings of the train step that change results only in the last bits: torch.compile
and length rounding.

Each is on by default only where benchmarks/fit_throughput.py (interleaved rounds, each contender
in its own process) shows it pays; so far neither is (issue 20's note).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretune.data.encode import IGNORE_INDEX, EncodedSplit

# Rounded lengths when compiled: length-grouped batches then reuse a few compiled shapes
# (max_length / 16 of them) instead of recompiling for each new longest member.
COMPILED_MULTIPLE = 16


def resolve_compile(requested: bool | str) -> bool:
    """`train.compile`. auto stays off: no run of a recipe's size has been measured to pay for
    inductor's compile. On a 2-core AVX2 EPYC, compiling MiniLM-L6's train step for three batch
    lengths used over 7 CPU-minutes without finishing, where a whole 2,000-review fp32 epoch runs
    in about 2 (55 s on 2 cores); and half the step is matmuls, which compiling does not speed
    up (benchmarks/fit_profile.py). `fit_throughput.py --contenders pretune-default
    pretune-compiled` measures it on another machine."""
    if requested == "auto":
        return False
    return bool(requested)


def length_multiple(requested: int | None, compiled: bool) -> int:
    if requested is not None:
        return requested
    return COMPILED_MULTIPLE if compiled else 1


def pad_batch(batch: dict[str, torch.Tensor], split: EncodedSplit, multiple: int, pad_id: int
              ) -> dict[str, torch.Tensor]:
    """Round a collated batch's token length up to `multiple`: ids with `pad_id`, masks and
    segment ids with 0, per-token labels with the ignored index. The added positions are
    masked out, so the model's outputs for the real tokens are the same."""
    padded = [name for name, rows in split.features.items() if not isinstance(rows, torch.Tensor)]
    if multiple <= 1 or not padded:
        return batch
    width = batch[padded[0]].shape[1]
    extra = -width % multiple
    if not extra:
        return batch
    out = dict(batch)
    for name in padded:
        out[name] = F.pad(batch[name], (0, extra), value=pad_id if name == "input_ids" else 0)
    if isinstance(split.labels, list) and "labels" in batch:  # one label per token
        out["labels"] = F.pad(batch["labels"], (0, extra), value=IGNORE_INDEX)
    return out
