"""The README's Python example and the examples/ recipes are run, not just kept."""

import os
import re
from pathlib import Path

import pytest
import yaml

from pretune import Recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_recipes_are_valid(path):
    Recipe.load(path)


@pytest.mark.e2e
def test_readme_python_example_runs(tmp_path, capsys):
    code = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "quick" / "model" / "model.safetensors").is_file()
    assert "'label': 'fresh'" in out or "'label': 'rotten'" in out


def test_readme_links_name_pages_of_the_docs_site():
    # Pages only: docs/img/report.png is the screenshot's place, filled when a report is shot.
    links = re.findall(r"\]\((docs/[^)#]+\.md)", (ROOT / "README.md").read_text())
    assert len(links) >= 8
    for link in links:
        assert (ROOT / link).is_file(), link
    listed = {next(iter(item.values())) for item in yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]}
    assert {link.removeprefix("docs/") for link in links if link.endswith(".md")} <= listed


@pytest.mark.e2e
def test_readme_cli_example_runs(tmp_path, tiny_model_dir):
    from tests.test_docs import run_shell_line

    code = re.search(r"```shell\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    for line in code.splitlines():
        run_shell_line(line, tmp_path, tiny_model_dir)
    assert (tmp_path / "runs" / "cli" / "model" / "README.md").is_file()
