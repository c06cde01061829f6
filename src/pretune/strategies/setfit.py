"""SetFit (Tunstall et al. 2022) for few labels: first the body is fine-tuned contrastively on
pairs of training texts (same label: cosine similarity 1, different: 0), then the head trains on
the frozen body.

The pair phase follows SetFit's recipe (`strategy.setfit`): every training row is paired
`pairs` times with a row of its class and `pairs` times with one of another, the mean-pooled
embeddings' cosine similarity is regressed on the target with a squared error (SetFit's default,
sentence-transformers' CosineSimilarityLoss), AdamW at `lr`. It runs on the already encoded
split, before the loop; the head phase is the loop itself with the `freeze` strategy's plan
(head only; the frozen body's features cached). So the result is an ordinary run of the task's
model class: predict, eval, serve, compress, report and card work on it as on any other.

Differences from the `setfit` library, said here once: its head is a logistic regression on the
mean-pooled embedding; here it is the model's own classification head (BERT: pooler and linear
on the first token), trained by the loop, so the saved model needs nothing but transformers.
Multi-label rows pair as positive when their label sets are equal.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pretune.data.encode import EncodedSplit, collate
from pretune.errors import PretuneError
from pretune.strategies.layerwise import FreezeStrategy


def takes_task(task) -> bool:
    """Classes of whole texts: one vector per text (sequence classification, its pairs, multi-label)."""
    return (task.inputs == "text" and task.auto_class == "AutoModelForSequenceClassification"
            and not task.predicts_values)


def sample_pairs(labels: np.ndarray, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left rows, right rows, targets): each row `pairs` times with a same-label partner and
    `pairs` times with a different-label one (where such a partner exists)."""
    rng = np.random.default_rng(seed)
    keys = [row.tobytes() for row in np.asarray(labels).reshape(len(labels), -1)]
    groups: dict[bytes, np.ndarray] = {}
    for key in set(keys):
        groups[key] = np.array([i for i, k in enumerate(keys) if k == key])
    left, right, target = [], [], []
    for i, key in enumerate(keys):
        same = groups[key][groups[key] != i]
        other = np.array([j for k, g in groups.items() if k != key for j in g])
        for partners, value in ((same, 1.0), (other, 0.0)):
            if len(partners):
                left += [i] * pairs
                right += list(rng.choice(partners, size=pairs))
                target += [value] * pairs
    order = rng.permutation(len(left))
    return np.array(left)[order], np.array(right)[order], np.array(target, dtype=np.float32)[order]


def mean_pooled(body: nn.Module, batch: dict) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers makes them: the token states averaged over
    the attention mask."""
    states = body(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class SetFitStrategy(FreezeStrategy):
    """Contrastive pairs for the body (`prepare`, before the loop), then the head (the loop)."""

    def prepare(self, model: nn.Module, train: EncodedSplit, task, pad_id: int, seed: int) -> dict:
        if not takes_task(task):
            raise PretuneError(f"strategy setfit trains text classification and multi-label; not {task.name}")
        cfg = self.cfg.setfit
        body = getattr(model, "base_model", None)
        if body is None or body is model:
            raise PretuneError("strategy setfit needs a Hugging Face model with a body (base_model) and a head")
        left, right, target = sample_pairs(train.labels, cfg.pairs, seed)
        if not (target == 0).any() or not (target == 1).any():
            raise PretuneError("strategy setfit needs at least two rows of one label and one of another")
        optimizer = torch.optim.AdamW([p for p in body.parameters()], lr=cfg.lr)
        was_training = model.training
        body.train()
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for _ in range(cfg.epochs):
            order = torch.randperm(len(left), generator=generator).numpy()
            for start in range(0, len(order), cfg.batch_size):
                chosen = order[start:start + cfg.batch_size]
                a = _inputs(collate(train, list(left[chosen]), pad_id))
                b = _inputs(collate(train, list(right[chosen]), pad_id))
                cosine = F.cosine_similarity(mean_pooled(body, a), mean_pooled(body, b))
                loss = F.mse_loss(cosine, torch.from_numpy(target[chosen]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        model.train(was_training)
        return {"setfit_pairs": int(len(left)), "setfit_pair_steps": len(losses),
                "setfit_pair_loss_first": losses[0], "setfit_pair_loss_last": float(np.mean(losses[-10:]))}


def _inputs(batch: dict) -> dict:
    batch.pop("labels", None)
    return batch
