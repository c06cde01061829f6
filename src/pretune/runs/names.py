"""The names of the files pretune writes and reads back, spelled once.

A run directory (fit, or a compressed variant):

    recipe.yaml             the resolved recipe          metrics.json     final metrics per split
    metrics.jsonl           every logged step / eval     model/           Hugging Face format
    checkpoints/step-N/     for --resume (state.json)    plots/           learning curves, lr schedule
    predictions/test.jsonl  the test rows, predicted     environment.json the machine it ran on
    report.html             its page

A compression directory: compression.json (the table, the tree, the choice), pareto.png,
original.json (the original's measurement) and one run directory per node, each with node.json
(what it was made from) and measurement.json (its measured row). A study: study.json, trials.csv,
best.yaml. A pipeline: recipe.yaml (as written), pipeline.json (each stage's record), check.json
(the data check, `pretune check --out` writes the same).
"""

from __future__ import annotations

from pathlib import Path

RECIPE, METRICS, HISTORY, MODEL, CHECKPOINTS, PLOTS = (
    "recipe.yaml", "metrics.json", "metrics.jsonl", "model", "checkpoints", "plots")
PREDICTIONS = Path("predictions") / "test.jsonl"
ENVIRONMENT, REPORT = "environment.json", "report.html"
COMPRESSION, PARETO, ORIGINAL, NODE, MEASUREMENT = (
    "compression.json", "pareto.png", "original.json", "node.json", "measurement.json")
STUDY, TRIALS, BEST = "study.json", "trials.csv", "best.yaml"
PIPELINE, CHECK = "pipeline.json", "check.json"
CHECKPOINT_STATE = "state.json"
