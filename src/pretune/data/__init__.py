"""Tables in, checked and encoded splits out."""

from pretune.data.encode import EncodedSplit, collate, encode, eval_batches, train_batches
from pretune.data.prepare import PreparedData, TextTable, prepare

__all__ = [
    "EncodedSplit", "PreparedData", "TextTable", "collate", "encode", "eval_batches",
    "prepare", "train_batches",
]
