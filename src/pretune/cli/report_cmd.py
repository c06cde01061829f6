"""pretune report PATH [PATH ...] [--out FILE]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import printable


def report(
    paths: list[Path] = typer.Argument(..., help="a run, a study, a compression or a pipeline directory; several runs: "
                                       "a comparison"),
    out: Path | None = typer.Option(None, "--out", help="the HTML file (default PATH/report.html; several runs: "
                                    "comparison.html)"),
) -> None:
    """Write one self-contained HTML page of a run, a study, a compression, or a comparison of runs."""
    from pretune.api import report as report_api

    print(printable(report_api(paths, out)))
