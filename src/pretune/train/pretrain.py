"""Continued pretraining (`pretune adapt`, a recipe's `pretrain:` section): masked-language-model
training of the run's encoder on unlabelled text, before fine-tuning.

Gururangan et al. 2020 ("Don't Stop Pretraining") found task-adaptive pretraining (MLM on the
task's own texts, labels unused) helped every low-resource task they tried. The texts are
`data.unlabeled` (a .txt file, one text a line, or a table's text column) or the task's training
texts. Masking is transformers' DataCollatorForLanguageModeling (whole-word masking from the
tokenizer's offsets when `pretrain.whole_word`), applied per batch as the split's transform,
keyed by (epoch, batch): a resumed run masks as the uninterrupted one did, and validation's
masks are the same at every evaluation. Training goes through the same TrainLoop, callbacks and
checkpoints as `fit`, so it resumes (`resume=RUN`) and runs under torchrun alike.

The output is a run whose `model/` is a Hugging Face masked-LM directory: `fit` with
`model.source: RUN/model` loads its encoder under a fresh task head. A checkpoint saved without
an MLM head (all-MiniLM-L6-v2, a sentence-transformer, has none) gets a freshly initialised
one; metrics.json's notices say so.
"""

from __future__ import annotations

import math
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import broadcast_object_list
from torch import nn

from pretune import atomic, runs
from pretune.data.encode import EncodedSplit, lengths_of
from pretune.data.prepare import TextTable, prepare, resolve_data_paths
from pretune.data.ragged import RaggedRows
from pretune.errors import PretuneError
from pretune.recipe import PretrainConfig, Recipe, RecipeLike, as_recipe
from pretune.runs import RunDir
from pretune.tasks import create_task
from pretune.train.checkpoints import latest_checkpoint, prune_checkpoints, resume_checkpoint
from pretune.train.loop import TrainLoop, create_accelerator, seed_everything
from pretune.train.run_callbacks import CheckpointCallback, MetricsFileCallback, ProgressCallback
from pretune.train.schedules import create_scheduler

TASK_NAME = "masked-lm"


class MaskedLMTask:
    """What the loop and `evaluate` ask of a task, for masked-token prediction: the model's
    outputs per token are (masked, negative log-likelihood, correct), see `MaskedLMObjective`."""

    name = TASK_NAME
    headline = "loss"
    metric_names = ("loss", "perplexity", "accuracy")

    def metrics(self, outputs, split: EncodedSplit) -> dict:
        rows = np.concatenate([np.asarray(o).reshape(-1, 3) for o in outputs])
        masked = float(rows[:, 0].sum())
        nll = float(rows[:, 1].sum()) / max(masked, 1.0)
        return {"perplexity": math.exp(min(nll, 50.0)), "accuracy": float(rows[:, 2].sum()) / max(masked, 1.0),
                "masked_tokens": int(masked)}


def masked_lm_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked tokens (the objective's per-token figures)."""
    return outputs[..., 1].sum() / outputs[..., 0].sum().clamp(min=1.0)


class MaskedLMObjective(nn.Module):
    """A masked-LM model whose forward takes the masked positions' targets (`mlm_labels`) and
    returns per token (masked, nll, correct): the loop's loss and evaluation stay task-agnostic,
    and an evaluation keeps 3 numbers per token, not a vocabulary's worth of logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, mlm_labels=None):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits.float()
        masked = mlm_labels != -100
        nll = F.cross_entropy(logits.flatten(0, 1), mlm_labels.flatten(), reduction="none", ignore_index=-100)
        correct = (logits.argmax(-1) == mlm_labels) & masked
        return torch.stack([masked.float(), nll.view_as(mlm_labels), correct.float()], dim=-1)


class Masking:
    """The split's transform: a padded batch -> masked inputs and targets, drawn from
    (seed, epoch, batch number), or from the batch's own ids for evaluation batches."""

    def __init__(self, tokenizer, cfg: PretrainConfig, seed: int):
        from transformers import DataCollatorForLanguageModeling

        with warnings.catch_warnings():  # whole-word masking turns random replacement off, and says so
            warnings.simplefilter("ignore")
            self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.mlm_probability,
                                                            whole_word_mask=cfg.whole_word)
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.seed, self.whole_word = seed, cfg.whole_word

    def __call__(self, batch: dict, key) -> dict:
        ids = batch["input_ids"].clone()
        starts, ends = batch.pop("offset_start", None), batch.pop("offset_end", None)
        key = key if key is not None else (zlib.crc32(ids.numpy().tobytes()),)
        self.collator.generator = torch.Generator().manual_seed(zlib.crc32(repr((self.seed, *key)).encode()))
        special = (torch.isin(ids, self.special) | (batch["attention_mask"] == 0)).long()
        offsets = torch.stack([starts, ends], dim=-1).numpy() if self.whole_word else None
        inputs, labels = self.collator.torch_mask_tokens(ids, special, offsets)
        return {**batch, "input_ids": torch.as_tensor(inputs), "labels": torch.as_tensor(labels),
                "mlm_labels": torch.as_tensor(labels)}


def unlabelled_texts(recipe: Recipe) -> list[str]:
    """`data.unlabeled`'s texts, or the task's training texts (and second texts) without labels."""
    cfg = recipe.data
    if cfg.unlabeled:
        path = Path(cfg.unlabeled)
        if not path.is_file():
            raise PretuneError(f"data.unlabeled: no such file {path}")
        if path.suffix == ".txt":
            texts = [line.strip() for line in path.read_text(encoding=cfg.encoding).splitlines()]
        else:
            from pretune.data.tables import read_table

            frame = read_table(path, cfg.encoding, cfg.delimiter)
            column = cfg.text_column or "text"
            if column not in frame.columns:
                raise PretuneError(f"data.unlabeled {path} has no column '{column}'; it has {', '.join(frame.columns)}")
            texts = [str(t) for t in frame[column].dropna()]
    else:
        task = create_task(cfg)
        if task.inputs != "text":
            raise PretuneError(f"pretune adapt trains on text; a {task.name} task has none")
        table: TextTable = prepare(cfg, task).splits["train"]
        texts = [" ".join(t) if isinstance(t, list) else str(t) for t in table.texts] + list(table.pairs or [])
    texts = [t for t in texts if t.strip()]
    if len(texts) < 2:
        raise PretuneError("pretune adapt needs at least 2 non-empty texts")
    return texts


def encode_unlabelled(texts: list[str], tokenizer, max_length: int, masking: Masking) -> EncodedSplit:
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=False,
                    return_offsets_mapping=masking.whole_word)
    features = {name: RaggedRows.from_lists(enc[name], np.int32) for name in ("input_ids", "attention_mask",
                                                                               "token_type_ids") if name in enc}
    if masking.whole_word:
        features["offset_start"] = RaggedRows.from_lists([[a for a, _ in row] for row in enc["offset_mapping"]])
        features["offset_end"] = RaggedRows.from_lists([[b for _, b in row] for row in enc["offset_mapping"]])
    return EncodedSplit(features, None, lengths_of(features), transform=masking)


def pretrain_train_config(recipe: Recipe):
    """The recipe's loop settings with the pretraining section's budget, rate and batch."""
    pc = recipe.pretrain or PretrainConfig()
    return recipe.train.model_copy(update={
        "epochs": pc.epochs, "max_steps": pc.max_steps, "batch_size": pc.batch_size, "keep_best": None,
        "optimizer": recipe.train.optimizer.model_copy(update={"name": "adamw", "lr": pc.lr}),
        "schedule": recipe.train.schedule.model_copy(update={"name": "linear", "warmup_ratio": 0.06,
                                                             "warmup_steps": None}),
        "early_stopping": recipe.train.early_stopping.model_copy(update={"patience": None}),
        # compile pads batches to a multiple after the transform; masking needs none of it
        "train_sample": 0, "compile": False})


def adapt(recipe: RecipeLike = None, out: str | Path | None = None, *, resume: str | Path | None = None,
          overrides: list[str] | None = None, quiet: bool = False, texts: list[str] | None = None,
          callbacks: list | None = None) -> RunDir:
    """Masked-LM training of `model.source` on unlabelled text (see the module docstring); return
    the run. `texts` (a list of strings) replaces what the recipe would read; `callbacks` are
    the loop's, as in `fit`."""
    if resume is not None:
        if recipe is not None or overrides:
            raise PretuneError("--resume takes the recipe saved in the run; give no other recipe")
        run_dir = Path(resume)
        recipe = RunDir(run_dir).recipe
        if latest_checkpoint(run_dir / runs.CHECKPOINTS) is None:
            raise PretuneError(f"{run_dir} keeps no checkpoint: nothing to resume")
    else:
        recipe = as_recipe(recipe if recipe is not None else Recipe(), overrides)
        recipe = recipe.model_copy(update={"data": resolve_data_paths(recipe.data),
                                           "pretrain": recipe.pretrain or PretrainConfig()})
        run_dir = Path(out) if out else None
        if run_dir is not None and (run_dir / runs.RECIPE).exists():
            raise PretuneError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        if run_dir is not None:
            atomic.refuse_links(run_dir)  # before the slow part: a planted link fails at once
    pc = recipe.pretrain or PretrainConfig()
    seed_everything(recipe.seed)
    from pretune.models.load import load_masked_lm, load_tokenizer

    tokenizer = load_tokenizer(recipe.model.source)
    if tokenizer.mask_token is None:
        raise PretuneError(f"{recipe.model.source}'s tokenizer has no mask token: it cannot be trained as a masked LM")
    model, notices = load_masked_lm(recipe.model)
    masking = Masking(tokenizer, pc, recipe.seed)
    texts = list(texts) if texts is not None else unlabelled_texts(recipe)
    held = max(1, min(pc.validation_texts, len(texts) // 10))
    order = np.random.default_rng(recipe.seed).permutation(len(texts))
    max_length = min(recipe.data.max_length, getattr(model.config, "max_position_embeddings", 512))
    train = encode_unlabelled([texts[i] for i in order[held:]], tokenizer, max_length, masking)
    validation = encode_unlabelled([texts[i] for i in order[:held]], tokenizer, max_length, masking)
    tc = pretrain_train_config(recipe)
    accelerator = create_accelerator(tc)
    if run_dir is None:
        stamp = Path(recipe.data.unlabeled or recipe.data.train or recipe.data.source).stem.replace(":", "-")
        run_dir = Path(broadcast_object_list([str(Path("runs") / f"adapt-{stamp}")])[0])
    main = accelerator.is_main_process
    own = [MetricsFileCallback(run_dir / runs.HISTORY),
           CheckpointCallback(run_dir / runs.CHECKPOINTS, tc.checkpoint_every_steps, tc.keep_checkpoints,
                              recipe.to_yaml(), {})]
    objective = MaskedLMObjective(model)
    loop = TrainLoop(objective, tc, train, validation, masked_lm_loss, MaskedLMTask(),
                     optimizer_factory=lambda m: torch.optim.AdamW(
                         [p for p in m.parameters() if p.requires_grad], lr=pc.lr,
                         weight_decay=tc.optimizer.weight_decay),
                     scheduler_factory=lambda opt, total, per_epoch: create_scheduler(opt, tc.schedule, total,
                                                                                      per_epoch),
                     pad_id=tokenizer.pad_token_id or 0, seed=recipe.seed, group_by_length=True,
                     callbacks=[*(callbacks or []), *own, *([] if quiet else [ProgressCallback()])],
                     accelerator=accelerator)
    for notice in notices:
        if main:
            print(f"pretune: notice: {notice}", file=sys.stderr)
    if main and resume is None:
        RunDir.create(run_dir, recipe)
    elif main:
        RunDir(run_dir).prepare()
    accelerator.wait_for_everyone()
    if resume is not None:
        _, saved = resume_checkpoint(run_dir / runs.CHECKPOINTS, loop.accelerator.unwrap_model(loop.model),
                                     loop.optimizer, loop.scheduler)
        loop.state.load_state_dict(saved["loop"])
    state = loop.run()
    if main:
        run = RunDir(run_dir)
        if state.status == "completed":
            with run.writing_model() as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            prune_checkpoints(run_dir / runs.CHECKPOINTS, tc.keep_checkpoints_after_fit)
        run.write_metrics({
            "status": state.status, "task": TASK_NAME,
            "train": {"loss": state.last_loss, "steps": state.step, "total_steps": state.total_steps,
                      "epochs": round(state.step / state.steps_per_epoch, 4), "train_seconds": state.train_seconds,
                      "texts": len(train), "samples": len(train), "whole_word": pc.whole_word,
                      "mlm_probability": pc.mlm_probability, "stop_reason": state.stop_reason},
            "validation": {"texts": len(validation), **state.last_eval},
            "model": {"source": recipe.model.source, "architecture": type(model).__name__,
                      "parameters": sum(p.numel() for p in model.parameters()),
                      "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)},
            **({"notices": notices} if notices else {})})
    accelerator.wait_for_everyone()
    return RunDir(run_dir)
