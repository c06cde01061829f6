"""What a data file or folder is, inferred so that a user can start from it instead of a recipe:
the task, the text and label columns, the encoding, the delimiter and the splits.

Each inferred fact is a line for the terminal and a key of the recipe's `data:` section, so the
resolved recipe says everything that was inferred and runs again without inference. Nothing is
guessed silently: where two answers are as good (two text-like columns, no label column named),
one line names the candidates and the option that settles it (a PretuneError, exit code 2).
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pretune.data.conll import TAG_PATTERN
from pretune.data.images import IMAGE_SUFFIXES
from pretune.data.splits import split_frame
from pretune.data.tables import READERS, detect_encoding, sniff_delimiter
from pretune.errors import PretuneError
from pretune.recipe import task_facts, task_inferred_from

SAMPLE_BYTES = 256 * 1024  # enough lines to tell an encoding or a token-per-line file
TOKEN_FILES = (".conll", ".bio", ".iob", ".txt")
LABEL_NAMES = ("label", "labels", "target", "class", "category", "tags")
# A numeric label with more distinct values than this is a quantity to predict (regression);
# with fewer, classes (ratings 1-5, 0/1 flags).
MAX_CLASSES = 20
# A string column is text-like (a candidate to read) when its values are this long on average
# and mostly distinct; shorter or repeated strings are categories, ids or codes.
MIN_TEXT_CHARS = 15
MIN_DISTINCT = 0.5
FRACTIONS = (0.1, 0.1)  # validation, test carved from a single file
SPLIT_SEED = 0


@dataclass
class Inferred:
    """The `data:` keys inferred from a file (recipe-ready) and the lines that tell them."""

    data: dict
    facts: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def inputs(self) -> str:
        return task_facts(self.task).inputs


def infer(path: str | Path, label: str | None = None, text: str | None = None) -> Inferred:
    """Infer the data section for `path` (a table, a CoNLL file, or an image folder); `label` and
    `text` name the columns where the user knows them (required where inference would guess)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise PretuneError(f"data file not found: {path}")
    if path.is_dir():
        return _image_folder(path.resolve())
    encoding, notice = detect_encoding(path)
    suffix = _suffix(path)
    if suffix in TOKEN_FILES and _looks_tagged(path, encoding):
        result = _tagged(path.resolve(), encoding)
    elif suffix in READERS and suffix not in TOKEN_FILES:
        result = _table(path.resolve(), encoding, suffix, label, text)
    else:
        raise PretuneError(f"cannot tell what {path.name} holds: give a table (.csv .tsv .jsonl .parquet), a CoNLL "
                           f"file of token/tag lines (.conll .bio .txt), or a folder with one subfolder per class")
    result.data["encoding"] = encoding
    result.facts.insert(1, f"encoding: {encoding}" + (f" ({notice})" if notice else ""))
    return result


def _head(path: Path) -> bytes:
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix.lower(), open)
    try:
        with opener(path, "rb") as f:
            return f.read(SAMPLE_BYTES)
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise PretuneError(f"cannot read {path}: {e}") from None


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".bz2", ".gz", ".xz")]
    return suffixes[-1] if suffixes else ""


def _looks_tagged(path: Path, encoding: str) -> bool:
    """Token/tag lines: most non-blank lines end in a tag (O, B-X, I-X, ...)."""
    lines = [line for line in _head(path).decode(encoding, errors="replace").split("\n")[:200]
             if line.strip() and not line.startswith("-DOCSTART-")]
    tagged = sum(1 for line in lines if len(line.split()) >= 2 and TAG_PATTERN.fullmatch(line.split()[-1]))
    return bool(lines) and tagged >= 0.9 * len(lines)


def _tagged(path: Path, encoding: str) -> Inferred:
    from pretune.data.conll import read_conll

    frame = read_conll(path, encoding)
    types = sorted({t[2:] for tags in frame["tags"] for t in tags if t != "O"})
    task = task_inferred_from("token-tags")
    data = {"source": str(path), "task": task, "text_column": "tokens", "label_column": "tags"}
    facts = [f"task: {task} (token/tag lines; {len(types)} entity types: {', '.join(types[:8])}"
             + (", ..." if len(types) > 8 else "") + ")"]
    return _with_splits(Inferred(data, facts), frame, None)


def _image_folder(path: Path) -> Inferred:
    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    counts = {f.name: sum(1 for x in f.rglob("*") if x.suffix.lower() in IMAGE_SUFFIXES) for f in folders}
    classes = {k: n for k, n in counts.items() if n}
    if len(classes) < 2:
        raise PretuneError(f"{path} is a folder but not an image dataset: expected one subfolder per class "
                           f"holding images ({', '.join(IMAGE_SUFFIXES)}), found {len(classes)} such subfolder(s)")
    task = task_inferred_from("image-folders")
    data = {"source": str(path), "task": task, "text_column": "image", "label_column": "label"}
    frame = pd.DataFrame({"label": [k for k, n in classes.items() for _ in range(n)]})
    facts = [f"task: {task} (a folder per class: {len(classes)} classes, {len(frame)} images)"]
    return _with_splits(Inferred(data, facts), frame, "label")


def _table(path: Path, encoding: str, suffix: str, label: str | None, text: str | None) -> Inferred:
    from pretune.data.tables import read_table

    data: dict = {"source": str(path)}
    facts: list[str] = []
    delimiter = None
    if suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else sniff_delimiter(path, encoding, ",")
        data["delimiter"] = delimiter
        facts.append(f"delimiter: {_named(delimiter)}")
    frame = read_table(path, encoding, delimiter)
    label = _label_column(frame, label, path)
    kind, why = _labels_kind(frame[label])
    task, classes = task_inferred_from(kind), kind == "classes"
    data.update(task=task, label_column=label)
    facts.insert(0, f"task: {task} (label column '{label}': {why})")
    text = _text_column(frame, label, text, path)
    lengths = frame[text].astype(str).str.len()
    data["text_column"] = text
    facts.append(f"text column: '{text}' (median {int(lengths.median())} characters)")
    return _with_splits(Inferred(data, facts), frame, label if classes else None)


def _named(sep: str) -> str:
    return {"\t": "tab", ",": "comma (,)", ";": "semicolon (;)", "|": "pipe (|)"}.get(sep, repr(sep))


def _label_column(frame: pd.DataFrame, label: str | None, path: Path) -> str:
    columns = [str(c) for c in frame.columns]
    if label is not None:
        if label not in frame.columns:
            raise PretuneError(f"{path.name} has no column '{label}' (--label); the columns are {', '.join(columns)}")
        return label
    named = [c for c in columns if c.lower() in LABEL_NAMES]
    if len(named) == 1:
        return named[0]
    which = f"{len(named)} label-like columns, {' and '.join(named)}" if named else "no column named label"
    raise PretuneError(f"{path.name}: {which}; pass --label (the columns are {', '.join(columns)})")


def _labels_kind(values: pd.Series) -> tuple[str, str]:
    """What a label column holds (recipe.LABEL_KINDS: the task that claims it reads it), and why
    it reads so; classes stratify the carved splits."""
    present = values.dropna()
    if present.empty:
        raise PretuneError(f"label column '{values.name}' is empty")
    first = present.iloc[0]
    if isinstance(first, (list, tuple, np.ndarray)) or (isinstance(first, str) and _json_lists(present)):
        return "label-lists", "a list of labels per row"
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        distinct = present.nunique()
        if distinct > MAX_CLASSES:
            return "quantities", f"numbers, {distinct} distinct values"
        return "classes", f"{distinct} classes (numbers with few values)"
    distinct = present.astype(str).nunique()
    return "classes", f"{distinct} classes"


def _json_lists(values: pd.Series) -> bool:
    sample = values.head(50)
    if not all(isinstance(v, str) and v.lstrip().startswith("[") for v in sample):
        return False
    try:
        return all(isinstance(json.loads(v), list) for v in sample)
    except json.JSONDecodeError:
        return False


def _text_column(frame: pd.DataFrame, label: str, text: str | None, path: Path) -> str:
    if text is not None:
        if text not in frame.columns:
            raise PretuneError(f"{path.name} has no column '{text}' (--text); the columns are "
                               f"{', '.join(map(str, frame.columns))}")
        return text
    strings = {}
    for column in frame.columns:
        if column == label or not _is_strings(frame[column]):
            continue
        values = frame[column].dropna().astype(str)
        strings[str(column)] = (values.str.len().mean(), values.nunique() / max(len(values), 1))
    if not strings:
        raise PretuneError(f"{path.name}: no text column (no column of strings besides '{label}'); pass --text")
    textlike = [c for c, (chars, distinct) in strings.items() if chars >= MIN_TEXT_CHARS and distinct >= MIN_DISTINCT]
    if len(textlike) > 1:
        named = ", ".join(textlike[:-1]) + f" and {textlike[-1]}"
        count = "two" if len(textlike) == 2 else str(len(textlike))
        raise PretuneError(f"{path.name}: {count} text-like columns, {named}: pass --text")
    if textlike:
        return textlike[0]
    return max(strings, key=lambda c: strings[c][0])  # the longest strings


def _is_strings(column: pd.Series) -> bool:
    present = column.dropna()
    return not present.empty and (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)) and all(
        isinstance(v, str) for v in present.head(100))


def _with_splits(result: Inferred, frame: pd.DataFrame, stratify: str | None) -> Inferred:
    """A single file has no validation or test split: both are carved from it (stratified by
    the label where it is a class), with the fractions and seed written into the recipe."""
    val, test = FRACTIONS
    result.data.update(validation_fraction=val, test_fraction=test, split_seed=SPLIT_SEED)
    parts = split_frame(frame, stratify, val, test, SPLIT_SEED)
    how = "stratified by label" if stratify else "shuffled"
    sizes = ", ".join(f"{name} {len(part):,}" for name, part in parts.items())
    result.facts.append(f"splits: {sizes} (validation and test carved from the file, {how}, seed {SPLIT_SEED})")
    return result


def is_data(path: str | Path) -> bool:
    """Whether a pipeline's first argument is data (a table, CoNLL file or folder), not a recipe."""
    path = Path(path)
    if path.is_dir():
        return True
    return _suffix(path) not in (".yaml", ".yml") and bool(re.search(r"\.\w+", path.name))
