"""Every file pretune reads back from a directory someone may have sent (runs/readers.py): checked
against the shape pretune writes, a mismatch one line naming the file and the field, a path
recorded inside a state file never followed out of its directory, every name escaped where it
is printed, and state that lies (an edited checkpoint) refused before it is used. Fabricated
directories in pretune's own shape: no fit, so the random-value test stays under a minute."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pretune import PretuneError, atomic, runs
from pretune.cli.main import app
from pretune.recipe import Recipe

LABELS = ["neg", "pos"]
SPLIT = {"samples": 4, "loss": 0.69, "accuracy": 0.5, "f1_macro": 0.33,
         "per_class": {k: {"precision": 0.5, "recall": 1.0, "f1": 0.66, "support": 2} for k in LABELS},
         "confusion_matrix": [[0, 2], [0, 2]]}
METRICS = {"status": "completed", "task": "sequence-classification",
           "train": {"loss": 0.69, "steps": 4, "total_steps": 4, "epochs": 0.33, "train_seconds": 1.5,
                     "train_samples_per_second": 40.0, "samples": 16, "stop_reason": None},
           "validation": SPLIT, "test": SPLIT,
           "model": {"source": "minilm-l6", "labels": LABELS, "parameters": 1000, "trainable": 1000,
                     "changes": [{"change": "pretrained", "parameters": 1000, "trainable": 1000}]}}
HISTORY = [{"split": "train", "step": 2, "epoch": 0.2, "loss": 0.7, "lr": 1e-4},
           {"split": "validation", "step": 4, "epoch": 0.33, "loss": 0.69, "accuracy": 0.5}]
PREDICTIONS = [{"text": "good film", "true": "pos", "pred": "pos", "score": 0.6},
               {"text": "dull plot", "true": "neg", "pred": "pos", "score": 0.55}]
ENVIRONMENT = {"cpu": "x86", "cpu_flags": ["avx2"], "cores": 2, "gpu": None, "python": "3.11",
               "platform": "Linux", "versions": {"torch": "2"}}
ROW = {"backend": "torch-fp32", "throughput": 100.0, "latency_ms_p50": 2.0, "latency_ms_p95": 3.0,
       "size_mb": 4.0, "accuracy": 0.5, "validation_accuracy": 0.5}
# compression.json as pretune wrote it before each fact was stored once (chosen / message / steps
# beside choice, each row's chosen flag): still read, and reported.
OLD_COMPRESSION = {"original": "run", "steps": ["quantize"], "max_drop": 1.0, "chosen": "quantize",
                   "message": "quantize: 2.00x faster within 1.0 points", "chosen_on": "validation",
                   "rows": [{"name": "run", **ROW, "chosen": False},
                            {"name": "quantize", **ROW, "backend": "onnx-int8", "throughput": 200.0,
                             "latency_ms_p50": 1.0, "size_mb": 1.0, "chosen": True}]}
STUDY = {"metrics": ["accuracy"], "directions": ["maximize"], "trials": {"COMPLETE": 2},
         "space": {"train.optimizer.lr": {"choice": [1e-4, 1e-3]}},
         "best": {"number": 1, "values": {"accuracy": 0.6}, "params": {"train.optimizer.lr": 1e-3}}}
TRIALS = "number,state,accuracy,train.optimizer.lr,run\n0,COMPLETE,0.5,0.0001,trial-0\n1,COMPLETE,0.6,0.001,trial-1\n"


def write_run(path: Path, metrics: dict | None = None) -> Path:
    (path / "predictions").mkdir(parents=True)
    recipe = Recipe.from_dict({"model": {"source": "minilm-l6"}, "data": {"source": "rotten-tomatoes"}})
    (path / runs.RECIPE).write_text(recipe.to_yaml())
    (path / runs.METRICS).write_text(json.dumps(metrics or METRICS))
    (path / runs.HISTORY).write_text("".join(json.dumps(r) + "\n" for r in HISTORY))
    (path / runs.PREDICTIONS).write_text("".join(json.dumps(r) + "\n" for r in PREDICTIONS))
    (path / runs.ENVIRONMENT).write_text(json.dumps(ENVIRONMENT))
    return path


def write_compression(path: Path, table: dict) -> Path:
    write_run(path / "quantize", {k: v for k, v in METRICS.items() if k != "train"})
    (path / runs.COMPRESSION).write_text(json.dumps(table))
    return path


def write_pipeline(path: Path) -> Path:
    write_run(path / "fit")
    write_compression(path / "compress", OLD_COMPRESSION)
    (path / runs.RECIPE).write_text("model: {source: minilm-l6}\ndata: {source: rotten-tomatoes}\n")
    (path / runs.PIPELINE).write_text(json.dumps({
        "stages": {"search": {"status": "skipped", "made": "no search"},
                   "fit": {"status": "completed", "seconds": 2.0, "attempts": 1, "path": str(path / "fit"),
                           "made": "4 steps"},
                   "compress": {"status": "completed", "seconds": 1.0, "attempts": 1, "path": str(path / "compress"),
                                "made": "1 variants", "chosen": "quantize"}},
        "fit_overrides": [], "order": ["fit", "compress", "report", "release"]}))
    return path


def write_study(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / runs.STUDY).write_text(json.dumps(STUDY))
    (path / runs.TRIALS).write_text(TRIALS)
    (path / runs.RECIPE).write_text("model: {source: minilm-l6}\n")
    return path


def cli(*args) -> tuple[int, str]:
    """Exit code and output; a PretuneError is the one line `pretune` prints (exit 2)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if isinstance(result.exception, PretuneError):
        return 2, str(result.exception)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_an_earlier_compression_table_still_reports(tmp_path):
    c = write_compression(tmp_path / "c", OLD_COMPRESSION)
    table = runs.read_compression(c)
    assert table["choice"] == {"name": "quantize", "reason": OLD_COMPRESSION["message"]}
    assert table["steps"] == ["quantize"] and table["variants"] == [["quantize"]]
    assert [r["chosen"] for r in table["rows"]] == [False, True]
    assert table["chosen_run"] == str(c / "quantize")
    code, out = cli("report", c)
    assert code == 0, out
    page = (c / runs.REPORT).read_text()
    assert OLD_COMPRESSION["message"] in page and "quantize" in page


def test_a_javascript_trial_link_is_never_an_href(tmp_path):
    from pretune.report.page import local_link

    assert local_link("trial-1/report.html") == "trial-1/report.html"
    for bad in ("javascript:alert(1)", "JavaScript:x/report.html", "/etc/passwd", "../other/report.html",
                "trial/../../x", "a\nb", "data:text/html,x", "\\\\host\\share", "//host/x"):
        assert local_link(bad) is None, bad
    s = write_study(tmp_path / "s")
    trials = TRIALS.replace("trial-1", "javascript:alert(1)")
    (s / runs.TRIALS).write_text(trials)
    (s / "javascript:alert(1)").mkdir()  # a trial directory of that name, with a page: the link it would make
    (s / "javascript:alert(1)" / runs.REPORT).write_text("<p>x</p>")
    write_run(s / "trial-0")
    (s / "trial-0" / runs.REPORT).write_text("<p>x</p>")
    code, out = cli("report", s)
    assert code == 0, out
    page = (s / runs.REPORT).read_text()
    assert 'href="trial-0/report.html"' in page and "javascript:" not in page.split("<script")[0].lower().replace(
        "javascript:alert(1)</td>", "")


def test_names_with_markup_and_control_characters_are_printed_as_given(tmp_path):
    write_run(tmp_path / "r[" / "]x")  # a run called r[/]x: rich once read '[/]' as a closing tag
    write_run(tmp_path / "bell\x07[bold]")
    code, out = cli("runs", tmp_path)
    assert code == 0, out
    assert "r[/]x" in out and "bell\\x07[bold]" in out and "\x07" not in out
    other = write_run(tmp_path / "other")
    recipe = (other / runs.RECIPE).read_text().replace("text_column: text", "text_column: '[red]x[/]'")
    (other / runs.RECIPE).write_text(recipe)
    code, out = cli("compare", tmp_path / "r[" / "]x", other)
    assert code == 0, out
    assert "[red]x[/]" in out


def test_an_edited_checkpoint_state_is_refused_before_a_resume_uses_it(tmp_path):
    import torch

    from pretune.recipe import ScheduleConfig
    from pretune.train.checkpoints import CHECKSUMS, STATE, _sha256, resume_checkpoint, save_checkpoint
    from pretune.train.schedules import create_scheduler

    def parts():
        model = torch.nn.Linear(2, 2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        return model, optimizer, create_scheduler(optimizer, ScheduleConfig(), 20)

    loop = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "samples_seen": 0, "train_seconds": 0.0, "loss_sum": 0.0,
            "loss_count": 0, "last_loss": None, "lr": 0.01, "last_eval": {}, "history": []}
    run = {"total_steps": 20, "epochs": 2}
    for step in (2, 4):
        save_checkpoint(tmp_path, step, *parts(), {"loop": {**loop, "step": step, "epoch": 1}}, "seed: 1\n", 3)
    newest = tmp_path / "step-0000004"
    for edit, why in (({"step": 10**9}, "is not the checkpoint's step 4"), ({"epoch": -5}, "loop.epoch"),
                      ({"epoch": 7}, "exceeds the run's 2 epochs"), ({"history": [{"step": 9, "split": "train"}]},
                                                                     "after the checkpoint's step")):
        state = json.loads((newest / STATE).read_text())
        state["loop"].update(edit)
        (newest / STATE).write_text(json.dumps(state))
        sums = json.loads((newest / CHECKSUMS).read_text())  # the editor recomputes the checksum too
        (newest / CHECKSUMS).write_text(json.dumps({**sums, STATE: _sha256(newest / STATE)}))
        path, saved = resume_checkpoint(tmp_path, *parts(), run)
        assert path.name == "step-0000002" and saved["loop"]["step"] == 2, edit
        with pytest.raises(PretuneError, match=why):
            runs.check_checkpoint_state(newest / STATE, state, 4, **run)
        state["loop"].update(step=4, epoch=1, history=[])
        (newest / STATE).write_text(json.dumps(state))
    shutil.rmtree(tmp_path / "step-0000002")
    state["loop"]["step"] = 10**9
    (newest / STATE).write_text(json.dumps(state))
    (newest / CHECKSUMS).write_text(json.dumps({**sums, STATE: _sha256(newest / STATE)}))
    with pytest.raises(PretuneError, match="no intact checkpoint .* to fit the run afresh"):
        resume_checkpoint(tmp_path, *parts(), run)


def test_a_history_of_millions_of_epochs_draws_no_line_per_epoch():
    from pretune.plots import curves

    history = [{"split": "train", "step": s, "loss": 1.0 / s, "lr": 1e-4} for s in range(1, 11)]
    figures = curves.history_figures(history, 1.3e-7, None, [])  # 76,923,077 epochs in 10 steps
    assert figures
    for fig in figures.values():
        assert all(len(ax.lines) < 10 for ax in fig.axes)
    few = curves.history_figures(history, 2.0, None, [])  # 5 epochs: one dotted line each
    assert len(few["loss"].axes[0].lines) == 1 + 5


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_outputs_never_replace_what_is_not_a_regular_file(tmp_path):
    pipe, link, target = tmp_path / "pipe", tmp_path / "link.html", tmp_path / "elsewhere.html"
    os.mkfifo(pipe)
    target.write_text("mine")
    link.symlink_to(target)
    for path, what in ((pipe, "a device, pipe or socket"), (link, "a symbolic link")):
        with pytest.raises(PretuneError, match=f"cannot write {path}: it is {what}"):
            atomic.write_text(path, "x")
    assert pipe.is_fifo() and link.is_symlink() and target.read_text() == "mine"
    run = write_run(tmp_path / "r")
    code, out = cli("report", run, "--out", pipe)
    assert code == 2 and "is a device, pipe or socket" in out and pipe.is_fifo()


# Random JSON values, written over a whole state file or over one of its fields: `pretune report`
# (and `pipeline --resume`) answers with a page or with one line and exit 2, never a traceback.
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
                    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
TARGETS = {  # file (under the case's directory) -> dotted fields to replace; "" is the whole file
    "run/metrics.json": ["", "status", "task", "train", "train.steps", "train.epochs", "train.train_seconds",
                         "test", "test.accuracy", "test.confusion_matrix", "test.per_class", "model", "model.labels",
                         "model.parameters", "model.changes", "notices", "validation.per_class.neg"],
    "run/environment.json": ["", "cpu", "cpu_flags", "cores", "versions", "gpu"],
    "c/compression.json": ["", "original", "variants", "steps", "max_drop", "choice", "chosen", "message", "rows",
                           "rows.1", "rows.1.throughput", "rows.0.name", "tree"],
    "s/study.json": ["", "metrics", "directions", "trials", "space", "best", "best.values", "best.number"],
    "p/pipeline.json": ["", "stages", "stages.fit", "stages.fit.status", "stages.fit.path", "stages.compress.path",
                        "stages.fit.seconds", "order", "fit_overrides", "figures", "chosen"],
}
LINES = {"run/predictions/test.jsonl": ["", "text", "true", "pred", "score"],
         "run/metrics.jsonl": ["", "step", "split", "epoch", "loss"]}


@pytest.fixture(scope="module")
def directories(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run-files")
    write_run(root / "run")
    write_compression(root / "c", OLD_COMPRESSION)
    write_study(root / "s")
    write_pipeline(root / "p")
    return root


def _replace(value, dotted: str, new):
    if not dotted:
        return new
    head, _, rest = dotted.partition(".")
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        value[int(head)] = _replace(value[int(head)], rest, new)
    elif isinstance(value, dict):
        value[head] = _replace(value.get(head), rest, new) if rest else new
    return value


EXAMPLES = int(os.environ.get("RUN_FILES_EXAMPLES", 60))  # 400 pass too (about a minute)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from([(f, k) for f, keys in {**TARGETS, **LINES}.items() for k in keys]), JSON)
def test_random_values_in_any_state_file_are_one_line_never_a_traceback(directories, tmp_path_factory, target,
                                                                        value):
    import pretune.plots

    file, field = target
    work = tmp_path_factory.mktemp("case")
    for name in ("run", "c", "s", "p"):
        shutil.copytree(directories / name, work / name)
    path = work / file
    if file in LINES:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        rows[0] = _replace(rows[0], field, value)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(_replace(json.loads(path.read_text()), field, value)))
    original, pretune.plots.svg_bytes = pretune.plots.svg_bytes, _no_drawing
    try:
        code, out = cli("report", path.parent if file in TARGETS else work / "run")
    finally:
        pretune.plots.svg_bytes = original
    assert code in (0, 2), out
    if code == 2:
        assert "\n" not in out.strip() and (file.split("/")[-1] in out or "/" in out), out


def _no_drawing(fig) -> bytes:
    """The figure built (its data through matplotlib's calls) but not rendered: a fifth of the time."""
    import matplotlib.pyplot as plt

    plt.close(fig)
    return b"<svg/>"
