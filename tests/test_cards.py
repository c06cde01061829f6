"""Model cards: every saved model directory gets a Hugging Face card that `ModelCard.load` reads
back with its metadata, whose figures are the run's own, and whose code runs."""

import re

import pytest
from huggingface_hub import ModelCard

import pretune
from pretune.report import cards
from tests.conftest import tiny_recipe

FAST = ["compress.measure.isolate=false", "compress.measure.samples=16", "compress.measure.repeats=1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir, sentiment_csv):
    out = tmp_path_factory.mktemp("cards") / "run"
    return pretune.fit(tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2), out, quiet=True)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_fit_writes_a_card_that_loads_with_its_metadata(tiny_run):
    card = ModelCard.load(tiny_run.model_path / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert {"pretune", "sequence-classification", "strategy-full"} <= set(data.tags)
    assert data.base_model is None  # a local directory is no Hub id
    test = tiny_run.metrics["test"]
    results = {r.metric_type: r for r in data.eval_results}
    assert results["accuracy"].metric_value == pytest.approx(test["accuracy"])
    assert results["f1_macro"].metric_value == pytest.approx(test["f1_macro"])
    assert {r.dataset_split for r in data.eval_results} == {"test"}
    assert data.model_name == "run" and "samples" not in results
    for heading in ("## Training", "## Data", "## Metrics", "## Limitations", "## How to use"):
        assert heading in card.text
    assert "`pos`" in card.text and "`neg`" in card.text  # the labels
    assert f"{test['accuracy']:.4g}" in card.text


def test_the_cards_code_runs(tiny_run, capsys):
    blocks = python_blocks((tiny_run.model_path / "README.md").read_text())
    assert len(blocks) == 2, "pretune's loader and transformers' own"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "'label': 'pos'" in out or "'label': 'neg'" in out
    assert "'pos'" in out and "'neg'" in out  # id2label printed by the transformers block


def test_every_compressed_variant_gets_a_card_with_its_measurements(tiny_run, tmp_path, capsys):
    compression = pretune.compress(tiny_run, "export", out=tmp_path / "c", overrides=FAST)
    variant = compression.variants[0]
    card = ModelCard.load(variant.model_path / "README.md")
    assert card.data.library_name == "onnx"
    assert {"compress-export", "onnx", "strategy-full"} <= set(card.data.tags)
    row = compression.rows[1]
    assert "## Compression" in card.text and "Measured by `pretune measure`" in card.text
    assert f"| size on disk (MB) | {row['size_mb']:.4g} |" in card.text
    assert f"| latency p50, batch 1 (ms) | {row['latency_ms_p50']:.4g} |" in card.text
    assert cards.cpu() in card.text
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results["accuracy"] == pytest.approx(variant.metrics["test"]["accuracy"])
    blocks = python_blocks(card.text)
    assert len(blocks) == 2  # ONNX: pretune's loader, and ONNX Runtime with the saved tokenizer
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert "'label':" in capsys.readouterr().out
    exec(compile(blocks[1], "README.md", "exec"), {})
    predicted = capsys.readouterr().out.strip()
    assert predicted in ("[0]", "[1]")


def test_known_alias_gives_base_model_licence_and_dataset(tiny_run, monkeypatch, tmp_path):
    # The tiny model stands in for the bundled MiniLM: the card names the Hub id and licence.
    monkeypatch.setitem(cards.KNOWN_MODELS, tiny_run.recipe.model.source,
                        ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"))
    data = ModelCard.load(cards.write_card(tiny_run)).data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.license == "apache-2.0"
    assert data.datasets is None  # a local csv has no Hub name


def test_a_label_with_markup_stays_text(tmp_path, tiny_model_dir):
    import pandas as pd

    from tests.conftest import sentiment_frame

    frame = sentiment_frame(80).replace({"label": {"pos": "<b>pos|x</b>"}})
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    run = pretune.fit(tiny_recipe(tiny_model_dir, path, epochs=1), tmp_path / "run", quiet=True)
    text = (run.model_path / "README.md").read_text()
    assert "<b>" not in text and "&lt;b&gt;pos\\|x&lt;/b&gt;" in text
    assert pd.read_csv(path).shape[0] == 80


def test_search_best_trial_gets_a_card(tiny_model_dir, sentiment_csv, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1)
    recipe["search"] = {"space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]}}, "trials": 1,
                        "evaluations": 1, "pruner": "none", "metric": "loss"}
    study = pretune.search(recipe, tmp_path / "study")
    cards_written = sorted(p.parent.parent.name for p in study.path.glob("trial-*/model/README.md"))
    assert cards_written == [f"trial-{study.best_trial['number']:04d}"]
    card = ModelCard.load(study.best_run.model_path / "README.md")
    assert card.data.pipeline_tag == "text-classification"
