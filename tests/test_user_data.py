"""Data a user actually has, and figures a user can trust: CoNLL files as they come, `;` and tab
tables, a command-line-only token fit, notices under --quiet, entity scores over whole
sentences (equal to seqeval over `predict`'s tags), no NaN in JSON, and a run that evaluates
from another working directory."""

from __future__ import annotations

import json
import random

import pytest

from pretune.data.conll import read_conll
from pretune.data.tables import read_table

TYPES = [("Paris", "LOC"), ("Berlin", "LOC"), ("Anna", "PER"), ("Marco", "PER")]
FILLER = "the film was seen in by with and today it ran".split()


def tagged_sentences(n: int, seed: int, long_every: int = 4) -> list[list[tuple[str, str]]]:
    """Short sentences with one entity; every `long_every`-th sentence is long, with a second
    entity at its very end (past a small max_length), and some hold an IOB2 slip (I- first)."""
    rng = random.Random(seed)
    sentences = []
    for i in range(n):
        name, kind = rng.choice(TYPES)
        words = [(w, "O") for w in rng.sample(FILLER, 3)]
        words.insert(rng.randint(0, 3), (name, f"{'I' if i % 7 == 3 else 'B'}-{kind}"))
        if i % long_every == 0:
            tail, tail_kind = rng.choice(TYPES)
            words += [(w, "O") for w in rng.choices(FILLER, k=20)] + [(tail, f"B-{tail_kind}")]
        sentences.append(words)
    return sentences


def write_conll(path, sentences) -> None:
    path.write_text("-DOCSTART- -X- O\n\n" + "\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences)
                    + "\n")


def test_conll_as_shared_txt_docstart_spaces_and_varying_tab_features(tmp_path):
    space = tmp_path / "eng.train.txt"
    space.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")
    assert read_table(space)["tags"].tolist() == [["B-ORG", "O"], ["B-PER"]]
    tabbed = tmp_path / "morph.conll"
    tabbed.write_text("Häuser\tNOUN\tCase=Nom|Number=Plur\tB-LOC\nstehen\tVERB\tO\n\nNew York\tB-LOC\n")
    frame = read_conll(tabbed)
    assert frame["tokens"].tolist() == [["Häuser", "stehen"], ["New York"]]
    assert frame["tags"].tolist() == [["B-LOC", "O"], ["B-LOC"]]


def test_delimited_tables_sniffed_or_named(tmp_path):
    semi = tmp_path / "excel.csv"
    semi.write_text("text;label\nhello, world;pos\nbad; really;neg\n".replace("bad; really", '"bad; really"'))
    assert read_table(semi).to_dict("list") == {"text": ["hello, world", "bad; really"], "label": ["pos", "neg"]}
    tab = tmp_path / "tabs.csv"
    tab.write_text("text\tlabel\na, b; c\tpos\n")
    assert read_table(tab)["text"].tolist() == ["a, b; c"]
    pipe = tmp_path / "pipes.tsv"
    pipe.write_text("text|label\nx|pos\n")
    assert read_table(pipe, delimiter="|")["label"].tolist() == ["pos"]


@pytest.fixture(scope="module")
def ner_cli_run(tmp_path_factory, tiny_model_dir):
    """A token-classification fit from the command line with no recipe file: relative data
    paths, a tiny max_length that cuts the long sentences, IOB2 slips in the training tags."""
    from typer.testing import CliRunner

    from pretune.cli.main import app

    root = tmp_path_factory.mktemp("ner-cli")
    write_conll(root / "train.txt", tagged_sentences(80, 0))
    write_conll(root / "test.txt", tagged_sentences(24, 1))
    import os

    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, [
            "fit", "--quiet", "--set", "data.task=token-classification", "--set", f"model.source={tiny_model_dir}",
            "--set", "data.train=train.txt", "--set", "data.test=test.txt", "--set", "data.max_length=12",
            "--set", "train.epochs=5", "--set", "train.batch_size=8", "--set", "train.optimizer.lr=5e-3",
            "--set", "train.checkpoint_every_steps=null", "--out", "run"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, (result.stderr, result.exception)
    return root / "run", result


def test_quiet_fit_still_tells_what_changed_and_keeps_it(ner_cli_run):
    run, result = ner_cli_run
    assert result.stdout.strip() == "run"  # --quiet: the run directory only
    notices = [line for line in result.stderr.splitlines() if line.startswith("pretune: notice:")]
    assert any("IOB2 slips" in n for n in notices), result.stderr
    assert any("longer than data.max_length 12" in n for n in notices), result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert [n for n in metrics["notices"]] == [n.removeprefix("pretune: notice: ") for n in notices]
    assert metrics["test"]["sentences_truncated"] == 6  # every 4th of 24 is long


def test_entity_scores_count_every_gold_entity_and_match_seqeval_over_predict(ner_cli_run, tmp_path, monkeypatch):
    from seqeval.metrics import f1_score, recall_score

    import pretune

    run, _ = ner_cli_run
    monkeypatch.chdir(tmp_path)  # the saved recipe's data paths are absolute: found from anywhere
    loaded = pretune.load_run(run)
    assert loaded.recipe.data.train.startswith("/")
    metrics = loaded.evaluate()
    sentences = tagged_sentences(24, 1)
    gold = [[t for _, t in s] for s in sentences]
    table = loaded.predictor().task.unlabelled([[w for w, _ in s] for s in sentences])
    predicted = [r["tags"] for r in loaded.predictor().predict_table(table)]
    assert metrics["recall"] > 0.2  # it tags entities: the equalities below are not 0 == 0
    assert metrics["f1"] == pytest.approx(f1_score(gold, predicted, zero_division=0))
    assert metrics["recall"] == pytest.approx(recall_score(gold, predicted, zero_division=0))
    # 24 entities inside the 12-sub-word window, 6 more at the ends of the long sentences, cut:
    # those count as missed, so recall cannot pass 24 / 30.
    assert sum(t.startswith(("B-", "I-")) and (i == 0 or s[i - 1][1] == "O") for s in sentences
               for i, (_, t) in enumerate(s)) == 30
    assert metrics["recall"] <= 24 / 30 + 1e-9


def test_eval_json_without_entities_has_no_nan_and_no_warning(ner_cli_run, tmp_path):
    from typer.testing import CliRunner

    from pretune.cli.main import app

    run, _ = ner_cli_run
    (tmp_path / "plain.conll").write_text("the\tO\nfilm\tO\n\nit\tO\nran\tO\n")
    result = CliRunner().invoke(app, ["eval", str(run), "--data", str(tmp_path / "plain.conll"), "--json"])
    assert result.exit_code == 0, result.stderr
    assert "Warning" not in result.stderr and "NaN" not in result.stdout

    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    metrics = json.loads(result.stdout, parse_constant=refuse)
    assert metrics["f1_macro"] is None and metrics["samples"] == 2


def test_task_defaults_serve_where_the_recipe_is_silent():
    from pretune.recipe import Recipe, as_recipe

    bare = as_recipe(Recipe(), ["data.task=token-classification"])
    assert (bare.data.text_column, bare.data.label_column) == ("tokens", "tags")
    image = as_recipe(Recipe(), ["data.task=image-classification"])
    assert image.train.optimizer.lr == 1e-3 and image.task_defaults() == {"train.optimizer.lr": 1e-3}
    chosen = as_recipe(Recipe(), ["data.task=image-classification", "train.optimizer.lr=3e-4"])
    assert chosen.train.optimizer.lr == 3e-4 and chosen.task_defaults() == {}
    assert Recipe.from_dict({"data": {"task": "image-classification"}, "train": {"optimizer": {"name": "sgd"}}}
                            ).train.optimizer.lr == 1e-3
    assert Recipe().train.optimizer.lr == 1e-4  # text keeps its own


def test_newly_initialised_body_weights_are_named(tmp_path, tiny_model_dir):
    import shutil

    from safetensors.torch import load_file, save_file

    from pretune.models import load_model
    from pretune.models.weights_check import check_weights_match
    from pretune.recipe import DataConfig, ModelConfig
    from pretune.tasks import create_task

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    weights = load_file(model_dir / "model.safetensors")
    dropped = sorted(k for k in weights if "layer.1.output.dense" in k)
    save_file({k: v for k, v in weights.items() if k not in dropped}, model_dir / "model.safetensors",
              metadata={"format": "pt"})
    task = create_task(DataConfig())
    task.label_names = ["neg", "pos"]
    notices = check_weights_match(load_model(ModelConfig(source=str(model_dir)), task), model_dir)
    assert len(notices) == 1 and f"{len(dropped)} pretrained weight(s)" in notices[0]
    assert "encoder.layer.1.output.dense" in notices[0]
    assert check_weights_match(load_model(ModelConfig(source=str(tiny_model_dir)), task), tiny_model_dir) == []


def test_ragged_rows_batch_like_the_lists_they_replace():
    import numpy as np

    from pretune.data.encode import EncodedSplit, collate, lengths_of
    from pretune.data.ragged import RaggedRows

    rows = [[101, 7, 102], [101, 102], [101, 5, 6, 9, 102]]
    parts = [RaggedRows.from_lists(rows[:2]), RaggedRows.from_lists(rows[2:])]
    ragged = RaggedRows.concat(parts)
    assert ragged.tolist() == rows and len(ragged) == 3 and ragged[-1].tolist() == rows[-1]
    plain = EncodedSplit({"input_ids": rows}, np.array([0, 1, 0]), lengths_of({"input_ids": rows}))
    packed = EncodedSplit({"input_ids": ragged}, np.array([0, 1, 0]), lengths_of({"input_ids": ragged}))
    for name, tensor in collate(plain, [2, 0], 0).items():
        assert collate(packed, [2, 0], 0)[name].tolist() == tensor.tolist()
    assert RaggedRows.concat([]).tolist() == []
