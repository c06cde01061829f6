"""pretune check [RECIPE | DATA] [--label COL] [--text COL] [--set k=v ...] [--out FILE] [--json]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import to_json


def check(
    data: str | None = typer.Argument(None, help="a recipe YAML, a data file or folder, or a bundled dataset "
                                      "(default: the default recipe's data)"),
    label: str | None = typer.Option(None, "--label", help="the label column (default: label, category, ...)"),
    text: str | None = typer.Option(None, "--text", help="the text column (default: text, else the longest)"),
    set_: list[str] = typer.Option([], "--set", help="recipe override, e.g. data.max_length=64"),
    out: Path | None = typer.Option(None, "--out", help="also write the result here as JSON"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Check a data set before a fit: duplicate and near-duplicate texts, texts shared between
    train and validation / test, class counts and imbalance, empty texts, texts cut at max_length."""
    from pretune.api import check as check_api
    from pretune.data.check import summary

    result = check_api(data, label=label, text=text, overrides=set_, out=out)
    if as_json:
        print(to_json(result, indent=2))
        return
    # Plain print: texts from the file are quoted as JSON strings, never read as rich markup.
    for line in summary(result):
        print(line)
    if out is not None:
        print(f"written: {out}")
