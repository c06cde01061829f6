"""The `pretune` command: one module per verb, the same verbs as the Python API.

A PretuneError (bad input) becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from pretune.cli import (
    adapt_cmd,
    batch_find_cmd,
    check_cmd,
    compare_cmd,
    compress_cmd,
    eval_cmd,
    export_cmd,
    fit_cmd,
    lr_find_cmd,
    measure_cmd,
    pipeline_cmd,
    predict_cmd,
    preset_cmd,
    report_cmd,
    runs_cmd,
    search_cmd,
    serve_cmd,
)
from pretune.cli.output import printable
from pretune.errors import PretuneError

app = typer.Typer(
    name="pretune", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Fine-tune a pretrained model on labelled data from one recipe.",
)
app.command("fit")(fit_cmd.fit)
app.command("eval")(eval_cmd.eval_)
app.command("predict")(predict_cmd.predict)
app.command("adapt")(adapt_cmd.adapt)
app.command("lr-find")(lr_find_cmd.lr_find)
app.command("batch-find")(batch_find_cmd.batch_find)
app.command("search")(search_cmd.search)
app.command("compress")(compress_cmd.compress)
app.command("measure")(measure_cmd.measure)
app.command("export")(export_cmd.export)
app.command("report")(report_cmd.report)
app.command("runs")(runs_cmd.runs)
app.command("compare")(compare_cmd.compare)
app.command("pipeline")(pipeline_cmd.pipeline)
app.add_typer(preset_cmd.app, name="preset")
app.command("serve")(serve_cmd.serve)
app.command("check")(check_cmd.check)


def run() -> None:
    try:
        app()  # standalone: click reports usage errors itself, with exit code 2
    except PretuneError as e:
        print(f"pretune: error: {printable(str(e))}", file=sys.stderr)  # no raw escape sequences
        sys.exit(2)
