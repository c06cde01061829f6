"""`distill` of an image run: the student is any image model (`distill.student`: an alias such as
efficientnet-lite0, or a model directory), each side encoding the images with its own size and
normalisation. The student trains without augmentation: the cached logits are the teacher's on
each un-augmented image, and a cropped, flipped or mixed view needs the teacher's answer on that
view, which would mean a teacher forward per batch (for Lite2 teaching Lite0, more than the
student's own step costs). The cache is kept; the notes say augmentation was off.
"""

from __future__ import annotations

from pathlib import Path

from pretune.compress import base
from pretune.compress.distill.loss import (
    DistillationCallback,
    student_data,
    student_schedule,
    teacher_logits,
    untrained_scores,
)
from pretune.compress.loaded import LoadedRun
from pretune.compress.variant import FIT_OPTIONS, finish_variant
from pretune.errors import PretuneError
from pretune.recipe import CompressConfig


def check_distill_image(parent: base.Parent, cfg: CompressConfig) -> None:
    dc = cfg.distill
    if not dc.student:
        raise PretuneError("an image run's student is a model: set compress.distill.student (an alias such as "
                           "efficientnet-lite0, or a model directory)")
    if dc.hidden_weight > 0:
        raise PretuneError("hidden-state matching is for text encoders; set compress.distill.hidden_weight=0")


@base.register("distill", "image", settings=lambda cfg: cfg.distill, check=check_distill_image)
def distill_image(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    from pretune.train.fit import fit

    dc = cfg.distill
    augmented = parent.recipe.data.augment.active
    # Cached teacher logits are per un-augmented image: see the docstring.
    recipe = parent.recipe.updated({**student_schedule(parent.recipe, dc), "model": {"source": dc.student},
                                    "data.augment": {}})
    train = student_data(parent, recipe).splits["train"]
    logits, rows = teacher_logits(parent, train)
    before = untrained_scores(recipe, parent)
    run = fit(recipe, out, callbacks=[DistillationCallback(logits, dc.alpha, dc.temperature)], data=parent.tables,
              loss=parent.loss,
              **FIT_OPTIONS)
    notes = {"teacher": str(parent.path), "teacher_forward_rows": rows, "train_rows": len(train),
             "student": dc.student, "untrained_student_test": before,
             "augment": "off (teacher logits cached per image)" + (", the parent's augmentation dropped"
                                                                    if augmented else "")}
    return finish_variant(out, parent, "distill", dc.model_dump(), notes, extra=run.metrics)
