"""Read a labelled table (CSV, JSONL, Parquet, or a Hugging Face dataset) into a DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pretune.errors import MissingExtraError, PretuneError

READERS = {
    ".csv": lambda p, enc: pd.read_csv(p, encoding=enc),
    ".tsv": lambda p, enc: pd.read_csv(p, sep="\t", encoding=enc),
    ".jsonl": lambda p, enc: pd.read_json(p, lines=True, encoding=enc),
    ".json": lambda p, enc: pd.read_json(p, lines=True, encoding=enc),
    ".parquet": lambda p, enc: pd.read_parquet(p),
    ".conll": lambda p, enc: _conll(p, enc),
    ".bio": lambda p, enc: _conll(p, enc),
}


def _conll(path, encoding):
    from pretune.data.conll import read_conll

    return read_conll(path, encoding)


def read_table(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """Read one table file; the format follows the suffix (.csv .tsv .jsonl .parquet, .conll / .bio
    token-per-line files; .bz2/.gz ok)."""
    path = Path(path)
    if not path.is_file():
        raise PretuneError(f"data file not found: {path}")
    suffixes = [s for s in path.suffixes if s not in (".bz2", ".gz", ".xz", ".zip")]
    reader = READERS.get(suffixes[-1].lower() if suffixes else "")
    if reader is None:
        raise PretuneError(
            f"cannot read {path.name}: use one of {', '.join(sorted(READERS))}"
        )
    try:
        frame = reader(path, encoding)
    except UnicodeDecodeError as e:
        raise PretuneError(f"cannot read {path} as {encoding} ({e.reason} at byte {e.start}); "
                           "set data.encoding, e.g. latin-1") from None
    except LookupError:
        raise PretuneError(f"data.encoding '{encoding}' is not a known text encoding") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise PretuneError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
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
