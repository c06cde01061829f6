"""Recovery fine-tuning after pruning, shared by text and image pruning: the pruned model is
passed to the public `fit` with the parent's recipe (fewer epochs, a lower lr), and by default
distilled from the unpruned parent (`prune.recovery_distill`: the parent's logits on every
training row, computed once, mixed with the label loss as distill does): the pruned model
learns to answer as the model it came from, not only the labels (measured on MiniLM in
benchmarks/compress_tradeoff.py). Augmented image runs recover on labels alone: the cached
logits are the parent's on un-augmented images."""

from __future__ import annotations

from pathlib import Path

from pretune.compress.distill.loss import DistillationCallback, teacher_logits
from pretune.compress.loaded import LoadedRun
from pretune.compress.variant import FIT_OPTIONS, finish_variant, write_variant
from pretune.recipe import PruneConfig, Recipe


def recover(parent: LoadedRun, model, pc: PruneConfig, out: Path, notes: dict, epochs: float, callbacks: list,
            train_all: bool = False, after_fit=None) -> LoadedRun:
    """Fine-tune the pruned `model` (see the module docstring) and write the variant; `train_all`:
    with the full strategy, whatever the parent's; `after_fit(model)` updates the notes."""
    settings = pc.model_dump()

    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        parent.preprocessor.save_pretrained(model_dir)

    if epochs <= 0:
        return write_variant(out, parent, "prune", settings, save, notes=notes)
    from pretune.train.fit import fit

    recipe = recovery_recipe(parent.recipe, parent.model_path, epochs, pc.lr, train_all)
    callbacks = list(callbacks)
    distilled = pc.recovery_distill > 0 and not recipe.data.augment.active
    if distilled:
        logits, _ = teacher_logits(parent)
        callbacks.append(DistillationCallback(logits, pc.recovery_distill, 2.0,
                                              regression=parent.task.predicts_values))
    run = fit(recipe, out, model=model, tokenizer=parent.preprocessor, callbacks=callbacks, data=parent.tables,
              loss=parent.loss,
              **FIT_OPTIONS)
    notes = {**notes, **(after_fit(model) if after_fit else {}), "recovery_epochs": epochs,
             "recovery_distilled_from_parent": distilled}
    return finish_variant(out, parent, "prune", settings, notes, extra=run.metrics)


def recovery_recipe(recipe: Recipe, model_dir: Path, epochs: float, lr: float | None,
                    train_all: bool = False) -> Recipe:
    changes = {"model.source": str(model_dir), "model.surgery": {}, "train.epochs": epochs, "train.max_steps": None,
               "train.optimizer.lr": lr or recipe.train.optimizer.lr / 2, "train.checkpoint_every_steps": None}
    if train_all:  # image runs: every layer adapts; the weights fit ends with are the ones saved
        changes |= {"strategy": {"name": "full"}, "train.keep_best": None}
    return recipe.updated(changes)
