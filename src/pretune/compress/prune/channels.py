"""`prune` of an image run: whole convolution channels removed with torch-pruning, so every
convolution after it really shrinks (fewer multiply-adds, fewer parameters, a smaller file).

torch-pruning's DependencyGraph traces the model once and groups the layers whose channels must
go together (a convolution's output, the BatchNorm after it, the next convolution's input, both
sides of a residual add, a depthwise convolution's groups); each group's channels are ranked by
the L2 norm of their weights across the group (GroupMagnitudeImportance) and the lowest
`compress.prune.channels` of every group are removed. The classifier head keeps its classes.

Removing a convolution's input channels shifts the mean and variance of its outputs, so every
BatchNorm's running statistics are stale after pruning (measured: a pretrained Lite0 pruned by
30 % scores chance in eval mode until they are re-estimated; EfficientNet's BatchNorm momentum
of 0.01 would take hundreds of steps to catch up). They are re-estimated on `score_batches`
training batches right after pruning and again at the end of recovery (Li et al. 2020,
EagleEye's adaptive BatchNorm). Recovery fine-tuning (recover.py) trains the whole model (a
frozen body, as in the parent's freeze strategy, could not adapt to its missing channels).
The pruned layers' sizes are recorded in the config (models/channels.py), so the saved run
reloads without torch-pruning.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pretune.compress import base
from pretune.compress.loaded import LoadedRun
from pretune.compress.prune.recover import recover
from pretune.errors import MissingExtraError, PretuneError
from pretune.evaluate import logits_of
from pretune.models.channels import channel_sizes, record_channels
from pretune.recipe import CompressConfig


def check_prune_image(parent: base.Parent, cfg: CompressConfig) -> None:
    if cfg.prune.method != "structured":
        raise PretuneError(f"image runs prune whole channels (compress.prune.method structured), "
                           f"not '{cfg.prune.method}'; magnitude pruning is for text encoders")


@base.register("prune", "image", settings=lambda cfg: cfg.prune, check=check_prune_image)
def prune_image(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    pc = cfg.prune
    model = parent.model("prune")
    notes = prune_channels(model, pc.channels, parent.preprocessor.size, pc.channel_multiple)
    batches = parent.batches("train", 32 * pc.score_batches, 32)
    notes["batchnorm_recalibrated"] = recalibrate_batchnorm(model, batches)
    return recover(parent, model, pc, out, notes, pc.recovery_epochs, callbacks=[BatchNormCallback(batches)],
                   train_all=True)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: list[dict]) -> int:
    """Re-estimate every BatchNorm's running mean and variance as the plain average over
    `batches`; the rest of the model in eval mode (no dropout, no drop-connect). Returns how many."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = [m.momentum for m in norms]
    was_training = model.training
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch, not an exponential one
        norm.train()
    device = next(model.parameters()).device
    try:
        for batch in batches:
            model(pixel_values=batch["pixel_values"].to(device))
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)
    return len(norms)


class BatchNormCallback:
    """Re-estimates BatchNorm statistics when recovery fine-tuning ends, before fit saves."""

    def __init__(self, batches: list[dict]):
        self.batches = batches

    def on_fit_end(self, state) -> None:
        if state.status == "completed":
            recalibrate_batchnorm(state.accelerator.unwrap_model(state.model) if state.accelerator else state.model,
                                  self.batches)


def classifier_layers(model: nn.Module) -> list[nn.Module]:
    """The head's layers (modules under `classifier`, the name Hugging Face image models and
    EfficientNetClassifier give it): their outputs are the classes, never pruned."""
    return [m for name, m in model.named_modules()
            if name.split(".")[0] == "classifier" and isinstance(m, (nn.Linear, nn.Conv2d))]


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def prune_channels(model: nn.Module, fraction: float, image_size: int, multiple: int = 8) -> dict:
    """Remove about `fraction` of the channels of every prunable group, in place, leaving a
    multiple of `multiple` in each; record the new sizes in `model.config` and return what changed."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise MissingExtraError("torch-pruning", "compress") from None
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise PretuneError(f"channel pruning needs a convolutional model; {type(model).__name__} has no Conv2d")
    head = classifier_layers(model)
    if not head:
        raise PretuneError(f"cannot find the classification head of {type(model).__name__} "
                           f"(a module named 'classifier') to keep whole")
    before, parameters = channel_sizes(model), count(model)
    model.eval()  # trace without touching BatchNorm's running statistics
    example = torch.zeros(1, 3, image_size, image_size, device=next(model.parameters()).device)
    pruner = tp.pruner.BasePruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=fraction, ignored_layers=head, output_transform=logits_of,
                                  round_to=multiple)
    pruner.step()
    changed = record_channels(model, before)
    convs = [name for name, sizes in before.items() if "out_channels" in sizes]
    after = channel_sizes(model)
    return {"channels": {"before": sum(before[n]["out_channels"] for n in convs),
                         "after": sum(after[n]["out_channels"] for n in convs)},
            "parameters": {"before": parameters, "after": count(model)}, "layers_changed": len(changed)}
