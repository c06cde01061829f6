"""Tokenize once, pad per batch, and order batches by length.

Texts are tokenized a single time up front (no padding), in chunks of ENCODE_CHUNK rows, each
chunk's ids kept as flat numpy arrays (data/ragged.py): a tokenizer's output for a whole data set
at once (its per-row encodings and Python lists of ints) took gigabytes at 200k rows. Each batch
is padded only to its own longest member, and training batches are drawn from length-sorted
pools so that little of each batch is padding (the idea of Hugging Face's LengthGroupedSampler).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pretune.data.prepare import TextTable
from pretune.data.ragged import RaggedRows

POOL_BATCHES = 50  # batches per length-sorted pool: big enough to group, small enough to shuffle
IGNORE_INDEX = -100  # a label position the loss skips (padding, non-first sub-words): torch's default
ENCODE_CHUNK = 4096  # rows tokenized per call: big enough for the fast tokenizer's batching
# ids need int32 (vocabularies pass 65k); masks and segment ids fit a byte.
FEATURE_TYPES = {"input_ids": np.int32, "attention_mask": np.int8, "token_type_ids": np.int8}


@dataclass
class EncodedSplit:
    """Tokenized rows, unpadded. `labels`: an array (one label, a number, or a 0/1 row per
    text) or a list of per-token arrays; None for unlabelled input. `meta`: what a task keeps
    to decode predictions (word ids, character offsets). A feature may instead be one tensor
    of fixed-size rows (images' pixel_values), stacked rather than padded; `transform` then
    turns each collated batch into the model's input (normalisation, augmentation)."""

    features: dict[str, Any]  # input_ids, attention_mask, maybe token_type_ids; or tensors
    labels: Any
    lengths: np.ndarray
    meta: dict[str, list] = field(default_factory=dict)
    transform: Callable[[dict], dict] | None = None

    def __len__(self) -> int:
        return len(self.lengths)


def lengths_of(features: dict) -> np.ndarray:
    ids = features["input_ids"]
    if isinstance(ids, RaggedRows):
        return ids.lengths()
    return np.fromiter((len(row) for row in ids), dtype=np.int64)


def encode_texts(table: TextTable, tokenizer, max_length: int) -> EncodedSplit:
    parts: dict[str, list[RaggedRows]] = {}
    for start in range(0, max(len(table.texts), 1), ENCODE_CHUNK):
        stop = start + ENCODE_CHUNK
        enc = tokenizer(table.texts[start:stop], table.pairs[start:stop] if table.pairs else None,
                        truncation=True, max_length=max_length, padding=False)
        for name, dtype in FEATURE_TYPES.items():
            if name in enc:
                parts.setdefault(name, []).append(RaggedRows.from_lists(enc[name], dtype))
    features = {name: RaggedRows.concat(chunks, FEATURE_TYPES[name]) for name, chunks in parts.items()}
    return EncodedSplit(features, table.labels, lengths_of(features))


encode = encode_texts  # the text tasks' default; a task may encode its own way


def collate(split: EncodedSplit, indices: list[int], pad_id: int, key: tuple[int, ...] | None = None
            ) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to their own longest length; add labels when the split has them.
    `key` (epoch, batch number) names a training batch to the split's transform (augmentation).

    Hand-written rather than transformers' DataCollatorWithPadding: padding lists of ids into
    one numpy array skips the tokenizer's per-call checks, and a training step pads one batch."""
    width = int(split.lengths[indices].max())
    batch = {}
    for name, rows in split.features.items():
        if isinstance(rows, torch.Tensor):  # fixed-size rows: nothing to pad
            batch[name] = rows[torch.as_tensor(indices, dtype=torch.long)]
            continue
        fill = pad_id if name == "input_ids" else 0
        out = np.full((len(indices), width), fill, dtype=np.int64)
        for r, i in enumerate(indices):
            out[r, : len(rows[i])] = rows[i]
        batch[name] = torch.from_numpy(out)
    if isinstance(split.labels, list):  # one label per token: pad with the ignored index
        out = np.full((len(indices), width), IGNORE_INDEX, dtype=np.int64)
        for r, i in enumerate(indices):
            out[r, : len(split.labels[i])] = split.labels[i]
        batch["labels"] = torch.from_numpy(out)
    elif split.labels is not None:
        batch["labels"] = torch.from_numpy(split.labels[indices])
    return batch if split.transform is None else split.transform(batch, key)


def sampling_weights(classes: list[list[int]], mode: str) -> np.ndarray | None:
    """Per-row draw weights: 1/n (balanced) or 1/sqrt(n) (sqrt) of the row's rarest class."""
    if mode == "natural":
        return None
    counts: dict[int, int] = {}
    for row in classes:
        for c in row:
            counts[c] = counts.get(c, 0) + 1
    rarest = np.array([min(counts[c] for c in row) for row in classes], dtype=np.float64)
    weights = 1.0 / (rarest if mode == "balanced" else np.sqrt(rarest))
    return weights / weights.sum()


def train_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool,
    rank: int = 0, world_size: int = 1, weights: np.ndarray | None = None,
) -> list[list[int]]:
    """The batches of one epoch: a pure function of (seed, epoch), so a resume replays it exactly.

    With `weights`, the epoch's rows are drawn with replacement in proportion to them (as many
    draws as rows); else every row once. With several processes every rank gets every
    world_size-th batch of the same order.
    """
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        order = rng.permutation(len(lengths))
    else:
        order = rng.choice(len(lengths), size=len(lengths), replace=True, p=weights)
    if group_by_length:
        pool = batch_size * POOL_BATCHES
        order = np.concatenate([
            chunk[np.argsort(-lengths[chunk], kind="stable")]
            for chunk in np.array_split(order, max(1, -(-len(order) // pool)))
        ])
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    usable = len(batches) - len(batches) % world_size if world_size > 1 else len(batches)
    return batches[rank:usable:world_size]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Longest first, so padding is minimal; callers put predictions back in row order."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
