"""Text-pair classification, added to pretune as one file (src/pretune/tasks/pair.py): two text
columns read with the tokenizer's pair encoding, through fit, eval, predict, serve (a real HTTP
server), the report, the model card and `compress` with quantize.

The label is decided by the second text alone and the first is filler, so a model that learns
has read the pair; the encoding's token_type_ids show the second segment is marked as such."""

from __future__ import annotations

import json
import random

import httpx
import pandas as pd
import pytest
from huggingface_hub import ModelCard

import pretune
from pretune import PretuneError
from tests.conftest import FILLER, NEGATIVE, POSITIVE, tiny_recipe

TASK = "text-pair-classification"
FAST = ["compress.measure.isolate=false", "compress.measure.samples=8", "compress.measure.repeats=1"]
PREMISES = ["the film was shown today", "a movie about a plot", "the actor and its story"]
HYPOTHESES = ["superb brilliant film", "awful dull plot", "lovely warm story"]
EXPECTED = ["yes", "no", "yes"]


def pair_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """premise: filler words; hypothesis: sentiment words with filler; label: the hypothesis's."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "yes" if i % 2 == 0 else "no"
        words = rng.sample(POSITIVE if label == "yes" else NEGATIVE, 2) + rng.sample(FILLER, rng.randint(1, 4))
        rng.shuffle(words)
        rows.append({"premise": " ".join(rng.sample(FILLER, rng.randint(3, 7))), "hypothesis": " ".join(words),
                     "entails": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("pairs")
    pair_frame(240).to_csv(root / "pairs.csv", index=False)
    recipe = tiny_recipe(tiny_model_dir, root / "pairs.csv") | {"report": True}
    recipe["data"] |= {"task": TASK, "text_column": "premise", "text_pair_column": "hypothesis",
                       "label_column": "entails"}
    return pretune.fit(recipe, root / "run", quiet=True)


def test_the_pair_column_has_a_default_and_the_pair_encoding_marks_the_second_text(tiny_model_dir):
    from transformers import AutoTokenizer

    from pretune.tasks import create_task

    data = pretune.Recipe.from_dict({"data": {"task": TASK}}).data
    assert (data.text_column, data.text_pair_column, data.label_column) == ("text", "text_pair", "label")
    task = create_task(data)
    split = task.encode(task.unlabelled(["a b"], ["c d e"]), AutoTokenizer.from_pretrained(tiny_model_dir), 32)
    assert list(split.features["token_type_ids"][0]) == [0, 0, 0, 0, 1, 1, 1, 1]  # [CLS] a b [SEP] | c d e [SEP]


def test_fit_learns_from_the_second_text_and_eval_and_predict_take_pairs(run, tmp_path):
    assert run.metrics["status"] == "completed" and run.metrics["task"] == TASK
    assert run.metrics["test"]["accuracy"] >= 0.8
    pair_frame(40, seed=9).to_csv(tmp_path / "more.csv", index=False)
    assert pretune.evaluate(run, tmp_path / "more.csv")["accuracy"] >= 0.8
    out = pretune.predict(run, PREMISES, HYPOTHESES)
    assert [o["label"] for o in out] == EXPECTED
    with pytest.raises(PretuneError, match="reads pairs of texts"):
        pretune.predict(run, PREMISES)


def test_serving_takes_text_and_text_pair(run):
    from tests.test_serve import served

    expected = pretune.predict(run, PREMISES, HYPOTHESES)
    with served(run) as address:
        client = httpx.Client(base_url=f"http://{address}")
        meta = client.get(f"/v2/models/{run.path.name}").json()
        assert [i["name"] for i in meta["inputs"]] == ["text", "text_pair"]
        body = client.post(f"/v2/models/{run.path.name}/infer", json={"inputs": [
            {"name": "text", "shape": [3], "datatype": "BYTES", "data": PREMISES},
            {"name": "text_pair", "shape": [3], "datatype": "BYTES", "data": HYPOTHESES}]}).json()
        labels = next(o for o in body["outputs"] if o["name"] == "label")["data"]
        assert labels == EXPECTED
        answer = client.post("/predict", json={"inputs": [{"text": p, "text_pair": h} for p, h in
                                                          zip(PREMISES, HYPOTHESES, strict=True)]}).json()
        assert [a["label"] for a in answer] == EXPECTED
        assert [a["score"] for a in answer] == pytest.approx([e["score"] for e in expected], abs=1e-5)
        refused = client.post("/predict", json={"inputs": PREMISES})
        assert refused.status_code == 400 and "text_pair" in refused.json()["error"]


def test_report_and_card_show_pairs(run, capsys):
    rows = [json.loads(line) for line in (run.path / "predictions" / "test.jsonl").read_text().splitlines()]
    assert rows and " [SEP] " in rows[0]["text"] and {"true", "pred", "score"} <= set(rows[0])
    assert "Confusion matrix" in (run.path / "report.html").read_text()
    card = ModelCard.load(run.model_path / "README.md")
    assert card.data.pipeline_tag == "text-classification" and TASK in card.data.tags
    blocks = card.text.split("```python\n")[1:]
    assert len(blocks) == 2  # pretune's loader and transformers' own, each with a pair
    for block in blocks:
        exec(compile(block.split("```")[0], "README.md", "exec"), {})
    assert "'label':" in capsys.readouterr().out


def test_compress_quantize_keeps_reading_pairs(run, tmp_path):
    compression = pretune.compress(run, "quantize", out=tmp_path / "q", overrides=FAST)
    variant = compression.variants[0]
    assert compression.rows[1]["accuracy"] >= 0.7
    assert [o["label"] for o in variant.predict(PREMISES, HYPOTHESES)] == EXPECTED
    assert TASK in ModelCard.load(variant.model_path / "README.md").data.tags
