"""Token-level tagged data: the CoNLL-style text reader, and the cell and tag checks the token
task applies to any table (JSONL / Parquet lists, or JSON lists inside CSV cells).

The reader gives one frame with one row per sentence: `tokens` (list[str]) and `tags`
(list[str]). Every problem is told in one line that names the file and the line (or row),
before a tokenizer or model is loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pretune.errors import PretuneError

# O, or a prefix of the IOB / IOBES schemes (what seqeval's default mode reads) and a type.
TAG_PATTERN = re.compile(r"O|[BIES]-\S+")
DOCSTART = "-DOCSTART-"


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole file as text; a decode error names the line and the option that fixes it."""
    path = Path(path)
    if not path.is_file():
        raise PretuneError(f"data file not found: {path}")
    from pretune.data.encodings import OPENERS, bom_encoding

    try:
        with OPENERS.get(path.suffix, open)(path, "rb") as f:  # .conll.gz / .bz2 / .xz too
            raw = f.read()
    except (OSError, EOFError, ValueError) as e:
        raise PretuneError(f"cannot read {path}: {(str(e) or type(e).__name__).splitlines()[0]}") from None
    encoding = bom_encoding(path, encoding)
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

    Also reads whitespace-separated `token tag` lines and lines with feature columns between
    the two (CoNLL-2003's `EU NNP B-NP B-ORG`): the token is the first column, the tag the last.
    `-DOCSTART-` lines are skipped. Tab-separated lines may carry a varying number of features
    (a morphological analyser's output). Space-separated lines must keep the first line's
    column count: there a token holding a space shifts its line's columns, and the error says so.
    The file's first token line decides the separator for all: a space-separated line in a
    tab-separated file (`New York B-LOC` among `Paris<TAB>B-LOC`) would silently lose its words
    between the first and the tag, so it is refused, and so is a tab line in a space file.
    """
    path = Path(path)
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    first: tuple[int, int, bool] | None = None  # (columns, line, tabbed) of the file's first token line
    # split("\n"), not splitlines(): tweets hold U+2028 and friends inside tokens.
    for number, line in enumerate(read_text(path, encoding).split("\n"), start=1):
        if not line.strip() or line.lstrip().startswith(DOCSTART):
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        # With tabs, only tabs separate: a token may be (or hold) other Unicode whitespace.
        line = line.rstrip("\r\n\t ")
        tabbed = "\t" in line
        fields = [f.strip(" ") for f in line.split("\t")] if tabbed else line.split()
        where = f"{path}, line {number}"
        if len(fields) < 2:
            raise PretuneError(f"{where}: expected 'token<TAB>tag', found one field (a token without "
                               f"its tag?): {line[:60]!r}")
        first = first or (len(fields), number, tabbed)
        if tabbed != first[2]:
            kinds = ("tabs", "spaces") if first[2] else ("spaces", "tabs")
            raise PretuneError(f"{where}: columns separated by {kinds[1]} where line {first[1]} uses {kinds[0]}; "
                               f"use one separator in the whole file: {line[:60]!r}")
        if not fields[0]:
            raise PretuneError(f"{where}: empty token before the tag {fields[-1]!r}")
        if not tabbed and len(fields) != first[0]:
            cause = ("a token with a space in it? separate columns with tabs" if len(fields) > first[0]
                     else "a token without its tag?")
            raise PretuneError(f"{where}: {len(fields)} columns where line {first[1]} has {first[0]} "
                               f"({cause}): {line[:60]!r}")
        if not TAG_PATTERN.fullmatch(fields[-1]):
            raise PretuneError(f"{where}: the last of its {len(fields)} columns, {fields[-1]!r}, is not a tag "
                               f"(O, or B-/I-/E-/S- followed by a type): {line[:60]!r}")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise PretuneError(f"{path} holds no sentences")
    return pd.DataFrame(sentences, columns=["tokens", "tags"])


def as_token_list(cell, column: str, where: str) -> list[str]:
    if isinstance(cell, str) and cell.lstrip().startswith("["):
        try:
            cell = json.loads(cell)
        except json.JSONDecodeError:
            pass
    if isinstance(cell, np.ndarray):  # Parquet list columns arrive as arrays
        cell = cell.tolist()
    if not isinstance(cell, list | tuple) or not all(isinstance(x, str | int | float) for x in cell):
        raise PretuneError(f"{where}: '{column}' must be a list of strings, found {str(cell)[:60]!r}")
    return [str(x) for x in cell]


def checked_tag(tag: str, where: str) -> str:
    if not TAG_PATTERN.fullmatch(tag):
        raise PretuneError(f"{where}: tag {tag!r} is not O or B-/I-/E-/S- followed by a type")
    return tag
