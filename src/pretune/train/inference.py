"""Forward passes over an encoded split, in length-sorted batches, logits back in row order."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from pretune.data.encode import EncodedSplit, collate, eval_batches


@torch.inference_mode()
def predict_logits(
    model, split: EncodedSplit, batch_size: int, pad_id: int, device: torch.device,
    autocast=nullcontext,
) -> np.ndarray:
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    for indices in eval_batches(split.lengths, batch_size):
        batch = collate(split, indices, pad_id)
        batch.pop("labels")
        with autocast():
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        logits = logits.float().cpu().numpy()
        if out is None:
            out = np.empty((len(split), logits.shape[-1]), dtype=np.float32)
        out[indices] = logits
    model.train(was_training)
    return out
