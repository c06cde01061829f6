"""A task defined here, in the user's own module, registered through the public registry and
nowhere in pretune: fit, eval, predict, serve (a real HTTP server), report, the model card and
`compress` with quantize all work with it, because every one of them asks the task what to do
and none compares its name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from huggingface_hub import ModelCard

import pretune
from pretune.recipe import TASK_FACTS
from pretune.tasks import create_task, tasks
from pretune.tasks.sequence import SequenceClassification
from tests.conftest import pretune_cli, sentiment_frame, tiny_recipe

NAME = "review-sentiment-with-margin"
FAST = ["compress.measure.isolate=false", "compress.measure.samples=8", "compress.measure.repeats=1"]


class ReviewSentiment(SequenceClassification):
    """Sequence classification over `review` / `stars` columns whose answers also carry the margin
    between the two best labels, served as its own output, with both labels ranked in each /predict
answer."""

    text_column, label_column = "review", "stars"
    oip_outputs = (*SequenceClassification.oip_outputs, ("margin", "FP32"))
    pipeline_top_k, pipeline_flat = 2, False
    card_limitation = "Reads English film reviews only; its margin is no calibrated probability."

    def decode(self, outputs, split, table):
        results = super().decode(outputs, split, table)
        for result in results:
            best, second = sorted(result["scores"].values(), reverse=True)[:2]
            result["margin"] = best - second
        return results


@pytest.fixture(scope="module")
def registered():
    """The user's `tasks.register(NAME)(ReviewSentiment)`, taken back afterwards so the rest of the
    suite sees the built-in tasks only."""
    tasks.register(NAME)(ReviewSentiment)
    yield ReviewSentiment
    tasks._entries.pop(NAME)
    TASK_FACTS.pop(NAME)


@pytest.fixture(scope="module")
def run(registered, tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("user-task")
    frame = sentiment_frame(240).rename(columns={"text": "review", "label": "stars"})
    frame.to_csv(root / "reviews.csv", index=False)
    recipe = tiny_recipe(tiny_model_dir, root / "reviews.csv") | {"report": True}
    recipe["data"]["task"] = NAME  # no column named: the task's own defaults fill them
    return pretune.fit(recipe, root / "run", quiet=True)


def test_a_registered_task_gets_its_name_and_column_defaults(registered):
    assert tasks.get(NAME) is ReviewSentiment and ReviewSentiment.name == NAME
    assert NAME in tasks.available()
    recipe = pretune.Recipe.from_dict({"data": {"task": NAME}})
    assert (recipe.data.text_column, recipe.data.label_column) == ("review", "stars")
    assert isinstance(create_task(recipe.data), ReviewSentiment)


def test_fit_eval_and_predict_use_the_users_task(run, tmp_path):
    assert run.metrics["status"] == "completed" and run.metrics["task"] == NAME
    assert run.metrics["test"]["accuracy"] >= 0.8  # it learned: the words decide the label
    table = sentiment_frame(40, seed=5).rename(columns={"text": "review", "label": "stars"})
    table.to_csv(tmp_path / "more.csv", index=False)
    assert pretune.evaluate(run, tmp_path / "more.csv")["accuracy"] >= 0.8
    out = pretune.predict(run, ["superb brilliant film", "awful dull plot"])
    assert [o["label"] for o in out] == ["pos", "neg"]
    assert all(o["margin"] == pytest.approx(abs(o["scores"]["pos"] - o["scores"]["neg"])) for o in out)


def test_serving_answers_with_the_tasks_outputs(run):
    from tests.test_serve import served

    texts = ["superb brilliant film", "awful dull plot"]
    expected = pretune.predict(run, texts)
    with served(run) as address:
        client = httpx.Client(base_url=f"http://{address}")
        meta = client.get(f"/v2/models/{run.path.name}").json()
        assert meta["parameters"]["task"] == NAME
        assert [o["name"] for o in meta["outputs"]] == ["label", "score", "scores", "margin"]
        body = client.post(f"/v2/models/{run.path.name}/infer", json={"inputs": [
            {"name": "text", "shape": [2], "datatype": "BYTES", "data": texts}]}).json()
        margin = next(o for o in body["outputs"] if o["name"] == "margin")
        assert margin["data"] == pytest.approx([e["margin"] for e in expected], abs=1e-5)
        # pipeline_top_k 2: each input's /predict answer ranks both labels.
        answer = client.post("/predict", json={"inputs": texts}).json()
        assert [[a["label"] for a in one] for one in answer] == [["pos", "neg"], ["neg", "pos"]]


def test_report_and_card_come_from_the_task(run, capsys):
    rows = [json.loads(line) for line in (run.path / "predictions" / "test.jsonl").read_text().splitlines()]
    assert rows and {"text", "true", "pred", "score"} <= set(rows[0])
    page = (run.path / "report.html").read_text()
    assert NAME in page and ("Most confidently wrong" in page or "Every test example shown" in page)
    card = ModelCard.load(run.model_path / "README.md")
    assert card.data.pipeline_tag == "text-classification" and NAME in card.data.tags
    assert ReviewSentiment.card_limitation in card.text
    pretune_block = card.text.split("```python\n")[1].split("```")[0]
    exec(compile(pretune_block, "README.md", "exec"), {})
    assert "'margin':" in capsys.readouterr().out


def test_compress_quantize_keeps_the_task(run, tmp_path):
    compression = pretune.compress(run, "quantize", out=tmp_path / "q", overrides=FAST)
    variant = compression.variants[0]
    assert variant.recipe.data.task == NAME
    assert compression.rows[1]["accuracy"] >= 0.7
    out = variant.predict(["superb brilliant film"])
    assert out[0]["label"] == "pos" and "margin" in out[0]
    card = ModelCard.load(variant.model_path / "README.md")
    assert ReviewSentiment.card_limitation in card.text and "compress-quantize" in card.data.tags
    assert np.isfinite(out[0]["margin"])


def test_a_report_reads_a_run_whose_task_this_process_never_registered(run, tmp_path, monkeypatch):
    """report only reads directories: a run of a task whose module is not imported still gets its
    page and card, with the base task's defaults."""
    from pretune.report.cards import write_card

    monkeypatch.delitem(tasks._entries, NAME)
    page = pretune.report(run.path, tmp_path / "page.html").read_text()
    assert NAME in page and "Metrics" in page
    card = ModelCard.load(write_card(run))
    assert card.data.pipeline_tag == "text-classification" and NAME in card.data.tags


def test_the_command_line_loads_an_installed_task_from_its_entry_point(run, tmp_path):
    """`pretune` imports nothing of the user's: an installed package names its task in the
    `pretune.tasks` entry-point group (here a package's metadata on the path, pointing at the
    class above), and the command line predicts with it."""
    dist = tmp_path / "review_tasks-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: review-tasks\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[pretune.tasks]\n{NAME} = tests.test_user_task:ReviewSentiment\n")
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(tmp_path), str(root), str(root / "src"), os.environ.get("PYTHONPATH", "")])
    proc = pretune_cli("predict", run.path, "--text", "superb brilliant film", env={"PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr[-2000:]
    answer = json.loads(proc.stdout.splitlines()[0])
    assert answer["label"] == "pos" and answer["margin"] > 0
