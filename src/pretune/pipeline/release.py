"""The release stage: `DIR/model/` is the chosen model (the fine-tuned one when nothing was
compressed or nothing qualified), loadable as its card says, and the headline figures of the
chosen model beside the fine-tuned one's, each with its ratio.

The figures come from what the stages measured: the compression table when there was one (its
first row is the fine-tuned model, measured the same way as every variant), else one
measurement of the fine-tuned model; validation figures from the runs' metrics, or one pass over
the validation split for a variant that has none.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pretune import atomic, runs
from pretune.pipeline.stages import Context
from pretune.predictor import Run

# measured figures shown beside the metrics (ratios are chosen / fine-tuned)
TIMED = ("throughput", "latency_ms_p50", "size_mb")
CARD = "README.md"


def chosen_run(ctx: Context) -> Run:
    c = ctx.compression
    return Run(c["chosen_run"]) if c and c.get("chosen_run") else ctx.run


def loader_of(model_dir: Path) -> str:
    from pretune.models.onnx_runner import ONNX_FILE
    from pretune.models.static import is_static

    if is_static(model_dir):
        return "pretune"
    return "onnxruntime" if (Path(model_dir) / ONNX_FILE).is_file() else "from_pretrained"


def headline_figures(ctx: Context, chosen: Run) -> dict:
    """{"fine_tuned": {...}, "chosen": {...}, "ratio": {...}} over validation and test headline
    metrics, throughput (batch), latency p50 (batch 1) and size on disk."""
    from pretune.pipeline.stages import _headline

    metric = _headline(ctx.run.metrics)
    rows = (ctx.compression or {}).get("rows") or []
    if rows:
        fine_row = rows[0]
        chosen_row = ctx.compression["chosen_row"] or fine_row
    else:
        from pretune.compress.measure import measure

        # In this process: peak memory (what a fresh process is for) is not a headline figure.
        cfg = ctx.run.recipe.compress.measure.model_copy(update={"isolate": False})
        fine_row = chosen_row = measure(ctx.run, cfg)
    fine = _figures(ctx.run, fine_row, metric)
    mine = fine if chosen.path == ctx.run.path else _figures(chosen, chosen_row, metric)
    ratio = {k: (mine[k] / fine[k] if fine.get(k) else None) for k in fine if mine.get(k) is not None}
    return {"metric": metric, "fine_tuned": fine, "chosen": mine, "ratio": ratio}


def _figures(run: Run, row: dict, metric: str) -> dict:
    metrics = run.metrics
    test = row.get(metric, metrics.get("test", {}).get(metric))
    validation = row.get(f"validation_{metric}")  # what the compression tree adds to its rows
    if validation is None and isinstance(row.get("validation"), dict):
        validation = row["validation"].get(metric)
    if validation is None:
        validation = metrics.get("validation", {}).get(metric)
    if validation is None:  # a variant measured on test only: one validation pass
        validation = run.evaluate(split="validation").get(metric)
    return {f"validation_{metric}": validation, f"test_{metric}": test,
            **{k: row.get(k) for k in TIMED}}


def release_stage(ctx: Context) -> dict:
    chosen = chosen_run(ctx)
    figures = headline_figures(ctx, chosen)
    out = ctx.plan.output("release")
    loader = loader_of(chosen.model_path)
    with atomic.atomic_dir(out) as tmp:
        shutil.copytree(chosen.model_path, tmp, dirs_exist_ok=True)
        if not (tmp / CARD).is_file():
            (tmp / CARD).write_text(card(chosen, loader, figures), encoding="utf-8")
        shutil.copy2(chosen.path / runs.RECIPE, tmp / "pretune_recipe.yaml")
    return {"path": str(out), "made": f"{out} ({chosen.path.name}, {loader})", "run": str(chosen.path),
            "load": loader, "figures": figures}


def card(run: Run, loader: str, figures: dict) -> str:
    """A short model card: what the model is, its figures, and how to load it."""
    metric = figures["metric"]
    mine, ratio = figures["chosen"], figures["ratio"]
    lines = [f"# {run.path.name}", "", f"Released by `pretune pipeline` from `{run.path}`.", "",
             "| figure | value | vs fine-tuned |", "| --- | --- | --- |"]
    for key, value in mine.items():
        if value is not None:
            shown = f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
            lines.append(f"| {key} | {shown} | {ratio.get(key, 1.0):.2f}x |")
    labels = run.metrics.get("model", {}).get("labels")
    lines += ["", f"Headline metric: {metric}" + (f"; labels: {', '.join(map(str, labels))}" if labels else ""), ""]
    if loader == "onnxruntime":
        lines += ["Load with ONNX Runtime (inputs as the tokenizer in this directory makes them):", "",
                  "```python", "import onnxruntime, transformers",
                  'session = onnxruntime.InferenceSession("model/model.onnx")',
                  'tokenizer = transformers.AutoTokenizer.from_pretrained("model")', "```"]
    elif loader == "pretune":
        lines += ["A static-embedding model (token vectors and a linear head, run in numpy):", "", "```python",
                  "from transformers import AutoTokenizer", "from pretune.models.static import StaticRunner",
                  'runner, tokenizer = StaticRunner("model"), AutoTokenizer.from_pretrained("model")',
                  'logits = runner(tokenizer(["An example text."], padding=True, return_tensors="np"))', "```"]
    else:
        lines += ["Load with transformers:", "", "```python",
                  "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
                  'model = AutoModelForSequenceClassification.from_pretrained("model")',
                  'tokenizer = AutoTokenizer.from_pretrained("model")', "```"]
    lines += ["", "Or with pretune: `pretune predict` on the run directory above.", ""]
    return "\n".join(lines)
