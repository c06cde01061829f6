"""Property-based tests (hypothesis): whatever text a user's recipe, `--set` item, table or CoNLL
file holds, pretune answers with a Recipe / a frame or a PretuneError, never another exception,
and a refused fit leaves no run directory behind.

Settings: max_examples 150 for the parsers (pure functions, milliseconds each), 25 for the
readers that write a file per example, deadline None everywhere (the shared test machine stalls
for seconds at times); no database is kept (derandomize would hide new inputs on later runs).
"""

from __future__ import annotations

import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pretune.data.conll import read_conll
from pretune.data.tables import read_table
from pretune.errors import PretuneError
from pretune.recipe import Recipe, edit, parse_overrides, read_yaml

FAST = settings(max_examples=150, deadline=None, database=None)
FILES = settings(max_examples=25, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

KEYS = ["seed", "model.source", "data.task", "data.max_length", "data.delimiter", "train.epochs",
        "train.optimizer.lr", "train.batch_size", "train.schedule.name", "strategy.name", "compress.max_drop",
        "search.space", "train.loss.class_weights", "data.augment.flip", "model.surgery.keep_layers"]
# Values as a user types them after `=`: YAML scalars, lists, maps, odd floats and plain junk.
VALUES = st.one_of(
    st.sampled_from([".inf", "-.inf", ".nan", "1e-4", "-1", "0", "3", "true", "null", "[1, 2]", "{a: 1}",
                     "''", "[", "{", "!!python/object:os.system", "&a [*a]", "1e400", "0x10"]),
    st.text(max_size=20),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
)
DOTTED = st.one_of(st.sampled_from(KEYS), st.text(alphabet=string.ascii_lowercase + "._", max_size=25))


def _tree(leaves):
    return st.recursive(leaves, lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(["seed", "model", "data", "train", "source", "lr", "task",
                                                   "epochs", "optimizer", "space"]), st.text(max_size=8)),
                        children, max_size=4)), max_leaves=12)


YAML_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))


@FAST
@given(st.lists(st.tuples(DOTTED, VALUES), max_size=4))
def test_set_items_give_a_recipe_or_a_pretune_error(items):
    raw: dict = {}
    try:
        edit(raw, parse_overrides([f"{dotted}={value}" for dotted, value in items]))
        recipe = Recipe.from_dict(raw)
    except PretuneError as e:
        assert "\n" not in str(e)
        return
    # Whatever was accepted is a recipe that saves and loads back to itself.
    assert Recipe.from_dict(yaml.safe_load(recipe.to_yaml())) == recipe


@FAST
@given(st.text(max_size=40))
def test_set_items_without_structure(item):
    try:
        Recipe.load(None, [item])
    except PretuneError as e:
        assert "\n" not in str(e)


@FAST
@given(_tree(YAML_LEAVES))
def test_recipe_documents_give_a_recipe_or_a_pretune_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        Recipe.from_dict(read_yaml(path))
    except PretuneError as e:
        assert "\n" not in str(e)


@FAST
@given(st.text(max_size=200))
def test_recipe_text_gives_a_recipe_or_a_pretune_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("recipe") / "r.yaml"
    path.write_text(text, encoding="utf-8", errors="replace")
    try:
        Recipe.load(path)
    except PretuneError as e:
        assert "\n" not in str(e)


CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@FILES
@given(suffix=st.sampled_from([".csv", ".tsv", ".jsonl", ".csv.gz"]), delimiter=st.sampled_from([None, ",", ";", "\t"]),
       body=st.one_of(st.binary(max_size=200), st.lists(st.lists(CELL, min_size=1, max_size=4), max_size=6).map(
           lambda rows: "\n".join(st_join(r) for r in rows).encode())))
def test_table_readers_give_a_frame_or_a_pretune_error(tmp_path, suffix, delimiter, body):
    import gzip

    path = tmp_path / f"t{suffix}"
    path.write_bytes(gzip.compress(body) if suffix.endswith(".gz") else body)
    try:
        frame = read_table(path, delimiter=delimiter)
    except PretuneError as e:
        assert "\n" not in str(e)
        return
    assert len(frame) > 0


def st_join(row: list[str]) -> str:
    return ",".join(row) if len(row) % 2 else ";".join(row)


TOKEN = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\n"),
                min_size=0, max_size=8)
TAG = st.one_of(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "E-LOC", "S-X", "-DOCSTART-", "I-"]), TOKEN)
LINE = st.one_of(
    st.tuples(TOKEN, TAG).map(lambda p: f"{p[0]}\t{p[1]}"),
    st.tuples(TOKEN, TOKEN, TAG).map(lambda p: f"{p[0]} {p[1]} {p[2]}"),
    st.tuples(TOKEN, st.lists(TOKEN, max_size=3), TAG).map(lambda p: "\t".join([p[0], *p[1], p[2]])),
    st.just(""), st.just("-DOCSTART- -X- O"), TOKEN,
)


@FILES
@given(lines=st.lists(LINE, max_size=12), suffix=st.sampled_from([".conll", ".txt", ".bio"]))
def test_conll_reader_gives_sentences_or_a_pretune_error(tmp_path, lines, suffix):
    path = tmp_path / f"d{suffix}"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        frame = read_conll(path)
    except PretuneError as e:
        assert "\n" not in str(e)
        return
    for tokens, tags in zip(frame["tokens"], frame["tags"], strict=True):
        assert len(tokens) == len(tags) and all(tokens)
    assert len(read_table(path)) == len(frame)  # every suffix reads the same through read_table


@pytest.fixture(scope="module")
def fit_prefix(tiny_model_dir, sentiment_csv) -> list[str]:
    return [f"model.source={tiny_model_dir}", f"data.source={sentiment_csv}", "train.max_steps=1",
            "data.max_length=16", "train.checkpoint_every_steps=null"]


@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(st.sampled_from(["train.optimizer.lr", "train.epochs", "train.batch_size",
                                                 "data.max_length", "train.max_grad_norm", "seed"]),
                                st.sampled_from([".inf", ".nan", "-1", "0", "abc", "[]", "null", "1e309"])),
                      min_size=1, max_size=2))
def test_a_refused_fit_leaves_no_run_directory(tmp_path_factory, fit_prefix, items):
    import pretune

    out = tmp_path_factory.mktemp("fit") / "run"
    try:
        pretune.fit(None, out, overrides=fit_prefix + [f"{k}={v}" for k, v in items], quiet=True, lean=True)
    except PretuneError as e:
        assert "\n" not in str(e)
        assert not out.exists() or not any(out.iterdir())
        return
    assert (out / "metrics.json").is_file()  # accepted: then a whole run
