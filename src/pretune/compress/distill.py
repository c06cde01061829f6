"""`distill`: train a smaller student on the teacher run's data through the public `fit`, with
L = (1 - alpha) * L_task + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
(Hinton et al. 2015; T^2 keeps the soft term's gradients on the task term's scale).

The student is layer surgery of the teacher (its `model/` dir as `model.source`, every other
layer by default: `model.surgery.num_layers`), or any model directory (`distill.student`).
Teacher logits are computed once, over the training split, before training, and looked up by
`state.batch_indices` in the `on_outputs` event: the teacher never runs again per epoch.
Optional hidden-state matching (TinyBERT / MiniLM style, same width only) adds
`hidden_weight * MSE` between each student layer's output and its teacher layer's; hidden states
are too large to cache, so with it the teacher runs on each batch (logits still come from the cache).

Image runs: the student is any image model (`distill.student`: an alias such as
efficientnet-lite0, or a model directory), each side encoding the images with its own size and
normalisation. The student trains without augmentation: the cached logits are the teacher's on
each un-augmented image, and a cropped, flipped or mixed view needs the teacher's answer on that
view, which would mean a teacher forward per batch (for Lite2 teaching Lite0, more than the
student's own step costs). The cache is kept; the notes say augmentation was off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pretune.compress.variant import (
    TorchRunner,
    evaluate_runner,
    finish_variant,
    is_image,
    load_preprocessor_of,
    load_runner,
    predict,
    task_of,
)
from pretune.data import prepare
from pretune.errors import PretuneError
from pretune.models.surgery import evenly_spaced
from pretune.predictor import Run
from pretune.recipe import CompressConfig, DistillConfig, Recipe


def distill_step(parent: Run, cfg: CompressConfig, out: Path) -> Run:
    from transformers import AutoConfig

    dc = cfg.distill
    if is_image(task_of(parent)):
        return _distill_images(parent, dc, out)
    teacher_config = AutoConfig.from_pretrained(parent.model_path)
    recipe = student_recipe(parent.recipe, parent.model_path, dc, teacher_config.num_hidden_layers)
    if dc.hidden_weight > 0:
        _check_width(recipe, teacher_config)
    task = task_of(parent)
    data = prepare(recipe.data, task, label_names=task.label_names)
    teacher_tokenizer = load_preprocessor_of(parent)
    train = task.encode(data.splits["train"], teacher_tokenizer, recipe.data.max_length)
    teacher = CountingRunner(load_runner(parent.model_path, task))
    logits = torch.from_numpy(predict(teacher, train, teacher_tokenizer.pad_token_id or 0))
    before = _untrained_student_accuracy(recipe, data, task)
    hidden = HiddenMatching(parent.model_path, task, dc.hidden_weight, teacher_config.num_hidden_layers) \
        if dc.hidden_weight > 0 else None
    callback = DistillationCallback(logits, dc.alpha, dc.temperature, regression=task.name == "regression",
                                    hidden=hidden)
    from pretune.train.fit import fit

    run = fit(recipe, out, callbacks=[callback], quiet=True)
    notes = {"teacher": str(parent.path), "teacher_forward_rows": teacher.rows, "train_rows": len(train),
             "student_layers": recipe.model.surgery.num_layers, "untrained_student_test": before}
    return finish_variant(out, parent, "distill", dc.model_dump(), notes, extra=run.metrics)


def _distill_images(parent: Run, dc: DistillConfig, out: Path) -> Run:
    if not dc.student:
        raise PretuneError("an image run's student is a model: set compress.distill.student (an alias such as "
                           "efficientnet-lite0, or a model directory)")
    if dc.hidden_weight > 0:
        raise PretuneError("hidden-state matching is for text encoders; set compress.distill.hidden_weight=0")
    raw = student_recipe(parent.recipe, parent.model_path, dc, 0).model_dump(mode="json")
    augmented = Recipe.from_dict(raw).data.augment.active
    raw["data"]["augment"] = {}  # cached teacher logits are per un-augmented image: see the docstring
    recipe = Recipe.from_dict(raw)
    task = task_of(parent)
    data = prepare(recipe.data, task, label_names=task.label_names)
    train = task.encode(data.splits["train"], load_preprocessor_of(parent), 0)
    teacher = CountingRunner(load_runner(parent.model_path, task))
    logits = torch.from_numpy(predict(teacher, train, 0))
    before = _untrained_student_accuracy(recipe, data, task)
    from pretune.train.fit import fit

    run = fit(recipe, out, callbacks=[DistillationCallback(logits, dc.alpha, dc.temperature)], quiet=True)
    notes = {"teacher": str(parent.path), "teacher_forward_rows": teacher.rows, "train_rows": len(train),
             "student": dc.student, "untrained_student_test": before,
             "augment": "off (teacher logits cached per image)" + (", the parent's augmentation dropped"
                                                                    if augmented else "")}
    return finish_variant(out, parent, "distill", dc.model_dump(), notes, extra=run.metrics)


def student_recipe(teacher: Recipe, teacher_dir: Path, dc: DistillConfig, teacher_layers: int) -> Recipe:
    raw = teacher.model_dump(mode="json")
    if dc.student:
        raw["model"] = {"source": dc.student}
    else:
        layers = dc.num_layers or max(1, teacher_layers // 2)
        if layers > teacher_layers:
            raise PretuneError(f"compress.distill.num_layers is {layers} but the teacher has {teacher_layers}")
        raw["model"]["source"] = str(teacher_dir)
        raw["model"]["surgery"] = {"num_layers": layers}
    raw["train"]["epochs"] = dc.epochs or teacher.train.epochs
    raw["train"]["max_steps"] = None
    if dc.lr:
        raw["train"]["optimizer"]["lr"] = dc.lr
    raw["train"]["checkpoint_every_steps"] = None
    return Recipe.from_dict(raw)


def distillation_loss(task_loss: torch.Tensor, student: torch.Tensor, teacher: torch.Tensor, alpha: float,
                      temperature: float) -> torch.Tensor:
    """(1 - alpha) * task_loss + alpha * T^2 * KL(p_teacher^T || p_student^T), batch mean."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student.float() / t, dim=-1), F.log_softmax(teacher.float() / t, dim=-1),
                  reduction="batchmean", log_target=True)
    return (1 - alpha) * task_loss + alpha * t * t * kl


class DistillationCallback:
    """Replaces `state.loss` in `on_outputs` with the distillation loss; teacher logits cached."""

    def __init__(self, teacher_logits: torch.Tensor, alpha: float, temperature: float, regression: bool = False,
                 hidden: HiddenMatching | None = None):
        self.teacher_logits = teacher_logits
        self.alpha, self.temperature, self.regression, self.hidden = alpha, temperature, regression, hidden

    def on_fit_start(self, state) -> None:
        if self.hidden is not None:
            self.hidden.attach(state.accelerator.unwrap_model(state.model) if state.accelerator else state.model)

    def on_outputs(self, state) -> None:
        teacher = self.teacher_logits[state.batch_indices.cpu()].to(state.logits.device)
        if self.regression:  # no softmax to soften: match the teacher's outputs
            state.loss = (1 - self.alpha) * state.loss + self.alpha * F.mse_loss(state.logits.float(), teacher)
        else:
            state.loss = distillation_loss(state.loss, state.logits, teacher, self.alpha, self.temperature)
        if self.hidden is not None:
            state.loss = state.loss + self.hidden.loss(state.batch)

    def on_fit_end(self, state) -> None:
        if self.hidden is not None:
            self.hidden.detach()


class HiddenMatching:
    """MSE between student layer j's output and teacher layer m(j)'s (m: evenly spaced tops)."""

    def __init__(self, teacher_dir: Path, task, weight: float, teacher_layers: int):
        from pretune.models.load import load_saved_model

        self.teacher = load_saved_model(teacher_dir, task).eval()
        self.weight, self.teacher_layers = weight, teacher_layers
        self.outputs: list[torch.Tensor] = []
        self.handles: list = []

    def attach(self, student) -> None:
        from pretune.models.layers import encoder_layers

        _, _, layers = encoder_layers(student)
        # Student layer j came from teacher layer evenly_spaced[j]; match the top of its span.
        starts = evenly_spaced(self.teacher_layers, len(layers))
        self.mapping = [nxt - 1 for nxt in [*starts[1:], self.teacher_layers]]
        self.handles = [layer.register_forward_hook(self._record) for layer in layers]
        self.teacher.to(next(student.parameters()).device)

    def _record(self, module, _inputs, out) -> None:
        if module.training:  # training forwards only: evaluation passes run the same layers
            self.outputs.append(out[0] if isinstance(out, tuple) else out)

    def loss(self, batch: dict) -> torch.Tensor:
        student_states, self.outputs = self.outputs, []
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            teacher_states = self.teacher(**inputs, output_hidden_states=True).hidden_states[1:]
        return self.weight * sum(F.mse_loss(s.float(), teacher_states[m].float())
                                 for s, m in zip(student_states, self.mapping, strict=True)) / len(student_states)

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


class CountingRunner:
    """Counts the rows a runner is asked for (tests check the teacher runs once per example)."""

    def __init__(self, runner):
        self.runner, self.rows = runner, 0

    def __call__(self, batch: dict) -> np.ndarray:
        self.rows += len(next(iter(batch.values())))  # input_ids or pixel_values: one row each
        return self.runner(batch)


def _check_width(recipe: Recipe, teacher_config) -> None:
    from transformers import AutoConfig

    from pretune.models.load import resolve_source

    student = AutoConfig.from_pretrained(resolve_source(recipe.model.source))
    if student.hidden_size != teacher_config.hidden_size:
        raise PretuneError(
            f"hidden-state matching needs the student as wide as the teacher ({teacher_config.hidden_size}), "
            f"but it is {student.hidden_size}; set compress.distill.hidden_weight=0")


def _untrained_student_accuracy(recipe: Recipe, data, task) -> dict:
    """The student before training (surgery of the teacher, or a fresh head), on the test split."""
    from pretune.models.load import load_model, load_preprocessor
    from pretune.models.surgery import apply_surgery

    model = load_model(recipe.model, task)
    apply_surgery(model, recipe.model.surgery, recipe.model.layer_prefixes)
    test = evaluate_runner(TorchRunner(model.eval()), data, task, load_preprocessor(recipe.model.source, task),
                           recipe.data.max_length)
    return {k: test[k] for k in ("accuracy", "f1_macro", "mse") if k in test}
