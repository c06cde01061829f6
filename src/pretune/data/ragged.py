"""Rows of varying length (token ids, attention masks) in one flat numpy array and an offset per
row, so that a tokenised data set costs what its tokens cost.

A Python list of lists of ints, as a tokenizer returns it, holds ~36 bytes per token id (an
8-byte pointer and a 28-byte int object); here an id is 4 bytes and a mask value 1. With
tokenisation done in chunks (data/encode.py), the peak memory of a fit grows with the model and
the batch, not with the rows (benchmarks/memory.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class RaggedRows(Sequence):
    """`rows[i]` is row i as a numpy array view; `len(rows)` the number of rows."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], dtype=np.int32) -> RaggedRows:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((v for r in rows for v in r), dtype=dtype, count=int(offsets[-1]))
        return cls(flat, offsets)

    @classmethod
    def concat(cls, parts: Sequence[RaggedRows], dtype=np.int32) -> RaggedRows:
        if not parts:
            return cls(np.zeros(0, dtype=dtype), np.zeros(1, dtype=np.int64))
        if len(parts) == 1:
            return parts[0]
        starts = np.cumsum([0] + [len(p.flat) for p in parts[:-1]])
        shifted = [p.offsets[1:] + s for p, s in zip(parts, starts, strict=True)]
        offsets = np.concatenate([parts[0].offsets[:1], *shifted])
        return cls(np.concatenate([p.flat for p in parts]), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        return self.flat[self.offsets[i]: self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.flat[self.offsets[i]: self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tolist(self) -> list[list[int]]:
        return [row.tolist() for row in self]
