"""`pretune check`: what a labelled data set holds, told before a model is fitted to it.

Exact and near-duplicate texts (near: the same after Unicode normalisation, case folding and
dropping punctuation, data/clean.py's `text_key`), texts shared between training and validation
or test (leakage: those test rows measure memory, not generalisation), class counts and
imbalance with what the recipe does about it, empty texts, and the share of texts the recipe's
`max_length` cuts, per split. Nothing is trained; the data is read exactly as `fit` reads it
(the same refusals, the same splits), so what it counts is what a fit would see.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pandas as pd

from pretune.data.clean import text_key
from pretune.data.prepare import load_checked
from pretune.errors import PretuneError
from pretune.recipe import Recipe

LISTED = 20  # groups of repeated texts listed in the result; all of them are counted
SHOWN = 5  # of those, printed on the terminal
IMBALANCED = 3.0  # largest / smallest class count from which the summary suggests a remedy
ENCODE_CHUNK = 1024  # texts tokenized at once when counting lengths


def recipe_for_file(path: str | Path, label: str | None = None, text: str | None = None,
                    overrides: list[str] | None = None) -> Recipe:
    """The recipe of a bare data file: what the pipeline infers from it (data/infer.py), so that
    `pretune check FILE` and `pretune pipeline FILE` read the same columns the same way."""
    from pretune.data.infer import infer
    from pretune.recipe import as_recipe

    return as_recipe({"data": infer(path, label, text).data}, overrides)


def check_recipe(data=None, label: str | None = None, text: str | None = None,
                 overrides: list[str] | None = None) -> Recipe:
    """The recipe `pretune check` reads: `data` a recipe (a Recipe, a dict, a YAML path), a
    bundled dataset's name, or a data file or folder (see `recipe_for_file`); None: the default
    recipe. `label` / `text` name the columns in any case."""
    from pretune.data import bundled
    from pretune.recipe import as_recipe

    columns = [f"data.{key}={value}" for key, value in (("label_column", label), ("text_column", text)) if value]
    if isinstance(data, str | Path) and not str(data).endswith((".yaml", ".yml")):
        if str(data) not in bundled.datasets:
            return recipe_for_file(data, label, text, overrides)
        data = {"data": {"source": str(data)}}
    return as_recipe(Recipe() if data is None else data, columns + list(overrides or []))


def check(recipe: Recipe, task, tokenizer="model", listed: int = LISTED) -> dict:
    """The check of the recipe's data (see the module's docstring) as a JSON-ready dict; `task`:
    `tasks.create_task(recipe.data)` (tasks build on data: the caller makes it). `tokenizer`:
    counts the texts `max_length` cuts; "model": the recipe's model's; None: not counted."""
    # Rows without a text or a label are counted (the notices say how many), not refused: fit
    # refuses them unless data.drop_missing, and the summary says so.
    cfg = recipe.data.model_copy(update={"drop_missing": True})
    notices: list[str] = []
    frames = load_checked(cfg, task.stratify, notices=notices)
    if tokenizer == "model" and task.inputs == "text":
        tokenizer = _model_tokenizer(recipe, notices)
    texts = {split: frame[cfg.text_column].tolist() for split, frame in frames.items()}
    rows = {split: [str(i) for i in frame.index] for split, frame in frames.items()}
    result: dict = {
        "source": cfg.train or cfg.source, "task": task.name, "text_column": cfg.text_column,
        "label_column": cfg.label_column, "rows": {split: len(t) for split, t in texts.items()},
        "notices": notices,
    }
    if task.inputs != "text":
        result["duplicates"] = result["leaked"] = None  # images: not compared
    else:
        result["duplicates"] = _duplicates(texts, rows, listed)
        result["leaked"] = _leaked(texts, rows, listed)
        result["empty"] = {split: sum(not text_key(t) for t in values) for split, values in texts.items()}
    result["drops"] = {"drop_missing": recipe.data.drop_missing, "drop_duplicates": cfg.drop_duplicates,
                       "drop_leaked": cfg.drop_leaked}
    result["classes"] = _classes(frames, cfg.label_column, recipe) if task.stratify else None
    counted = tokenizer is not None and tokenizer != "model" and task.inputs == "text"
    result["truncated"] = _truncated(frames, cfg, tokenizer) if counted else None
    return result


def _model_tokenizer(recipe: Recipe, notices: list[str]):
    """The recipe's model's tokenizer, or None with a notice where it cannot be loaded (a hub
    id offline): the rest of the check does not need it."""
    from pretune.models.load import load_tokenizer

    try:
        return load_tokenizer(recipe.model.source)
    except (PretuneError, OSError, ValueError) as e:
        notices.append(f"texts cut at max_length not counted: no tokenizer for {recipe.model.source} "
                       f"({str(e).splitlines()[0] if str(e) else type(e).__name__})")
        return None


def _duplicates(texts: dict[str, list], rows: dict[str, list[str]], listed: int) -> dict:
    """Repeats within training, and over all splits together (for one file carved into splits:
    the file's own repeats). `exact`: the same string as an earlier row; `near`: the same key."""
    out = {}
    for scope in ("train", "all"):
        splits = ["train"] if scope == "train" else list(texts)
        seen_text, seen_key = set(), set()
        exact = near = 0
        groups: dict[str, list[str]] = defaultdict(list)
        first: dict[str, str] = {}
        for split in splits:
            for text, row in zip(texts[split], rows[split], strict=True):
                key, raw = text_key(text), _raw(text)
                if raw in seen_text:
                    exact += 1
                elif key in seen_key:
                    near += 1
                seen_text.add(raw)
                seen_key.add(key)
                first.setdefault(key, raw)
                groups[key].append(f"{split}:{row}")
        repeated = [(key, where) for key, where in groups.items() if len(where) > 1]
        out[scope] = {"exact": exact, "near": near, "groups": len(repeated),
                      "listed": [{"text": first[key], "rows": where} for key, where in repeated[:listed]]}
    return out


def _leaked(texts: dict[str, list], rows: dict[str, list[str]], listed: int) -> dict:
    """Rows of each other split whose text (exact, or near: by key) also occurs in training."""
    train_raw = {_raw(t) for t in texts["train"]}
    train_rows: dict[str, list[str]] = defaultdict(list)
    for text, row in zip(texts["train"], rows["train"], strict=True):
        train_rows[text_key(text)].append(f"train:{row}")
    out = {}
    for split in (s for s in texts if s != "train"):
        exact = near = 0
        found = []
        for text, row in zip(texts[split], rows[split], strict=True):
            key = text_key(text)
            if key not in train_rows:
                continue
            if _raw(text) in train_raw:
                exact += 1
            else:
                near += 1
            if len(found) < listed:
                found.append({"text": _raw(text), "rows": [f"{split}:{row}", *train_rows[key][:3]]})
        out[split] = {"exact": exact, "near": near, "listed": found}
    return out


def _raw(text) -> str:
    return " ".join(map(str, text)) if isinstance(text, list | tuple) else str(text)


def _classes(frames: dict[str, pd.DataFrame], column: str, recipe: Recipe) -> dict:
    counts = {split: {str(k): int(v) for k, v in frame[column].value_counts().items()}
              for split, frame in frames.items()}
    train = counts["train"]
    largest, smallest = max(train.values()), min(train.values())
    weights, sampling = recipe.train.loss.class_weights, recipe.data.sampling
    handled = weights is not None or sampling != "natural"
    return {
        "counts": counts, "imbalance": largest / smallest, "majority_share": largest / sum(train.values()),
        "class_weights": weights, "sampling": sampling,
        "advice": None if handled or largest / smallest < IMBALANCED else
        "train.loss.class_weights=balanced or data.sampling=balanced (the recipe does neither)",
    }


def _truncated(frames: dict[str, pd.DataFrame], cfg, tokenizer) -> dict:
    """Per split, the share of rows longer than max_length tokens (capped, as fit caps it, at
    the model's positions), counted with the model's tokenizer and special tokens."""
    limit = getattr(tokenizer, "model_max_length", None)
    max_length = min(cfg.max_length, limit) if isinstance(limit, int) and limit < 1_000_000 else cfg.max_length
    out: dict = {"max_length": max_length}
    for split, frame in frames.items():
        values = frame[cfg.text_column].tolist()
        pairs = frame[cfg.text_pair_column].astype(str).tolist() if cfg.text_pair_column else None
        words = bool(values) and isinstance(values[0], list | tuple)
        cut = 0
        for start in range(0, len(values), ENCODE_CHUNK):
            chunk = [list(map(str, v)) if words else str(v) for v in values[start:start + ENCODE_CHUNK]]
            pair = pairs[start:start + ENCODE_CHUNK] if pairs else None
            ids = tokenizer(chunk, pair, truncation=False, is_split_into_words=words)["input_ids"]
            cut += sum(len(row) > max_length for row in ids)
        out[split] = {"rows": cut, "share": cut / max(len(values), 1)}
    return out


def summary(result: dict, shown: int = SHOWN) -> list[str]:
    """The check as lines for a terminal: every count as a number, a few examples of each."""
    rows = result["rows"]
    lines = [f"data: {result['source']} ({result['task']}; text '{result['text_column']}', label "
             f"'{result['label_column']}'): " + ", ".join(f"{split} {n:,}" for split, n in rows.items()) + " rows"]
    drops = result["drops"]
    lines += [f"notice: {n}" for n in result["notices"]]
    if not drops["drop_missing"] and any("(data.drop_missing)" in n for n in result["notices"]):
        lines.append("fit refuses rows without a text or a label: fill them, or set data.drop_missing: true")
    if result.get("duplicates"):
        train, every = result["duplicates"]["train"], result["duplicates"]["all"]
        lines.append(f"duplicates within train: {train['exact']:,} exact, {train['near']:,} near "
                     f"(data.drop_duplicates: {str(drops['drop_duplicates']).lower()}); over all splits: "
                     f"{every['exact']:,} exact, {every['near']:,} near")
        lines += [f"  {_quoted(g['text'])} rows {', '.join(g['rows'][:4])}" for g in every["listed"][:shown]]
        leaked = result["leaked"]
        lines.append("texts also in train (leakage): " + ", ".join(
            f"{split} {v['exact']:,} exact, {v['near']:,} near" for split, v in leaked.items())
            + f" (data.drop_leaked: {str(drops['drop_leaked']).lower()})")
        listed = [g for v in leaked.values() for g in v["listed"]]
        lines += [f"  {_quoted(g['text'])} rows {', '.join(g['rows'][:4])}" for g in listed[:shown]]
        lines.append("empty texts: " + ", ".join(f"{split} {n:,}" for split, n in result["empty"].items()))
    classes = result.get("classes")
    if classes:
        train = classes["counts"]["train"]
        named = ", ".join(f"{k} {v:,}" for k, v in list(train.items())[:10]) + (", ..." if len(train) > 10 else "")
        lines.append(f"classes in train: {len(train):,}; {named}"
                     + f"; largest / smallest {classes['imbalance']:.1f}x, majority {classes['majority_share']:.1%}")
        lines.append(f"the recipe: train.loss.class_weights {classes['class_weights']}, data.sampling "
                     f"{classes['sampling']}" + (f"; consider {classes['advice']}" if classes["advice"] else ""))
    truncated = result.get("truncated")
    if truncated:
        lines.append(f"texts longer than max_length {truncated['max_length']}: " + ", ".join(
            f"{split} {v['rows']:,} ({v['share']:.1%})" for split, v in truncated.items() if split != "max_length"))
    return lines


def _quoted(text: str, width: int = 70) -> str:
    """A text as a JSON string, cut: control characters shown escaped, never sent raw."""
    return json.dumps(text if len(text) <= width else text[:width] + "...", ensure_ascii=False)
