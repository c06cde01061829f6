"""Tokenize once, pad per batch, and order batches by length.

Texts are tokenized a single time up front (no padding); each batch is padded only to its own
longest member, and training batches are drawn from length-sorted pools so that little of each
batch is padding (the idea of Hugging Face's LengthGroupedSampler).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pretune.data.prepare import TextTable

POOL_BATCHES = 50  # batches per length-sorted pool: big enough to group, small enough to shuffle


@dataclass
class EncodedSplit:
    features: dict[str, list[list[int]]]  # input_ids, attention_mask, maybe token_type_ids
    labels: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)


def encode(table: TextTable, tokenizer, max_length: int) -> EncodedSplit:
    enc = tokenizer(
        table.texts, table.pairs, truncation=True, max_length=max_length, padding=False
    )
    features = {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    lengths = np.fromiter((len(ids) for ids in features["input_ids"]), dtype=np.int64)
    return EncodedSplit(features, table.labels, lengths)


def collate(split: EncodedSplit, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the chosen rows to their own longest length; add labels."""
    width = int(split.lengths[indices].max())
    batch = {}
    for name, rows in split.features.items():
        fill = pad_id if name == "input_ids" else 0
        out = np.full((len(indices), width), fill, dtype=np.int64)
        for r, i in enumerate(indices):
            out[r, : len(rows[i])] = rows[i]
        batch[name] = torch.from_numpy(out)
    batch["labels"] = torch.from_numpy(split.labels[indices])
    return batch


def train_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool,
    rank: int = 0, world_size: int = 1,
) -> list[list[int]]:
    """The batches of one epoch: a pure function of (seed, epoch), so a resume replays it exactly.

    With several processes every rank gets every world_size-th batch of the same order.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
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
