"""pretune compress RUN_DIR [--steps a,b | --variants 'a;b,c'] [--max-drop 1.0] [--out DIR] [--set k=v]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune import runs
from pretune.cli.output import compression_table, console, shown


def compress(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit"),
    steps: str | None = typer.Option(None, "--steps", help="one chain, comma-separated, in order: distill, prune, "
                                     "trim-vocab, quantize, export"),
    variants: str | None = typer.Option(None, "--variants", help="a tree of chains: 'quantize;distill,quantize' "
                                        "(default: the recipe's compress.variants / steps, else the input kind's "
                                        "default tree)"),
    max_drop: float | None = typer.Option(None, "--max-drop", help="validation accuracy points a variant may lose; "
                                          "chooses the fastest variant inside it"),
    out: Path | None = typer.Option(None, "--out", help="directory of the variants (default RUN_DIR-compressed); "
                                    "rerun into it to reuse finished variants"),
    set_: list[str] = typer.Option([], "--set", help="step setting, e.g. compress.prune.heads=0.25"),
    no_report: bool = typer.Option(False, "--no-report", help="write no report.html"),
) -> None:
    """Turn a run into smaller / faster variants; measure each beside the original, choose on validation."""
    from pretune.api import compress as compress_api

    result = compress_api(run_dir, steps, out=out, max_drop=max_drop, overrides=set_, quiet=False, variants=variants,
                          report=False if no_report else None)
    rows = [{**row, "name": ("* " if row.get("chosen") else "") + row["name"],
              "val_drop": row.get("validation_drop_points")} for row in result.rows]
    console.print(compression_table(rows, f"{result.path / runs.COMPRESSION} (* chosen on validation)"))
    console.print(shown(result.message))
