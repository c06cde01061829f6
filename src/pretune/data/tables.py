"""Read a labelled table (CSV, JSONL, Parquet, or a Hugging Face dataset) into a DataFrame."""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pretune.errors import MissingExtraError, PretuneError

# Readers take (path, encoding, delimiter, columns to keep as text). Delimited files read those
# columns as strings, so labels `007` / `008` keep their spelling (they became 7 / 8). JSON files
# keep the types JSON gives (dtype=False): pandas otherwise turns the string "007" into 7 and
# labels mixing 1, "1" and true into 1.0; what a mixed column means is decided after reading.
READERS = {
    ".csv": lambda p, enc, sep, text: pd.read_csv(p, sep=sep or sniff_delimiter(p, enc, ","), encoding=enc,
                                                  dtype=dict.fromkeys(text, str)),
    ".tsv": lambda p, enc, sep, text: pd.read_csv(p, sep=sep or "\t", encoding=enc, dtype=dict.fromkeys(text, str)),
    ".jsonl": lambda p, enc, sep, text: pd.read_json(p, lines=True, encoding=enc, dtype=False),
    ".json": lambda p, enc, sep, text: pd.read_json(p, lines=True, encoding=enc, dtype=False),
    ".parquet": lambda p, enc, sep, text: pd.read_parquet(p),
    ".conll": lambda p, enc, sep, text: _conll(p, enc),
    ".bio": lambda p, enc, sep, text: _conll(p, enc),
    ".txt": lambda p, enc, sep, text: _conll(p, enc),  # CoNLL files as shared, e.g. eng.train.txt
}
DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
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


def sniff_delimiter(path: Path, encoding: str, fallback: str) -> str:
    """The separator of a delimited file, read from its header line: the one of , ; tab | that
    occurs most there (European spreadsheets write `;`). The header, not the rows: texts hold
    commas and semicolons, column names rarely do."""
    try:
        with OPENERS.get(path.suffix, open)(path, "rb") as f:
            header = f.readline(SNIFF_BYTES).decode(encoding, errors="replace")
    except (OSError, EOFError, lzma.LZMAError):
        return fallback  # pandas reads the file (or names its problem) itself
    counts = {sep: header.count(sep) for sep in DELIMITERS}
    best = max(counts, key=lambda sep: (counts[sep], sep == fallback))
    return best if counts[best] else fallback


def _named(sep: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}.get(sep, repr(sep))


def _conll(path, encoding):
    from pretune.data.conll import read_conll

    return read_conll(path, encoding)


def read_table(path: str | Path, encoding: str = "utf-8", delimiter: str | None = None,
               text_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Read one table file; the format follows the suffix (.csv .tsv .jsonl .parquet, .conll / .bio
    / .txt token-per-line files; .bz2/.gz ok). `delimiter`: a .csv / .tsv file's separator (None:
    sniffed for .csv, tab for .tsv). `text_columns`: read as strings as they are spelled in a
    delimited file. A byte-order mark is dropped (and decides the encoding) in every text format."""
    path = Path(path)
    if not path.is_file():
        raise PretuneError(f"data file not found: {path}")
    suffixes = [s for s in path.suffixes if s not in (".bz2", ".gz", ".xz", ".zip")]
    reader = READERS.get(suffixes[-1].lower() if suffixes else "")
    if reader is None:
        raise PretuneError(
            f"cannot read {path.name}: use one of {', '.join(sorted(READERS))}"
        )
    suffix = suffixes[-1].lower()
    if suffix != ".parquet":
        encoding = bom_encoding(path, encoding)
    try:
        frame = reader(path, encoding, delimiter, [c for c in text_columns if c])
    except UnicodeDecodeError as e:
        raise PretuneError(f"cannot read {path} as {encoding} ({e.reason} at byte {e.start}); "
                           "set data.encoding (eval, predict: --encoding), e.g. latin-1") from None
    except LookupError:
        raise PretuneError(f"data.encoding '{encoding}' is not a known text encoding") from None
    except pd.errors.ParserError as e:
        used = delimiter or ("\t" if suffix == ".tsv" else sniff_delimiter(path, encoding, ","))
        raise PretuneError(f"cannot read {path} as columns separated by {_named(used)}: "
                           f"{str(e).splitlines()[0]}; set data.delimiter if the file uses another") from None
    except (ValueError, OSError, EOFError) as e:
        raise PretuneError(f"cannot read {path}: {(str(e) or type(e).__name__).splitlines()[0]}") from None
    if len(frame) == 0:
        raise PretuneError(f"{path} holds no rows")
    return frame


def read_hub_dataset(name: str) -> dict[str, pd.DataFrame]:
    """Load `name` (optionally `name:config`) from the Hugging Face Hub; needs a network."""
    try:
        import datasets
    except ImportError:
        raise MissingExtraError("datasets", "hub") from None
    dataset_name, _, config = name.partition(":")
    try:
        loaded = datasets.load_dataset(dataset_name, config or None)
    except Exception as e:  # the hub client raises many types; all mean "could not fetch"
        raise PretuneError(
            f"could not load dataset '{name}' from the Hugging Face Hub (offline?): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    return {split: part.to_pandas() for split, part in loaded.items()}
