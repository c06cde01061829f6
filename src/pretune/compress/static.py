"""`static` of a text classification run: a static-embedding student (Model2Vec).

1. model2vec's distillation (`distill_from_model`) turns the run's fine-tuned encoder, in memory,
   into one vector per token: each token's output embedding, reduced by PCA to `dimensions` and
   weighted by SIF (rare tokens count more). No hub access: the encoder and its tokenizer come
   from the run's `model/`.
2. A linear head on the pooled static embeddings (models/static.py: mean of the tokens, unit
   length) is trained against the teacher's soft labels (softmax, or sigmoid for multi-label) on
   every training text, plus `unlabeled` texts the teacher labels. Soft labels carry what the
   fine-tuned teacher learned beyond the gold label, and unlabelled text adds rows for free.
3. Multi-label thresholds are tuned again on validation for the student, as fit tunes them.

The variant is a run like any other: its model directory loads through the runner protocol
(numpy, no torch at inference). Only text sequence classification and multi-label runs take it:
the student gives one vector per text, not per token, and has no regression head.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import re
import time
from collections import Counter
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

import numpy as np

from pretune.compress import base
from pretune.compress.distill.loss import student_data, teacher_logits
from pretune.compress.loaded import STATIC, LoadedRun, input_batches
from pretune.compress.trim_vocab import (
    _check_wordpiece,
    character_ids,
    trim_model,
    trim_tokenizer_files,
    used_token_ids,
)
from pretune.compress.variant import scratch, write_variant
from pretune.data.prepare import TextTable
from pretune.errors import MissingExtraError, PretuneError
from pretune.models.static import pool, save_static
from pretune.recipe import CompressConfig, StaticConfig
from pretune.tasks import Task

BATCH = 64  # the head's minibatch
WORD = re.compile(r"\w+", re.UNICODE)


def takes_task(task: Task) -> bool:
    """Text classification with one vector per text: one label (softmax) or several (sigmoid)."""
    return (task.inputs == "text" and task.auto_class == "AutoModelForSequenceClassification"
            and task.default_loss in ("cross_entropy", "bce"))


def check_task(task: Task) -> None:
    if not takes_task(task):
        raise PretuneError(f"compression step 'static' takes text classification and multi-label runs, "
                           f"not {task.name}")


def _check(parent: base.Parent, cfg: CompressConfig) -> None:
    check_task(parent.task)


@base.register("static", "text", gives=STATIC, settings=lambda cfg: cfg.static, check=_check)
def static_step(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    sc = cfg.static
    check_task(parent.task)
    if sc.tokens == "seen":
        _check_wordpiece(parent.model_path)
    # Every training row (not the recipe's max_train_samples slice), then the unlabelled texts.
    train = student_data(parent, parent.recipe.updated({"data.max_train_samples": None})).splits["train"]
    extra = read_unlabeled(sc.unlabeled, parent) if sc.unlabeled else None
    texts = train if extra is None else _joined(train, extra)
    started = time.perf_counter()
    with scratch(parent) as tmp:
        static, tokenizer = distill_static(parent, sc, texts, tmp)
        distill_seconds = round(time.perf_counter() - started, 1)
        skip = _skip_ids(tokenizer)
        embeddings = np.asarray(static.embedding, dtype=np.float32)
        mask = np.zeros(len(embeddings), dtype=bool)
        mask[skip] = True

        max_length = sc.max_length or parent.max_length

        def features(table: TextTable) -> np.ndarray:
            split = parent.task.encode(table, tokenizer, max_length)
            pad = tokenizer.pad_token_id or 0
            return np.concatenate([pool(embeddings, mask, b) for b in input_batches(split, 256, pad)])

        teacher, rows = teacher_logits(parent, texts)
        multi = parent.task.default_loss == "bce"
        weight, bias, fit_notes = train_head(features(texts), teacher.numpy(), multi, sc, parent.recipe.seed)
        task = copy.deepcopy(parent.task)  # the loaded parent's task keeps the teacher's thresholds
        if task.calibrates:
            validation = parent.encoded("validation")
            logits = features(parent.data.splits["validation"]) @ weight.T + bias
            fit_notes["calibration"] = task.calibrate(logits, validation)

        def save(model_dir: Path) -> None:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(parent.model_path)
            task.configure(config)
            config.architectures = ["StaticEmbeddingClassifier"]
            config.pretune_static = True  # a pretune_ key: cards offer no from_pretrained snippet
            config.save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)
            save_static(model_dir, embeddings, skip, weight, bias,
                        {"teacher": str(parent.path), "distilled_with": f"model2vec {_version()}"})

        notes = {"teacher": str(parent.path), "teacher_forward_rows": rows, "train_rows": len(train),
                 "unlabeled_rows": 0 if extra is None else len(extra), "tokens": int(len(embeddings)),
                 "dimensions": int(embeddings.shape[1]), "distill_seconds": distill_seconds, **fit_notes}
        return write_variant(out, parent, "static", sc.model_dump(mode="json"), save, notes=notes,
                             max_length=max_length)


def distill_static(parent: LoadedRun, sc: StaticConfig, texts: TextTable, tmp: Path):
    """model2vec's StaticModel of the run's encoder (in memory) and its tokenizer, as a
    transformers fast tokenizer (what `pretune predict` loads)."""
    try:
        from model2vec.distill import distill_from_model
    except ImportError as e:
        raise MissingExtraError(getattr(e, "name", None) or "model2vec", "static") from None
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer, model = parent.preprocessor, parent.model("static")
    if sc.tokens == "seen":
        keep = sorted(set(used_token_ids(tokenizer, texts.texts, texts.pairs)) | set(character_ids(tokenizer)))
        trim_model(model, keep)
        tokenizer.save_pretrained(tmp / "seen")
        trim_tokenizer_files(tmp / "seen", keep)
        tokenizer = AutoTokenizer.from_pretrained(tmp / "seen")
    encoder = model.base_model
    # A path that exists: model2vec asks the hub for a model card's language only for hub names.
    encoder.name_or_path = str(parent.model_path)
    width = encoder.config.hidden_size
    with _quiet():
        static = distill_from_model(encoder, tokenizer, vocabulary=frequent_words(texts, sc.vocabulary) or None,
                                    device="cpu", pca_dims=min(sc.dimensions or width, width),
                                    quantize_to="float32")
    # Only the special tokens model2vec kept ([PAD], [UNK]): naming another would add it as a new id.
    vocab = static.tokenizer.get_vocab()
    special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str) and v in vocab}
    fast = PreTrainedTokenizerFast(tokenizer_object=static.tokenizer, model_max_length=tokenizer.model_max_length,
                                   **special)
    return static, fast


def frequent_words(texts: TextTable, n: int) -> list[str]:
    """The `n` most frequent lower-cased words of the texts (model2vec drops those already tokens)."""
    if n <= 0:
        return []
    counts = Counter(w for text in texts.texts + (texts.pairs or []) for w in WORD.findall(text.lower()))
    return [w for w, _ in counts.most_common(n)]


def train_head(x: np.ndarray, teacher: np.ndarray, multi: bool, sc: StaticConfig,
               seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """A linear head on standardised features against the teacher's soft labels; the
    standardisation is folded into the returned weight and bias (nothing extra at inference)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    features = torch.from_numpy((x - mean) / std).float()
    logits = torch.from_numpy(teacher).float() / sc.temperature
    targets = torch.sigmoid(logits) if multi else torch.softmax(logits, dim=-1)
    head = torch.nn.Linear(features.shape[1], targets.shape[1])
    optimizer = torch.optim.AdamW(head.parameters(), lr=sc.lr, weight_decay=1e-4)
    total = sc.epochs * math.ceil(len(features) / BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))

    def loss_of(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if multi:
            return F.binary_cross_entropy_with_logits(out / sc.temperature, target)
        return F.cross_entropy(out / sc.temperature, target)

    for _ in range(sc.epochs):
        for rows in torch.randperm(len(features)).split(BATCH):
            loss = loss_of(head(features[rows]), targets[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        out = head(features)
        same = (out > 0) == (logits > 0) if multi else out.argmax(1) == logits.argmax(1)
        final = float(loss_of(out, targets))
    weight = head.weight.detach().numpy() / std
    bias = head.bias.detach().numpy() - weight @ mean
    head_notes = {"epochs": sc.epochs, "final_loss": round(final, 5),
                  "train_agreement_with_teacher": round(float(same.float().mean()), 4)}
    return weight.astype(np.float32), bias.astype(np.float32), {"head": head_notes}


def read_unlabeled(path: str, parent: LoadedRun) -> TextTable:
    """`compress.static.unlabeled`: one text per line (.txt), or a table with the recipe's text column."""
    from pretune.data.prepare import read_rows

    file = Path(path)
    if not file.is_file():
        raise PretuneError(f"compress.static.unlabeled: no file {file}")
    if file.suffix == ".txt":
        texts = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not texts:
            raise PretuneError(f"compress.static.unlabeled: {file} has no text")
        return TextTable(texts, None, None)
    return read_rows(file, parent.recipe.data, parent.task, with_labels=False)


def _joined(train: TextTable, extra: TextTable) -> TextTable:
    if bool(train.pairs) != bool(extra.pairs):
        raise PretuneError("compress.static.unlabeled: the run reads text pairs; give a table with both columns")
    return TextTable(train.texts + extra.texts, train.pairs + extra.pairs if train.pairs else None, None)


def _skip_ids(tokenizer) -> list[int]:
    """Ids pooling leaves out: padding, [UNK] and every special token (model2vec drops [UNK] too)."""
    ids = set(tokenizer.all_special_ids) | {int(i) for i in tokenizer.added_tokens_decoder}
    return sorted(i for i in ids if i is not None)


def _version() -> str:
    from importlib.metadata import version

    return version("model2vec")


@contextmanager
def _quiet():
    # model2vec prints a progress bar per token batch (stderr) and logs PCA notices.
    logger = logging.getLogger("model2vec")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
