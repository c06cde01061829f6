"""Read token-level tagged data: CoNLL-style text files and JSONL / Parquet with token and tag lists.

Both readers give one frame with one row per sentence: `tokens` (list[str]) and `tags`
(list[str]). Every problem is found here and told in one line that names the file and the line
(or row), before a tokenizer or model is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pretune.data.tables import read_table
from pretune.errors import PretuneError

# O, or a prefix of the IOB / IOBES schemes (what seqeval's default mode reads) and a type.
TAG_PATTERN = re.compile(r"O|[BIES]-\S+")
DOCSTART = "-DOCSTART-"


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole file as text; a decode error names the line and the option that fixes it."""
    path = Path(path)
    if not path.is_file():
        raise PretuneError(f"data file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except LookupError:
        raise PretuneError(f"unknown text encoding '{encoding}' (data.encoding)") from None
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise PretuneError(
            f"{path}: line {line} is not valid {encoding}; set data.encoding to the file's "
            f"encoding (for example latin-1 or cp1252)"
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the first token


def read_conll(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """Sentences of a `token<TAB>tag` file (blank line between sentences) as `tokens` / `tags`.

    Also reads whitespace-separated `token tag` lines and CoNLL-2003 lines with more columns
    (`EU NNP B-NP B-ORG`): the token is the first column, the tag the last. Every line must have
    as many columns as the file's first one, which is how a token with a missing tag (or a
    token holding a space in a whitespace-separated file) is caught. `-DOCSTART-` lines are skipped.
    """
    path = Path(path)
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    columns: tuple[int, int] | None = None  # (count, line where it was first seen)
    # split("\n"), not splitlines(): tweets hold U+2028 and friends inside tokens.
    for number, line in enumerate(read_text(path, encoding).split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith(DOCSTART):
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        # With tabs, only tabs separate: a token may be (or hold) other Unicode whitespace.
        line = line.rstrip("\r\n\t ")
        fields = [f.strip(" ") for f in line.split("\t")] if "\t" in line else line.split()
        where = f"{path}, line {number}"
        if len(fields) < 2:
            raise PretuneError(f"{where}: expected 'token<TAB>tag', found one field: {line[:60]!r}")
        if columns is None:
            columns = (len(fields), number)
        elif len(fields) != columns[0]:
            raise PretuneError(
                f"{where}: {len(fields)} columns where line {columns[1]} has {columns[0]} "
                f"(a token without its tag, or a token with a space in it?): {line[:60]!r}"
            )
        if not fields[0]:
            raise PretuneError(f"{where}: empty token before the tag {fields[-1]!r}")
        tokens.append(fields[0])
        tags.append(_checked_tag(fields[-1], where))
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise PretuneError(f"{path} holds no sentences")
    return pd.DataFrame(sentences, columns=["tokens", "tags"])


def read_token_table(
    path: str | Path, tokens_column: str = "tokens", tags_column: str = "tags", encoding: str = "utf-8",
) -> pd.DataFrame:
    """Sentences of a table whose rows hold a token list and a tag list of equal length.

    JSONL (one object a line) is parsed here so that a bad line is named and `encoding` applies;
    other formats (Parquet) go through `read_table`. A cell may also be a JSON list in a string.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        frame = _read_jsonl(path, encoding)
    else:
        frame = read_table(path)
    missing = [c for c in (tokens_column, tags_column) if c not in frame.columns]
    if missing:
        raise PretuneError(
            f"{path}: no column {', '.join(map(repr, missing))}; columns: {', '.join(map(str, frame.columns))}"
        )
    rows = []
    for row, (tokens, tags) in enumerate(zip(frame[tokens_column], frame[tags_column], strict=True)):
        where = f"{path}, row {row}"
        tokens = _as_list(tokens, tokens_column, where)
        tags = _as_list(tags, tags_column, where)
        if not tokens:
            raise PretuneError(f"{where}: no tokens")
        if len(tokens) != len(tags):
            raise PretuneError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
        rows.append((tokens, [_checked_tag(t, where) for t in tags]))
    return pd.DataFrame(rows, columns=["tokens", "tags"])


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    records = []
    for number, line in enumerate(read_text(path, encoding).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PretuneError(f"{path}, line {number}: not JSON ({e.msg})") from None
        if not isinstance(record, dict):
            raise PretuneError(f"{path}, line {number}: expected a JSON object, found {type(record).__name__}")
        records.append(record)
    if not records:
        raise PretuneError(f"{path} holds no rows")
    return pd.DataFrame.from_records(records)


def _as_list(cell, column: str, where: str) -> list[str]:
    if isinstance(cell, str) and cell.lstrip().startswith("["):
        try:
            cell = json.loads(cell)
        except json.JSONDecodeError:
            pass
    if isinstance(cell, np.ndarray):  # Parquet list columns arrive as arrays
        cell = cell.tolist()
    if not isinstance(cell, list | tuple) or not all(isinstance(x, str) for x in cell):
        raise PretuneError(f"{where}: '{column}' must be a list of strings, found {str(cell)[:60]!r}")
    return list(cell)


def _checked_tag(tag: str, where: str) -> str:
    if not TAG_PATTERN.fullmatch(tag):
        raise PretuneError(f"{where}: tag {tag!r} is not O or B-/I-/E-/S- followed by a type")
    return tag
