"""pretune report, runs and compare: the pages a fit, a NER fit, an image fit, a study, a compression
and a comparison write, read as files and opened in a real headless Chromium as a person would.

One module fixture makes every directory once, on tiny random models and small data."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

import pretune
from tests.conftest import pretune_cli, sentiment_frame, tiny_recipe

SCRIPT_LABEL = "<script>alert(1)</script>"
FAST = ["compress.measure.isolate=false", "compress.measure.samples=8", "compress.measure.repeats=1"]
HEADINGS = {"run": ["Metrics", "Learning curves", "Errors", "Recipe"], "study": ["Trials", "Study charts", "Recipe"],
            "compression": ["Variants"], "comparison": ["Recipe differences", "Metrics side by side",
                                                        "Learning curves, overlaid"]}


@pytest.fixture(scope="module")
def made(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """Each kind of report, written as the verbs write them (the comparison by `pretune.report`)."""
    from tests.conftest import shapes_frame, tagged_frame

    root = tmp_path_factory.mktemp("reports")
    frame = sentiment_frame(96)
    frame.loc[frame.label == "neg", "label"] = SCRIPT_LABEL  # a label that must stay text on every page
    frame.to_csv(root / "data.csv", index=False)
    text = tiny_recipe(tiny_model_dir, root / "data.csv", epochs=2, eval_every_steps=2, keep_best="accuracy",
                       log_every_steps=1) | {"report": True}
    out = {"text": pretune.fit(text, root / "text", quiet=True).path}
    other = tiny_recipe(tiny_model_dir, root / "data.csv", max_steps=4, optimizer={"lr": 1e-3}, log_every_steps=1)
    out["plain"] = pretune.fit(other, root / "plain", quiet=True, report=False).path
    ner = tiny_recipe(tiny_model_dir, root / "unused.csv", epochs=1, log_every_steps=1)
    ner["data"], ner["report"] = {"task": "token-classification", "max_length": 32}, True
    out["ner"] = pretune.fit(ner, root / "ner", data=tagged_frame(120), quiet=True).path
    from transformers import ResNetConfig, ResNetForImageClassification

    ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                                              layer_type="basic", num_labels=5)).save_pretrained(root / "resnet")
    image = {"seed": 3, "model": {"source": str(root / "resnet")},
             "data": {"task": "image-classification", "image_size": 32},
             "train": {"epochs": 1, "batch_size": 16, "checkpoint_every_steps": None, "mixed_precision": "no",
                       "log_every_steps": 1}}
    images = {"train": shapes_frame(48), "validation": shapes_frame(16, seed=1), "test": shapes_frame(24, seed=2)}
    out["image"] = pretune.fit(image, root / "image", data=images, quiet=True).path
    study = tiny_recipe(tiny_model_dir, root / "data.csv", max_steps=4) | {"report": True}
    study["search"] = {"space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]},
                                 "strategy.name": {"choice": ["full", "bitfit"]}},
                       "evaluations": 2, "startup_trials": 1, "trials": 3, "pruner": "none"}
    out["study"] = pretune.search(study, root / "study").path
    out["compression"] = pretune.compress(out["text"], "trim-vocab", out=root / "compression", overrides=FAST,
                                          max_drop=5.0).path
    out["comparison"] = pretune.report([out["text"], out["plain"]], root / "comparison.html")
    return out


def page_of(made, kind: str) -> Path:
    return made[kind] if kind == "comparison" else made[kind] / "report.html"


def figures_of(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="pretune-figures">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_a_fit_writes_its_report_with_predictions_and_machine(made):
    run = pretune.load_run(made["text"])
    html = (run.path / "report.html").read_text()
    assert (run.path / "report.html").stat().st_size < 3_000_000
    predictions = [json.loads(line) for line in (run.path / "predictions" / "test.jsonl").read_text().splitlines()]
    assert len(predictions) == run.metrics["test"]["samples"]
    assert {p["true"] for p in predictions} == {"pos", SCRIPT_LABEL}
    assert sum(p["true"] == p["pred"] for p in predictions) / len(predictions) == pytest.approx(
        run.metrics["test"]["accuracy"])  # the same model, the same test rows as fit's own test pass
    environment = json.loads((run.path / "environment.json").read_text())
    assert environment["versions"]["torch"].startswith("2.") and environment["cores"] >= 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT_LABEL not in html
    figures = figures_of(html)
    assert {"confusion_matrix", "reliability", "curve_loss", "curve_validation", "curve_lr"} <= set(figures)
    assert figures["confusion_matrix"]["counts"] == run.metrics["test"]["confusion_matrix"]
    validation_steps = {r["step"] for r in run.history if r["split"] == "validation"}
    assert len(validation_steps) >= 5 and run.metrics["train"]["best_step"] in validation_steps
    assert "kept: step" in html or f"step {run.metrics['train']['best_step']}" in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "nothing may be fetched"


def test_no_report_leaves_none_and_every_kind_has_one(made):
    assert not (made["plain"] / "report.html").exists()
    assert (made["plain"] / "predictions" / "test.jsonl").is_file()
    for kind in ("ner", "image", "study", "compression"):
        assert page_of(made, kind).is_file(), kind
    assert not list(made["study"].glob("trial-*/report.html")), "search trials never write a report"
    ner = (made["ner"] / "report.html").read_text()
    assert "Per entity type" in ner and ("differ from the gold" in ner or "exactly its gold tags" in ner)
    assert "Misclassified test images" in (made["image"] / "report.html").read_text() or \
        pretune.load_run(made["image"]).metrics["test"]["accuracy"] == 1.0
    compression = (made["compression"] / "report.html").read_text()
    assert "trim-vocab" in compression and "pareto" in figures_of(compression)
    study = (made["study"] / "report.html").read_text()
    assert {"history", "parallel", "param_vs_metric"} <= set(figures_of(study))


def test_recipe_report_false_turns_the_page_off(made, tiny_model_dir, tmp_path):
    recipe = tiny_recipe(tiny_model_dir, made["text"].parent / "data.csv", max_steps=2)
    recipe["report"] = False
    run = pretune.fit(recipe, tmp_path / "off", quiet=True)
    assert run.status == "completed" and not (run.path / "report.html").exists()


def cli(capsys, *args) -> tuple[int, str, str]:
    """The `pretune` command in this process (a fresh interpreter per call costs seconds of imports;
    one test below runs the real process): exit code, stdout, stderr."""
    from unittest import mock

    from pretune.cli.main import run

    with mock.patch.object(sys, "argv", ["pretune", *map(str, args)]):
        try:
            run()
            code = 0
        except SystemExit as e:
            code = e.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(result, message):
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, result
    assert message in lines[0], lines[0]


def test_report_command_rewrites_a_page(made, tmp_path):
    proc = pretune_cli("report", made["ner"], "--out", tmp_path / "ner.html")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "ner.html") and (tmp_path / "ner.html").stat().st_size > 10_000


def test_bad_input_is_one_line_and_exit_2(made, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli(capsys, "report", tmp_path / "empty"),
                          "is not a run, a study, a compression or a pipeline")
    assert_one_line_error(cli(capsys, "report", tmp_path / "nowhere"), "no such directory")
    assert_one_line_error(cli(capsys, "report", made["ner"], "--out", tmp_path / "no" / "such" / "r.html"),
                          "does not exist")
    assert_one_line_error(cli(capsys, "report", made["text"], made["study"]), "several paths make a comparison")
    assert_one_line_error(cli(capsys, "compare", made["text"], made["study"]), "not a run")
    assert_one_line_error(cli(capsys, "compare", made["text"]), "two or more")
    assert_one_line_error(cli(capsys, "runs", tmp_path / "nowhere"), "no such directory")
    assert not (tmp_path / "no").exists()


def test_an_unfinished_run_is_reported_as_unfinished(made, tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(made["text"] / "recipe.yaml", half)
    lines = (made["text"] / "metrics.jsonl").read_text().splitlines()
    (half / "metrics.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    html = pretune.report(half).read_text()
    assert 'class="status status-unfinished"' in html and "Learning curves" in html and "Metrics" not in html


def test_runs_lists_sorts_and_compare_diffs(made, tmp_path, capsys):
    root = made["text"].parent
    listed = json.loads(cli(capsys, "runs", root, "--json")[1])
    names = {Path(r["name"]).name for r in listed}
    assert {"text", "plain", "ner", "image", "trial-0000", "trim-vocab"} <= names
    text = next(r for r in listed if Path(r["name"]).name == "text")
    assert text["status"] == "completed" and text["metric"] == "accuracy" and text["split"] == "test"
    assert text["value"] == pytest.approx(pretune.load_run(made["text"]).metrics["test"]["accuracy"])
    ranked = json.loads(cli(capsys, "runs", root, "--json", "--sort", "train_seconds")[1])
    seconds = [r["train_seconds"] for r in ranked if r["train_seconds"] is not None]
    assert len(seconds) >= 6 and seconds == sorted(seconds)
    by_accuracy = json.loads(cli(capsys, "runs", root, "--json", "--sort", "accuracy")[1])
    scored = [r["test"].get("accuracy", r["validation"].get("accuracy")) for r in by_accuracy]
    scored = [v for v in scored if v is not None]
    assert scored == sorted(scored, reverse=True)
    code, table, _ = cli(capsys, "runs", root, "--sort", "accuracy")
    assert code == 0 and "token-classification" in table and "image-classification" in table
    assert_one_line_error(cli(capsys, "runs", root, "--sort", "nonsense"), "no run has that metric")
    code, printed, err = cli(capsys, "compare", made["text"], made["plain"], "--out", tmp_path / "cmp.html")
    assert code == 0, err
    assert "train.optimizer.lr" in printed and "train.max_steps" in printed
    assert "test accuracy" in printed and "data.source" not in printed  # differences only
    html = (tmp_path / "cmp.html").read_text()
    assert "Learning curves, overlaid" in html and "overlaid" in figures_of(html)


# -- in a real browser ---------------------------------------------------------------------------

def chromium():
    """Playwright driving Debian's Chromium; absent locally: skip, but under CI=true: fail."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not Path(path).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the report tests need playwright and Debian's chromium (.ci/run installs them)")
        pytest.skip("playwright or chromium not installed")
    return sync_playwright, path


@pytest.fixture(scope="module")
def browser():
    sync_playwright, path = chromium()
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.mark.parametrize("kind", ["text", "ner", "image", "study", "compression", "comparison"])
def test_each_report_in_chromium(made, browser, kind, tmp_path):
    from PIL import Image, ImageStat

    file = page_of(made, kind)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests, dialogs = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(file.as_uri())
    page.wait_for_load_state("load")
    assert errors == [] and dialogs == []
    assert requests == [file.as_uri()], requests
    headings = page.locator("h2").all_inner_texts()
    expected = HEADINGS["run" if kind in ("text", "ner", "image") else kind]
    assert all(h in headings for h in expected if not (h == "Errors" and kind == "ner")), headings
    images = page.evaluate("""Array.from(document.images).map(i => ({w: i.naturalWidth, h: i.naturalHeight,
        box: i.getBoundingClientRect().width * i.getBoundingClientRect().height, done: i.complete}))""")
    assert images and all(i["done"] and i["w"] > 0 and i["h"] > 0 and i["box"] > 0 for i in images), images
    if kind == "text":
        assert SCRIPT_LABEL in page.inner_text("body")  # shown, as text
        assert page.evaluate("document.querySelectorAll('script').length") == 2  # the figures' JSON and ours
    shot = tmp_path / "shot.png"
    page.screenshot(path=str(shot))
    stat = ImageStat.Stat(Image.open(shot).convert("L"))
    assert stat.stddev[0] > 20, "a blank screenshot"
    page.close()


def test_trials_table_sorts_when_its_header_is_clicked(made, browser):
    page = browser.new_page()
    page.goto((made["study"] / "report.html").as_uri())
    table = page.locator("section#trials table.sortable")

    def column(name):
        index = table.locator("th").all_inner_texts().index(name)
        return [float(t) for t in table.locator(f"tbody tr td:nth-child({index + 1})").all_inner_texts()]

    header = table.locator("th", has_text="train.optimizer.lr")
    header.click()
    ascending = column("train.optimizer.lr")
    assert ascending == sorted(ascending) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert column("train.optimizer.lr") == sorted(ascending, reverse=True)
    table.locator("th", has_text="number").click()
    assert column("number") == [0.0, 1.0, 2.0]
    page.close()
