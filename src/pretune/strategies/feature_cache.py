"""The frozen body's features, computed once: `freeze` (feature extraction) trains only the head,
so after the first epoch the encoder's output for a training row never changes. It is kept per
row and served again, and later epochs cost the embeddings and the head alone.

The encoder's `forward` is overridden on the instance for the length of the fit (on_fit_start
to on_fit_end), not replaced by a wrapper module: parameter names, checkpoints and the saved
model stay exactly those of the plain model. Validation and test passes (no training rows in
flight) go through the real encoder. The cached features are those of the encoder in eval mode:
the frozen body's dropout is off (and a CNN's batch norm uses its running statistics), as in
classic feature extraction. Text rows are cached at their own length (attention_mask); rows of
fixed size (an image's features), whole; the encoder may return a tensor or a model output.
"""

from __future__ import annotations

import torch


class FeatureCacheCallback:
    def __init__(self, encoder: torch.nn.Module):
        self.encoder = encoder
        self.cache: dict[int, torch.Tensor] = {}  # training row -> features (its own length)
        self.rows: list[int] | None = None  # the training rows of the batch in flight
        self.lengths: list[int] | None = None
        self.output_type = None  # the encoder's own output class, rebuilt on a cache hit
        self.hits = self.misses = 0

    def on_fit_start(self, state) -> None:
        self.encoder.forward = self._forward  # see the module docstring: why on the instance

    def on_fit_end(self, state) -> None:
        if "forward" in vars(self.encoder):
            del self.encoder.forward  # the class's own forward again
        self.rows = None
        state.extras["feature_cache"] = {"batches_cached": self.hits, "batches_computed": self.misses,
                                         "rows": len(self.cache)}

    def on_batch_start(self, state) -> None:
        self.rows = state.batch_indices.tolist()
        mask = state.batch.get("attention_mask")
        self.lengths = None if mask is None else mask.sum(1).tolist()

    def on_batch_end(self, state) -> None:
        self.rows = None  # a batch whose forward never reached the encoder leaves nothing behind

    on_evaluate = on_epoch_end = on_batch_end

    def _forward(self, hidden_states, *args, **kwargs):
        # The rows are the training batch's and serve its one encoder call: an evaluation the loop
        # runs before on_batch_end (eval_every_steps) must go through the real encoder.
        rows, self.rows = self.rows, None
        if rows is None:
            return type(self.encoder).forward(self.encoder, hidden_states, *args, **kwargs)
        if self.output_type is None or any(r not in self.cache for r in rows):
            self.misses += 1
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                out = type(self.encoder).forward(self.encoder, hidden_states, *args, **kwargs)
            self.encoder.train(was_training)
            self.output_type = type(out)
            features = out if isinstance(out, torch.Tensor) else out[0]
            for r, row in enumerate(rows):
                kept = features[r] if self.lengths is None else features[r, : self.lengths[r]]
                self.cache[row] = kept.detach().cpu()
            return out
        self.hits += 1
        if self.lengths is None:
            batch = torch.stack([self.cache[row] for row in rows])
        else:
            width = hidden_states.shape[1]
            first = self.cache[rows[0]]
            batch = torch.zeros(len(rows), width, first.shape[-1], dtype=first.dtype)
            for r, row in enumerate(rows):
                batch[r, : len(self.cache[row])] = self.cache[row]
        batch = batch.to(hidden_states.device)
        return batch if issubclass(self.output_type, torch.Tensor) else self.output_type(last_hidden_state=batch)
