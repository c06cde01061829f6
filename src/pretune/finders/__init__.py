"""Finders: settings measured on the recipe's own model and data before a fit.

`find_lr` runs the learning-rate range test; `find_batch_size` finds the largest batch that
fits in memory and the gradient accumulation that reaches a target effective batch.
"""

from pretune.finders.batch_size import BatchSizeResult, find_batch_size
from pretune.finders.lr_find import LRFindResult, find_lr

__all__ = ["BatchSizeResult", "LRFindResult", "find_batch_size", "find_lr"]
