"""pretune compress RUN_DIR --steps distill,prune,quantize [--max-drop 1.0] [--out DIR] [--set k=v]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import compression_table, console


def compress(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit"),
    steps: str | None = typer.Option(None, "--steps", help="comma-separated, in order: distill, prune, "
                                     "trim-vocab, quantize, export (default: the recipe's compress.steps)"),
    max_drop: float | None = typer.Option(None, "--max-drop", help="accuracy points a variant may lose; "
                                          "names the fastest variant inside it"),
    out: Path | None = typer.Option(None, "--out", help="directory of the variants (default RUN_DIR-compressed)"),
    set_: list[str] = typer.Option([], "--set", help="step setting, e.g. compress.prune.heads=0.25"),
    no_report: bool = typer.Option(False, "--no-report", help="write no report.html"),
) -> None:
    """Turn a run into smaller / faster variants; measure each beside the original."""
    from pretune.api import compress as compress_api

    result = compress_api(run_dir, steps, out=out, max_drop=max_drop, overrides=set_, quiet=False,
                          report=False if no_report else None)
    console.print(compression_table(result.rows, f"{result.path / 'compression.json'}"))
    console.print(result.message)
