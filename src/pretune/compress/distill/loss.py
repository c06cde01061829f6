"""What every distillation shares (the distill step for text and images, and pruning's recovery
distilled from the unpruned parent):

L = (1 - alpha) * L_task + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
(Hinton et al. 2015; T^2 keeps the soft term's gradients on the task term's scale).

Teacher logits are computed once, over the training split, before training, and looked up by
`state.batch_indices` in the `on_outputs` event: the teacher never runs again per epoch.
Optional hidden-state matching (TinyBERT / MiniLM style, same width only) adds
`hidden_weight * MSE` between each student layer's output and its teacher layer's; hidden states
are too large to cache, so with it the teacher runs on each batch (logits still come from the cache).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pretune.compress.loaded import SHOWN, LoadedRun
from pretune.data.prepare import TextTable
from pretune.evaluate import TorchRunner, evaluate, run_split
from pretune.models.surgery import evenly_spaced
from pretune.predictor import RunInputs
from pretune.recipe import DistillConfig, Recipe


def teacher_logits(teacher: LoadedRun, train: TextTable | None = None) -> tuple[torch.Tensor, int]:
    """The teacher's logits on every training row (its own split, or the student's `train`), in
    row order, from one pass; and the rows it ran."""
    split = teacher.encoded("train") if train is None else teacher.inputs.encode(train)
    counting = CountingRunner(teacher.runner())
    logits = run_split(counting, split, 64, teacher.pad_id)[0]
    return torch.from_numpy(np.asarray(logits)), counting.rows


def student_schedule(teacher: Recipe, dc: DistillConfig) -> dict:
    """The student's training changes to the teacher's recipe (dotted keys, for Recipe.updated)."""
    return {"train.epochs": dc.epochs or teacher.train.epochs, "train.max_steps": None,
            "train.checkpoint_every_steps": None, **({"train.optimizer.lr": dc.lr} if dc.lr else {}),
            **({"data.max_train_samples": None} if dc.full_train else {})}


def student_data(teacher: LoadedRun, recipe: Recipe):
    """The student's splits (the teacher's, or with `full_train` every training row) from the
    command's tables: no second read of the data files."""
    from pretune.data import prepare

    return prepare(recipe.data, teacher.task, label_names=teacher.task.label_names, frames=teacher.tables)


def untrained_scores(recipe: Recipe, teacher: LoadedRun) -> dict:
    """The student before training (surgery of the teacher, or a fresh head), on the test split."""
    from pretune.models.load import load_model, load_preprocessor
    from pretune.models.surgery import apply_surgery

    model = load_model(recipe.model, teacher.task)
    apply_surgery(model, recipe.model.surgery, recipe.model.layer_prefixes)
    # The student's own inputs, as its fit will build them (its tokenizer, its position limit).
    inputs, _ = RunInputs.build(recipe.data, teacher.task, load_preprocessor(recipe.model.source, teacher.task),
                                getattr(model, "config", None))
    test = evaluate(TorchRunner(model.eval()), inputs.encode(teacher.data.splits["test"]), teacher.task, 64,
                    inputs.pad_id)
    return {k: test[k] for k in SHOWN if k in test}


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

    def __init__(self, teacher, weight: float, teacher_layers: int):
        self.teacher = teacher.eval()
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

    def __getattr__(self, name):  # eval_mode and the rest: the wrapped runner's
        return getattr(self.runner, name)
