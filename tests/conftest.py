"""Shared fixtures: a tiny random-initialised BERT (seconds to train) and small labelled tables."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = "good great fine superb lovely moving witty charming brilliant warm".split()
NEGATIVE = "bad awful dull boring weak tedious clumsy bland messy poor".split()
FILLER = "the film movie plot actor story was is a and very quite with its".split()


def sentiment_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Short texts whose label follows from their words: learnable by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2)
        words += rng.sample(FILLER, rng.randint(2, 9))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from pretune.models import resolve_source

    return Path(resolve_source("minilm-l6"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm_dir) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the real MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sentiment.csv"
    sentiment_frame(240).to_csv(path, index=False)
    return path


def tiny_recipe(model_dir: Path, data: Path, **train) -> dict:
    """A recipe dict for fast unit-level fits on the tiny model."""
    return {
        "seed": 7,
        "model": {"source": str(model_dir)},
        "data": {"source": str(data), "max_length": 32},
        "report": False,  # a page per unit fit costs seconds; tests/test_report.py turns it on
        "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 5e-3},
                  "checkpoint_every_steps": None, "log_every_steps": 2, **train},
    }


def fit_killed_at(recipe: dict, out: Path, step: int, event: str = "on_batch_end", call: str = "fit") -> None:
    """Start a fit (or `call`: another loop-driven API, such as adapt) in a child process that dies
    abruptly (os._exit) in callback `event` at optimizer step `step` (on_batch_end: right after
    that step, before its checkpoint)."""
    script = textwrap.dedent(f"""
        import os, pretune
        class Kill:
            def {event}(self, state):
                if state.step == {step}:
                    os._exit(9)
        pretune.{call}({recipe!r}, {str(out)!r}, callbacks=[Kill()], quiet=True)
    """)
    run_child(script, returncode=9)


def run_child(script: str, returncode: int = 0) -> None:
    """Run a Python script in a fresh interpreter and check how it ended."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == returncode, proc.stderr[-3000:]


def fit_in_child(out: Path, recipe: dict | None = None):
    """`pretune.fit(recipe, out)`, or with no recipe `pretune.fit(resume=out)`, in a fresh process,
    as a user's second command runs; returns the Run. A resumed fit compared with an uninterrupted
    one is compared this way where the suite's process history moved the last bits too far (on an
    AVX2 machine a token task's test loss ended 2e-4 apart in process, after 500 other tests)."""
    call = f"pretune.fit(resume={str(out)!r}, quiet=True)" if recipe is None else \
        f"pretune.fit({recipe!r}, {str(out)!r}, quiet=True)"
    run_child(f"import pretune; {call}")
    from pretune import Run

    return Run(out)


def timeless(run) -> list[dict]:
    """A run's history without the wall-clock figures, for comparing two runs exactly."""
    return [{k: v for k, v in r.items() if k not in ("samples_per_second", "train_seconds")} for r in run.history]


def close(a, b, rel: float = 1e-4) -> bool:
    """Equal structure, counts and labels, floats within `rel`: how a resumed fit is compared with
    an uninterrupted one. Not bitwise, because the two halves of a resumed fit ran in different
    processes (the killed child, then this one) and fp32 sums follow a process's allocation and
    kernel history: seen 1e-5 apart in the full suite, bitwise equal alone. A resume that lost its
    RNG, data order or optimizer state changes the trajectory, not the last bits. Where every
    part runs in a fresh process, test_kill_random.py compares bit for bit."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=rel)
    return a == b


def untrained_metrics(recipe) -> dict:
    """The pretrained body with its fresh, seeded head, measured on the recipe's test split."""
    from pretune.data import prepare
    from pretune.evaluate import TorchRunner, evaluate
    from pretune.models import load_model, load_tokenizer
    from pretune.tasks import create_task
    from pretune.train.loop import seed_everything

    seed_everything(recipe.seed)
    task = create_task(recipe.data)
    data = prepare(recipe.data, task)
    tok = load_tokenizer(recipe.model.source)
    model = load_model(recipe.model, task)
    split = task.encode(data.splits["test"], tok, recipe.data.max_length)
    return evaluate(TorchRunner(model), split, task, 64, tok.pad_token_id)


def load_classifier(model_cfg, label_names: list[str] | None, task: str = "sequence-classification"):
    """A pretrained body with a fresh head for these labels (None: regression)."""
    from pretune.models import load_model
    from pretune.recipe import DataConfig
    from pretune.tasks import create_task

    t = create_task(DataConfig(task=task))
    t.label_names = label_names
    return load_model(model_cfg, t)


# Builders shared by the task, vision, report and serve tests.
PLACES = "paris london tokyo berlin madrid".split()
PEOPLE = "alice bob carol dave erin".split()
TAG_FILLER = "the a met saw in at with from and today".split()


def tagged_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Sentences of filler words with people and places: a learnable tagging problem."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tokens, tags = [], []
        for _ in range(rng.randint(3, 7)):
            kind = rng.random()
            if kind < 0.2:
                tokens.append(rng.choice(PEOPLE)), tags.append("B-PER")
            elif kind < 0.35:
                tokens += [rng.choice(PLACES), "city"]
                tags += ["B-LOC", "I-LOC"]
            else:
                tokens.append(rng.choice(TAG_FILLER)), tags.append("O")
        rows.append({"tokens": tokens, "tags": tags})
    return pd.DataFrame(rows)


def task_recipe(model_dir, task, **train):
    recipe = tiny_recipe(model_dir, "unused.csv", **train)
    recipe["data"] = {"task": task, "max_length": 32}
    return recipe


def shapes_frame(n: int, size: int = 16, seed: int = 0) -> pd.DataFrame:
    """Gray images: a bright square on the left half ('left') or the right half ('right')."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        image = rng.integers(0, 60, (size, size), dtype=np.uint8)
        side = "left" if i % 2 == 0 else "right"
        x = rng.integers(0, size // 2 - 4) + (0 if side == "left" else size // 2)
        y = rng.integers(0, size - 4)
        image[y:y + 4, x:x + 4] = 255
        rows.append({"image": image, "label": side})
    return pd.DataFrame(rows)


def image_recipe(model_dir, **train) -> dict:
    return {"seed": 3, "model": {"source": str(model_dir)},
            "data": {"task": "image-classification", "image_size": 32},
            "train": {"epochs": 4, "batch_size": 16, "optimizer": {"lr": 3e-3}, "checkpoint_every_steps": None,
                      "mixed_precision": "no", **train}}


def pretune_cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "pretune", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})})
