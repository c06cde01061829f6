"""pretune export RUN_DIR --format onnx|openvino [--int8] [--out DIR]"""

from __future__ import annotations

from pathlib import Path

import typer

from pretune.cli.output import console, shown
from pretune.errors import PretuneError


def export(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit"),
    format_: str = typer.Option("onnx", "--format", help="onnx or openvino"),
    int8: bool = typer.Option(False, "--int8", help="ONNX Runtime int8: dynamic for text, "
                              "static (calibrated) for images"),
    out: Path | None = typer.Option(None, "--out", help="variant run directory (default RUN_DIR-onnx[-int8])"),
) -> None:
    """Export a run's model to ONNX (checked against torch in ONNX Runtime) as a new run directory."""
    from pretune.api import export as export_api

    if format_ not in ("onnx", "openvino"):
        raise PretuneError(f"unknown export format '{format_}'; known: onnx, openvino")
    run = export_api(run_dir, out=out, int8=int8, format=format_)
    accuracy = (run.metrics.get("test") or {}).get("accuracy", "-")
    console.print(f"exported: [bold]{shown(run.model_path)}[/] (test accuracy {shown(accuracy)})")
