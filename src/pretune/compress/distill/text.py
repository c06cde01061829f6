"""`distill` of a text run: the student is layer surgery of the teacher (its `model/` dir as
`model.source`, every other layer by default: `model.surgery.num_layers`), or any text model
(`distill.student`). See loss.py for the loss and the cached teacher pass."""

from __future__ import annotations

from pathlib import Path

from pretune.compress import base
from pretune.compress.distill.loss import (
    DistillationCallback,
    HiddenMatching,
    student_data,
    student_schedule,
    teacher_logits,
    untrained_scores,
)
from pretune.compress.loaded import LoadedRun
from pretune.compress.variant import FIT_OPTIONS, finish_variant
from pretune.errors import PretuneError
from pretune.recipe import CompressConfig, DistillConfig, Recipe


@base.register("distill", "text", settings=lambda cfg: cfg.distill)
def distill_text(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    from transformers import AutoConfig

    from pretune.train.fit import fit

    dc = cfg.distill
    teacher_config = AutoConfig.from_pretrained(parent.model_path)
    recipe = student_recipe(parent.recipe, parent.model_path, dc, teacher_config.num_hidden_layers)
    if dc.hidden_weight > 0:
        _check_width(recipe, teacher_config)
    train = student_data(parent, recipe).splits["train"]
    logits, rows = teacher_logits(parent, train)
    before = untrained_scores(recipe, parent)
    hidden = HiddenMatching(parent.model("distill"), dc.hidden_weight, teacher_config.num_hidden_layers) \
        if dc.hidden_weight > 0 else None
    callback = DistillationCallback(logits, dc.alpha, dc.temperature, regression=parent.task.predicts_values,
                                    hidden=hidden)
    run = fit(recipe, out, callbacks=[callback], data=parent.tables, loss=parent.loss, **FIT_OPTIONS)
    notes = {"teacher": str(parent.path), "teacher_forward_rows": rows, "train_rows": len(train),
             "student_layers": recipe.model.surgery.num_layers, "untrained_student_test": before}
    return finish_variant(out, parent, "distill", dc.model_dump(), notes, extra=run.metrics)


def student_recipe(teacher: Recipe, teacher_dir: Path, dc: DistillConfig, teacher_layers: int) -> Recipe:
    changes = student_schedule(teacher, dc)
    if dc.student:
        changes["model"] = {"source": dc.student}
    else:
        layers = dc.num_layers or max(1, teacher_layers // 2)
        if layers > teacher_layers:
            raise PretuneError(f"compress.distill.num_layers is {layers} but the teacher has {teacher_layers}")
        changes |= {"model.source": str(teacher_dir), "model.surgery": {"num_layers": layers}}
    return teacher.updated(changes)


def _check_width(recipe: Recipe, teacher_config) -> None:
    from transformers import AutoConfig

    from pretune.models.load import resolve_source

    student = AutoConfig.from_pretrained(resolve_source(recipe.model.source))
    if student.hidden_size != teacher_config.hidden_size:
        raise PretuneError(
            f"hidden-state matching needs the student as wide as the teacher ({teacher_config.hidden_size}), "
            f"but it is {student.hidden_size}; set compress.distill.hidden_weight=0")
