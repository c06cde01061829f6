"""The documentation site (docs/, mkdocs.yml) is built, and every code block in it is run.

How a fenced block in docs/*.md is treated, by its language:

- ```python  run. The blocks of a page run in page order, in one namespace, in a scratch
             directory per page where `examples/` is linked, after the page's shell blocks above
             them; they read what those made (runs/...).
- ```shell   run, line by line: each line is one `pretune ...` command (comments after `#`),
             run as `python -m pretune ...` in the page's scratch directory, and must exit 0, or
             the code a trailing `# exit N` comment names. Commands that train (fit, search,
             lr-find, batch-find) on a text recipe get the tiny random model and small slices of
             the data appended as `--set` overrides, so a page runs in seconds; what the command
             does (its recipe, task, data, outputs) is the page's own.
- ```yaml    a recipe, or the sections of one: validated as a `pretune.Recipe`.
- ```text    shown, not run: output, synopses with placeholders, commands that need other
             machines or hardware.
Any other fence (or none) is an error here, so no block is silently left out.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretune import Recipe

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.S | re.M)
KINDS = {"python", "shell", "yaml", "text"}
TRAINING = {"fit", "search", "lr-find", "batch-find"}


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


def fast_overrides(model_dir: Path) -> list[str]:
    sets = [f"model.source={model_dir}", "data.max_train_samples=48", "data.max_eval_samples=32",
            "data.max_length=32", "train.epochs=1", "train.batch_size=16", "train.eval_batch_size=32",
            "search.evaluations=1"]
    return [arg for s in sets for arg in ("--set", s)]


def is_text_recipe(args: list[str]) -> bool:
    recipe = next((a for a in args[1:] if a.endswith((".yaml", ".yml"))), None)
    if recipe is None:
        return False
    return Recipe.load(recipe).data.task != "image-classification"


def run_shell_line(line: str, cwd: Path, model_dir: Path) -> None:
    expected = re.search(r"#\s*exit (\d+)", line)
    args = shlex.split(line, comments=True)
    if not args:
        return
    assert args[0] == "pretune", f"a shell block runs pretune commands only: {line}"
    args = args[1:]
    if args[0] in TRAINING and "--resume" not in args and is_text_recipe(args):
        args += fast_overrides(model_dir)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pretune", *args], cwd=cwd, capture_output=True, text=True,
                          env=env)
    code = int(expected.group(1)) if expected else 0
    assert proc.returncode == code, f"{line}\nexit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    if code == 2:
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


def check_yaml(code: str) -> None:
    raw = yaml.safe_load(code)
    assert isinstance(raw, dict), "a yaml block holds recipe sections"
    Recipe.from_dict(raw)


def test_every_block_has_a_known_kind():
    found = {page.name: {kind for kind, _ in blocks(page)} for page in PAGES}
    unknown = {name: kinds - KINDS for name, kinds in found.items() if kinds - KINDS}
    assert not unknown, f"fence each block as one of {sorted(KINDS)}: {unknown}"
    for page in PAGES:  # an unterminated fence would hide the rest of the page from the test
        assert page.read_text().count("```") % 2 == 0, page.name


def test_site_builds_strict(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    listed = {next(iter(item.values())) for item in nav}
    assert listed == {p.name for p in PAGES}, "every page is in the nav, and every nav entry is a page"
    for page in PAGES:
        assert (tmp_path / "site" / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")).is_file()


@pytest.mark.parametrize("page", [p for p in PAGES if any(k == "yaml" for k, _ in blocks(p))], ids=lambda p: p.name)
def test_yaml_blocks_are_valid_recipes(page):
    for kind, code in blocks(page):
        if kind == "yaml":
            check_yaml(code)


@pytest.mark.e2e
@pytest.mark.parametrize("page", [p for p in PAGES if any(k in ("python", "shell") for k, _ in blocks(p))],
                         ids=lambda p: p.name)
def test_page_code_runs(page, tmp_path, tiny_model_dir, capsys):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for kind, code in blocks(page):
            if kind == "shell":
                for line in code.splitlines():
                    run_shell_line(line, tmp_path, tiny_model_dir)
            elif kind == "python":
                exec(compile(code, str(page), "exec"), namespace)
    finally:
        os.chdir(cwd)
    capsys.readouterr()
