"""pretune measure RUN_DIR [RUN_DIR ...]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import compression_table, console, to_json


def measure(
    run_dirs: list[Path] = typer.Argument(..., help="run directories (fit or compress variants)"),
    threads: int = typer.Option(2, "--threads", help="intra-op threads for every backend"),
    samples: int = typer.Option(256, "--samples", help="test texts timed"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
) -> None:
    """Size, parameters, latency, throughput, peak memory and test accuracy, the same for any run."""
    from pretune.api import measure as measure_api
    from pretune.errors import PretuneError

    for flag, value in (("--threads", threads), ("--samples", samples)):
        if value < 1:
            raise PretuneError(f"{flag} must be at least 1, got {value}")
    rows = measure_api(run_dirs, threads=threads, samples=samples)
    if as_json:
        print(to_json(rows, indent=2))
    else:
        console.print(compression_table(rows, "measured"))
