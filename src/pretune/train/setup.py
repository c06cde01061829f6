"""From a recipe (and any objects given in Python) to everything a fit or a finder needs: task,
data, tokenizer, model, strategy, loss.

Kept apart from the loop so that `fit`, `lr-find` and the batch-size finder build a job the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from torch import nn

from pretune.data import PreparedData, prepare
from pretune.data.encode import EncodedSplit, sampling_weights
from pretune.errors import PretuneError
from pretune.models import load_model, load_preprocessor, resolve_source
from pretune.models.surgery import apply_surgery
from pretune.models.weights_check import check_weights_match, loading_weights
from pretune.predictor import HoldsInputs, RunInputs
from pretune.recipe import Recipe
from pretune.strategies import Strategy, create_strategy, strategies
from pretune.tasks import Task, create_task, tasks
from pretune.train.callbacks import EarlyStoppingCallback
from pretune.train.loop import seed_everything
from pretune.train.losses import LossFn, check_loss_name, create_loss, describe_loss
from pretune.train.optimizers import create_optimizer, optimizers
from pretune.train.schedules import schedules


@dataclass
class FitParts(HoldsInputs):
    recipe: Recipe
    inputs: RunInputs  # task, preprocessor, effective max_length, pad id: saved with the model
    data: PreparedData
    model: nn.Module  # after surgery and the strategy's wrap
    encoded: dict[str, EncodedSplit]
    loss_fn: LossFn
    strategy: Strategy
    model_report: list[dict]  # parameters before / after each structure change
    sample_weights: np.ndarray | None = None  # data.sampling's per-row draw weights
    notices: list[str] = field(default_factory=list)  # settings changed at the edge, to tell the user
    plain_train: EncodedSplit | None = None  # the training split before augmentation (train_sample's rows)
    loss_name: str = ""  # what metrics.json says was minimised (a user's loss included)

    def optimizer_factory(self):
        groups = self.strategy.param_groups(self.model)
        return lambda _model: create_optimizer(groups, self.recipe.train.optimizer)

    def callbacks(self) -> list:
        return self.strategy.callbacks(self.model)


def resolve_names(recipe: Recipe) -> None:
    """Every name in the recipe resolves now: an unknown one fails before any work or file."""
    tc = recipe.train
    optimizers.get(tc.optimizer.name), schedules.get(tc.schedule.name), strategies.get(recipe.strategy.name)
    tasks.get(recipe.data.task)
    if tc.loss.name is not None:
        check_loss_name(tc.loss.name)


def check_metric(recipe: Recipe, task: Task) -> None:
    watched = {"train.early_stopping.metric": recipe.train.early_stopping.metric,
               "train.keep_best": recipe.train.keep_best}
    for key, metric in watched.items():
        if metric is not None and metric not in task.metric_names:
            raise PretuneError(f"{key} '{metric}' is not a {task.name} metric; known: {', '.join(task.metric_names)}")


def count_parameters(model: nn.Module) -> dict:
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def prepare_fit(recipe: Recipe, model: nn.Module | None = None, tokenizer=None, data=None, loss=None) -> FitParts:
    """`model`, `tokenizer` and `data` (a DataFrame or a dict of splits) replace what the recipe
    would load: a Hugging Face model or any nn.Module whose forward takes the tokenizer's
    output and returns logits (a tensor, or an object with `.logits`); `loss` (a callable
    (logits, labels) -> loss, or an nn.Module) the recipe's train.loss."""
    resolve_names(recipe)
    task = create_task(recipe.data)
    check_metric(recipe, task)
    mixing = recipe.data.augment.mixup or recipe.data.augment.cutmix
    if mixing and (loss is not None or (recipe.train.loss.name or task.default_loss) != "cross_entropy"):
        # Mixed targets are class-probability rows, which only cross-entropy takes.
        raise PretuneError("data.augment mixup / cutmix need train.loss cross_entropy")
    seed_everything(recipe.seed)
    prepared = prepare(recipe.data, task, frames=data)
    if tokenizer is None:
        tokenizer = default_preprocessor(recipe, task) if model is not None else None
        tokenizer = tokenizer or load_preprocessor(recipe.model.source, task)
    notices: list[str] = list(prepared.notices)  # rows dropped, labels read as text
    if model is None:
        with loading_weights(recipe.model.source):
            model = load_model(recipe.model, task)
        notices += check_weights_match(model, resolve_source(recipe.model.source))
    else:
        _check_given_model(model, task)
        if hasattr(getattr(model, "config", None), "to_dict"):
            task.configure(model.config)  # a Hugging Face model saves with the data's labels
    inputs, capped = RunInputs.build(recipe.data, task, tokenizer, getattr(model, "config", None))
    notices += capped
    report = [{"change": "pretrained", **count_parameters(model)}]
    report += apply_surgery(model, recipe.model.surgery, recipe.model.layer_prefixes)
    strategy = create_strategy(recipe.strategy, recipe.train.optimizer, recipe.model)
    model = strategy.wrap(model)
    task.check_model(model, tokenizer)
    encoded = {name: inputs.encode(t) for name, t in prepared.splits.items()}
    plain_train = encoded["train"]
    if hasattr(strategy, "prepare"):  # a phase of its own before the loop (setfit's pairs)
        report.append({"change": f"strategy {recipe.strategy.name} body phase",
                       **strategy.prepare(model, plain_train, task, inputs.pad_id, recipe.seed),
                       **count_parameters(model)})
    encoded["train"] = task.for_training(encoded["train"], recipe.seed)
    notices += task.notices()
    weights = None
    if recipe.data.sampling != "natural":
        classes = task.sampling_classes(encoded["train"])
        if classes is None:
            raise PretuneError(f"data.sampling '{recipe.data.sampling}' needs classes; a {task.name} task has none")
        weights = sampling_weights(classes, recipe.data.sampling)
    loss_fn = create_loss(recipe.train.loss, task, encoded["train"], loss)
    return FitParts(recipe, inputs, prepared, model, encoded, loss_fn, strategy, report,
                    weights, notices, plain_train, describe_loss(recipe.train.loss, task, loss))


def default_preprocessor(recipe: Recipe, task: Task):
    """Image settings for a model given in Python with none: ImageNet's normalisation at
    data.image_size (224 px unset); None for text, whose tokenizer the recipe names."""
    if task.inputs != "image":
        return None
    from pretune.data.images import ImageSettings

    return ImageSettings(recipe.data.image_size or 224)


def _check_given_model(model: nn.Module, task: Task) -> None:
    if not isinstance(model, nn.Module):
        raise PretuneError(f"model= takes a torch nn.Module (a Hugging Face model included), "
                           f"not {type(model).__name__}")
    configured = getattr(getattr(model, "config", None), "num_labels", None)
    if configured is not None and task.label_names and configured != task.num_labels:
        raise PretuneError(f"the given model has {configured} outputs; the data has {task.num_labels} labels")


def early_stopping(recipe: Recipe) -> EarlyStoppingCallback | None:
    cfg = recipe.train.early_stopping
    return EarlyStoppingCallback(cfg) if cfg.patience else None
