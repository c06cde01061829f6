"""The bad-input corpus: every file under tests/bad_inputs/ (one per command) lists cases, each a
command line, the input files it needs (written here from inline text) and the fragment of the
one line it must print. Each runs through the real CLI; most in-process (typer's CliRunner, the
same `app` that `python -m pretune` runs), the cases marked `subprocess: true` as a real process,
which proves the exit code 2, the single stderr line and the absent traceback.

A case's keys:
    id          a name for the test id
    args        the command line after `pretune`; {placeholders} below are filled in
    error       a fragment of the message it must produce
    tiny        true: prefix a fit's args with the tiny model, the sentiment table and a short fit
    files       {name: text} written under {tmp} first (latin1: the same, encoded latin-1)
    images      {name: [width, height]} PNG headers written under {tmp} (never decoded whole)
    copy        {placeholder: name}: copy a fixture's directory to {tmp}/name first
    overwrite   {path under {tmp}: text} written after the copies (a copied run's file replaced)
    truncate    [paths under {tmp}] cut to a tenth of their size
    edit_json   {path under {tmp}: {key: value}} merged into that JSON file
    usage       true: a command-line usage error (click's own report, several lines)
    subprocess  true: run `python -m pretune` in a child process
    keeps_out   true: the --out path may exist afterwards (it did before)

Placeholders: {tmp} (the case's own folder, also its working directory), {model} (a tiny
random BERT), {csv} (a labelled sentiment table), {run} (a fitted tiny text run), {ner_run} (a
fitted tiny tagger), {ner_train} (its CoNLL training file), {image_model} (a tiny ResNet),
{image_run} (a fitted tiny image run).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).parent / "bad_inputs"
TINY_FIT = ["--set", "model.source={model}", "--set", "data.source={csv}", "--set", "data.max_length=32",
            "--set", "train.max_steps=2", "--set", "train.batch_size=16", "--set", "train.checkpoint_every_steps=null",
            "--out", "{tmp}/out"]
PLACEHOLDERS = ("model", "csv", "run", "ner_run", "ner_train", "image_model", "image_run")
ENTITIES = [("Paris", "LOC"), ("Berlin", "LOC"), ("Anna", "PER"), ("Marco", "PER"), ("Acme", "ORG")]


def load_corpus() -> list:
    cases = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            cases.append(pytest.param(case, id=f"{path.stem}-{case['id']}"))
    return cases


def png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height pixels but holds almost no data: what a decompression
    bomb looks like to a reader that checks the header before it decodes. Small sizes: a real image."""
    if width * height <= 1 << 20:
        from PIL import Image

        Image.new("L", (width, height), 128).save(path)
        return

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def conll_text(n: int, seed: int = 0) -> str:
    import random

    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        name, kind = rng.choice(ENTITIES)
        words = [(w, "O") for w in rng.sample("the film was seen in by with and today".split(), 3)]
        words.insert(rng.randint(0, 3), (name, f"B-{kind}"))
        sentences.append("\n".join(f"{w}\t{t}" for w, t in words))
    return "\n\n".join(sentences) + "\n"


@pytest.fixture(scope="session")
def corpus_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad-inputs")


@pytest.fixture(scope="session")
def text_run(corpus_root, tiny_model_dir, sentiment_csv) -> Path:
    import pretune

    out = corpus_root / "text-run"
    pretune.fit({"seed": 1, "model": {"source": str(tiny_model_dir)},
                 "data": {"source": str(sentiment_csv), "max_length": 32},
                 "train": {"max_steps": 4, "batch_size": 16, "checkpoint_every_steps": None}},
                out, quiet=True, lean=False)
    return out


@pytest.fixture(scope="session")
def ner_train(corpus_root) -> Path:
    path = corpus_root / "ner.conll"
    path.write_text(conll_text(60))
    return path


@pytest.fixture(scope="session")
def ner_run(corpus_root, tiny_model_dir, ner_train) -> Path:
    import pretune

    out = corpus_root / "ner-run"
    pretune.fit({"seed": 1, "model": {"source": str(tiny_model_dir)},
                 "data": {"task": "token-classification", "source": str(ner_train), "max_length": 32},
                 "train": {"max_steps": 4, "batch_size": 16, "checkpoint_every_steps": None}},
                out, quiet=True)
    return out


@pytest.fixture(scope="session")
def image_model(corpus_root) -> Path:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    path = corpus_root / "tiny-resnet"
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=2)
    ResNetForImageClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def image_run(corpus_root, image_model) -> Path:
    import numpy as np
    from PIL import Image

    import pretune

    root = corpus_root / "shapes"
    rng = np.random.default_rng(0)
    for i in range(24):
        label = "dark" if i % 2 else "light"
        (root / label).mkdir(parents=True, exist_ok=True)
        value = 40 if label == "dark" else 210
        Image.fromarray((rng.integers(0, 30, (16, 16)) + value).astype("uint8")).save(root / label / f"{i}.png")
    out = corpus_root / "image-run"
    pretune.fit({"seed": 1, "model": {"source": str(image_model)},
                 "data": {"task": "image-classification", "source": str(root), "image_size": 32},
                 "train": {"max_steps": 2, "batch_size": 8, "checkpoint_every_steps": None,
                           "mixed_precision": "no"}},
                out, quiet=True)
    return out


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def run_in_process(args: list[str]) -> tuple[int, str]:
    """Exit code and what the user reads on stderr, the way `pretune.cli.main.run` reports it."""
    from typer.testing import CliRunner

    from pretune.cli.main import app
    from pretune.errors import PretuneError

    result = CliRunner().invoke(app, args)
    if isinstance(result.exception, PretuneError):
        return 2, f"pretune: error: {result.exception}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError("".join(traceback.format_exception(result.exception)))
    return result.exit_code, result.stderr


@pytest.mark.parametrize("case", load_corpus())
def test_bad_input_is_one_clear_line(case, request, tmp_path, monkeypatch):
    text = " ".join(map(str, case["args"])) + " " + yaml.safe_dump(case)
    values = {"tmp": str(tmp_path)}
    for name in PLACEHOLDERS:
        if "{" + name + "}" in text or (name in ("model", "csv") and case.get("tiny")):
            fixture = {"model": "tiny_model_dir", "csv": "sentiment_csv", "run": "text_run"}.get(name, name)
            values[name] = str(request.getfixturevalue(fixture))
    for encoding, files in (("utf-8", case.get("files")), ("latin-1", case.get("latin1"))):
        for name, content in (files or {}).items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(fill(content, values), encoding=encoding)
    for name, (width, height) in (case.get("images") or {}).items():
        png_header(tmp_path / name, width, height)
    for source, name in (case.get("copy") or {}).items():
        shutil.copytree(fill(source, values), tmp_path / name)
    for name, content in (case.get("overwrite") or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fill(content, values), encoding="utf-8")
    for name, changes in (case.get("edit_json") or {}).items():
        path = tmp_path / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    for name in case.get("truncate") or []:
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 10)])
    given = case["args"]
    args = [fill(str(a), values) for a in [given[0], *(TINY_FIT if case.get("tiny") else []), *given[1:]]]
    monkeypatch.chdir(tmp_path)
    out = Path(args[args.index("--out") + 1]) if "--out" in args else None
    existed = out is not None and out.exists()

    if case.get("subprocess"):
        proc = subprocess.run([sys.executable, "-m", "pretune", *args], capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "default"}, timeout=300)
        code, stderr = proc.returncode, proc.stderr
        assert "Traceback" not in stderr, stderr
        if not case.get("usage"):
            lines = [line for line in stderr.splitlines() if line.strip()]
            assert len(lines) == 1, stderr  # not one warning beside it
    else:
        code, stderr = run_in_process(args)
    assert code == 2, (code, stderr)
    flat = " ".join(stderr.split())  # rich wraps usage errors in a box
    assert " ".join(fill(case["error"], values).split()) in flat, stderr
    if out is not None and not existed and not case.get("keeps_out"):
        assert not out.exists() or not any(out.iterdir()), f"{out} half-written: {list(out.iterdir())}"


def test_corpus_covers_every_command():
    counts: dict[str, int] = {}
    for param in load_corpus():
        verb = param.values[0]["args"][0]
        counts[verb] = counts.get(verb, 0) + 1
    assert sum(counts.values()) >= 60, counts
    for verb in ("fit", "eval", "predict", "search", "compress", "measure", "export", "report", "pipeline", "serve"):
        assert counts.get(verb, 0) >= 3, (verb, counts)


def test_image_fit_records_the_task_defaults_it_used(image_run):
    metrics = json.loads((image_run / "metrics.json").read_text())
    assert metrics["task_defaults"] == {"train.optimizer.lr": 1e-3}
    assert "lr: 0.001" in (image_run / "recipe.yaml").read_text()
