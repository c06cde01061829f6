"""Which bytes a data file holds: compressed or not (OPENERS), a byte-order mark's encoding, and
the encoding of a file given without one. Below both the table and the CoNLL readers."""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
from pathlib import Path

OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
# A byte-order mark names its encoding; the longer marks first (UTF-32-LE starts like UTF-16-LE).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Tried in order when held-out data is not UTF-8: cp1252 is what Western spreadsheets write and
# fails on its 5 undefined bytes; latin-1 decodes any byte (the last resort).
FALLBACK_ENCODINGS = ("cp1252", "latin-1")
DETECT_BYTES = 16 << 20  # enough of a file to tell its encoding


def _head(path: Path, size: int) -> bytes:
    try:
        with OPENERS.get(path.suffix, open)(path, "rb") as f:
            return f.read(size)
    except (OSError, EOFError, lzma.LZMAError):
        return b""  # the reader names the file's problem itself


def bom_encoding(path: Path, encoding: str) -> str:
    """The encoding a byte-order mark at the start of `path` names, else `encoding`. A mark wins
    over the stated encoding: UTF-8 bytes EF BB BF read as latin-1 are "ï»¿", never a text's start,
    and JSON readers stop at it ("Expected object or value at position 0")."""
    head = _head(path, 4)
    return next((name for mark, name in BOMS if head.startswith(mark)), encoding)


def detect_encoding(path: str | Path) -> tuple[str, str | None]:
    """The encoding to read a file given without one: UTF-8 when the file decodes as UTF-8 (or
    starts with a byte-order mark), else the first of FALLBACK_ENCODINGS that decodes it, with a
    notice naming it. Never the training file's encoding: a new file is its own."""
    path = Path(path)
    if bom_encoding(path, "") or path.suffix == ".parquet":
        return "utf-8", None
    raw = _head(path, DETECT_BYTES)
    for encoding in ("utf-8", *FALLBACK_ENCODINGS):
        try:
            raw.decode(encoding)
        except UnicodeDecodeError as e:
            if not (len(raw) == DETECT_BYTES and e.start >= len(raw) - 3):  # not a character cut at the end
                continue
        notice = None if encoding == "utf-8" else (
            f"{path.name} is not UTF-8; read as {encoding} (pass --encoding to choose another)")
        return encoding, notice
    return "latin-1", None  # unreachable: latin-1 decodes every byte
