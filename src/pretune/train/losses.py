"""Losses by name: cross-entropy (smoothing, class weights), focal, BCE for multi-label, and
MSE / Huber for regression. Which ones fit, and the default, is the task's to say.

A loss of the user's own comes in two ways, never as code read from a recipe or a run
directory (they stay data): in Python, `fit(..., loss=fn_or_module)` (search, compress and
pipeline pass it on to every fit they run); or by name from an installed package that declares
a `pretune.losses` entry point (`[project.entry-points."pretune.losses"] my_loss =
"pkg.module:MyLoss"`), whose object is an nn.Module class (built without arguments) or a
function `(logits, labels) -> loss`. Either way the task shapes it as it shapes ours (a token
task passes only the labelled positions), and metrics.json's `train.loss_function` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F

from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.registry import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
losses: Registry[Callable[[LossConfig, torch.Tensor | None], LossFn]] = Registry("loss")
ENTRY_POINTS = "pretune.losses"


def installed_losses() -> dict[str, metadata.EntryPoint]:
    """name -> entry point of every installed package's `pretune.losses`. Distributions found
    in the working directory are left out: `python -m pretune` puts it first on sys.path, and a
    folder a recipe or a run sits in must not be able to plant code."""
    here = Path.cwd().resolve()
    found: dict[str, metadata.EntryPoint] = {}
    for dist in metadata.distributions():
        try:
            if Path(dist.locate_file("")).resolve() == here:
                continue
        except (OSError, NotImplementedError):
            continue
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINTS:
                found.setdefault(ep.name, ep)
    return found


def check_loss_name(name: str) -> None:
    """A built-in or installed loss name resolves; an unknown one lists both kinds."""
    if name in losses or name in installed_losses():
        return
    known = ", ".join([*losses.available(), *sorted(installed_losses())])
    raise PretuneError(f"unknown loss '{name}'; known: {known} (others come from a package's "
                       f"'{ENTRY_POINTS}' entry point)")


def create_loss(cfg: LossConfig, task, train_split, given=None) -> LossFn:
    """The recipe's loss (or the task's default, or `given`: a callable or nn.Module), checked
    against the task, weighted from the training labels where the recipe asks, and shaped by the
    task (token tasks mask padding)."""
    if given is not None:
        return task.shape_loss(_as_loss(given, "loss="))
    name = cfg.name or task.default_loss
    if name not in losses and name in installed_losses():
        return task.shape_loss(_as_loss(_load_installed(name), f"loss '{name}'"))
    losses.get(name)  # an unknown name lists the known ones
    if name not in task.losses:
        raise PretuneError(f"loss '{name}' does not fit a {task.name} task; use one of {', '.join(task.losses)}")
    weight = task.loss_weight(cfg, train_split)
    return task.shape_loss(losses.get(name)(cfg, weight))


def describe_loss(cfg: LossConfig, task, given=None) -> str:
    """What metrics.json says was minimised: a name, and where a user's loss came from."""
    if given is not None:
        return f"{_qualname(given)} (given in Python)"
    name = cfg.name or task.default_loss
    if name not in losses and name in installed_losses():
        ep = installed_losses()[name]
        dist = getattr(ep, "dist", None)
        return f"{name} (entry point {ep.value}" + (f", {dist.name} {dist.version})" if dist else ")")
    return name if cfg.name else f"{name} (the task's default)"


def _load_installed(name: str):
    try:
        return installed_losses()[name].load()
    except Exception as e:  # noqa: BLE001 - a broken plugin is the user's to fix: one line
        raise PretuneError(f"loss '{name}' (entry point {installed_losses()[name].value}) failed to load: "
                           f"{type(e).__name__}: {e}") from None


def _as_loss(obj, where: str) -> LossFn:
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        obj = obj()  # a loss class, as an entry point names it
    if not callable(obj):
        raise PretuneError(f"{where} takes a callable (logits, labels) -> loss or an nn.Module, "
                           f"not {type(obj).__name__}")
    return obj


def _qualname(obj) -> str:
    import inspect

    named = obj if isinstance(obj, type) or inspect.isroutine(obj) else type(obj)  # else: an instance
    return f"{getattr(named, '__module__', '?')}.{getattr(named, '__qualname__', type(obj).__name__)}"


@losses.register("cross_entropy")
def _cross_entropy(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    def loss(logits, labels):
        w = None if weight is None else weight.to(logits.device)
        return F.cross_entropy(logits.float(), labels, weight=w, label_smoothing=cfg.label_smoothing)

    return loss


@losses.register("focal")
def _focal(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    """Focal loss (Lin et al. 2017): (1 - p_t)^gamma scales down the easy examples."""

    def loss(logits, labels):
        log_p = F.log_softmax(logits.float(), dim=-1).gather(1, labels[:, None]).squeeze(1)
        per_example = -((1 - log_p.exp()) ** cfg.focal_gamma) * log_p
        if weight is None:
            return per_example.mean()
        w = weight.to(logits.device)[labels]
        return (w * per_example).sum() / w.sum()

    return loss


@losses.register("mse")
def _mse(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    def loss(logits, labels):
        return F.mse_loss(logits.float().squeeze(-1), labels.float())

    return loss


@losses.register("huber")
def _huber(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    """Squared near the target, linear beyond `huber_delta`: outliers pull less than with MSE."""

    def loss(logits, labels):
        return F.huber_loss(logits.float().squeeze(-1), labels.float(), delta=cfg.huber_delta)

    return loss


@losses.register("bce")
def _bce(cfg: LossConfig, weight: torch.Tensor | None) -> LossFn:
    """One sigmoid per label; `weight` is BCE's pos_weight (negatives / positives per label)."""

    def loss(logits, labels):
        w = None if weight is None else weight.to(logits.device)
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), pos_weight=w)

    return loss
