"""From a recipe to everything a fit (or a finder) needs: data, tokenizer, model, strategy, loss.

Kept apart from the loop so that `fit`, `lr-find` and the batch-size finder build a job the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from pretune.data import PreparedData, encode, prepare
from pretune.data.encode import EncodedSplit
from pretune.errors import PretuneError
from pretune.models import load_classifier, load_tokenizer
from pretune.models.surgery import apply_surgery
from pretune.recipe import Recipe
from pretune.strategies import Strategy, create_strategy, strategies
from pretune.train.callbacks import EarlyStoppingCallback
from pretune.train.loop import seed_everything
from pretune.train.losses import LossFn, create_loss, losses
from pretune.train.optimizers import create_optimizer, optimizers
from pretune.train.schedules import schedules

CLASSIFICATION_METRICS = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro",
                          "precision_micro", "recall_micro", "f1_micro", "precision_weighted",
                          "recall_weighted", "f1_weighted")
REGRESSION_METRICS = ("loss", "mse", "mae", "r2")


@dataclass
class FitParts:
    recipe: Recipe
    data: PreparedData
    tokenizer: object
    model: nn.Module  # after surgery and the strategy's wrap
    encoded: dict[str, EncodedSplit]
    loss_fn: LossFn
    strategy: Strategy
    model_report: list[dict]  # parameters before / after each structure change

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def optimizer_factory(self):
        groups = self.strategy.param_groups(self.model)
        return lambda _model: create_optimizer(groups, self.recipe.train.optimizer)

    def callbacks(self) -> list:
        return self.strategy.callbacks(self.model)


def resolve_names(recipe: Recipe) -> None:
    """Every name in the recipe resolves now: an unknown one fails before any work or file."""
    tc = recipe.train
    optimizers.get(tc.optimizer.name), schedules.get(tc.schedule.name), losses.get(tc.loss.name)
    strategies.get(recipe.strategy.name)


def check_metric(recipe: Recipe) -> None:
    task = recipe.data.task
    known = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    watched = {"train.early_stopping.metric": recipe.train.early_stopping.metric,
               "train.keep_best": recipe.train.keep_best}
    for key, metric in watched.items():
        if metric is not None and metric not in known:
            raise PretuneError(f"{key} '{metric}' is not a {task} metric; known: {', '.join(known)}")


def count_parameters(model: nn.Module) -> dict:
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def prepare_fit(recipe: Recipe) -> FitParts:
    resolve_names(recipe)
    check_metric(recipe)
    seed_everything(recipe.seed)
    data = prepare(recipe.data)
    task = recipe.data.task
    tokenizer = load_tokenizer(recipe.model.source)
    model = load_classifier(recipe.model, data.num_labels, data.label_names, task == "regression")
    report = [{"change": "pretrained", **count_parameters(model)}]
    report += apply_surgery(model, recipe.model.surgery, recipe.model.layer_prefixes)
    strategy = create_strategy(recipe.strategy, recipe.train.optimizer, recipe.model)
    model = strategy.wrap(model)
    encoded = {name: encode(t, tokenizer, recipe.data.max_length) for name, t in data.splits.items()}
    counts = np.bincount(data.splits["train"].labels, minlength=data.num_labels) if task == "classification" else None
    loss_fn = create_loss(recipe.train.loss, task, counts)
    return FitParts(recipe, data, tokenizer, model, encoded, loss_fn, strategy, report)


def early_stopping(recipe: Recipe) -> EarlyStoppingCallback | None:
    cfg = recipe.train.early_stopping
    return EarlyStoppingCallback(cfg) if cfg.patience else None
