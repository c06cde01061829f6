"""Read a labelled table (CSV, JSONL, Parquet, or a Hugging Face dataset) into a DataFrame."""

from __future__ import annotations

import lzma
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pretune.data.encodings import OPENERS, bom_encoding, detect_encoding
from pretune.errors import MissingExtraError, PretuneError

__all__ = ["OPENERS", "READERS", "bom_encoding", "detect_encoding", "read_table", "sniff_delimiter"]

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
