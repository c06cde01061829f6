"""The page of a pipeline, from pipeline.json and the directories it names: every stage with its
time and what it made (linking to the stage's own page), the fine-tuned model against the chosen
one, and the compression's variants table and chart, so that one page holds the whole path.

Written by the pipeline's report stage, before the release: the chosen model and its figures
come from compression.json (the release copies that model and repeats its figures); written once
more after the release, so that its row and the report's own are final."""

from __future__ import annotations

import os
from pathlib import Path

from pretune import runs
from pretune.report.compression_page import compression_page, read_table
from pretune.report.page import Block, Cell, Page, fmt, num

STATE, COMPRESSION, REPORT = runs.PIPELINE, runs.COMPRESSION, runs.REPORT
# figure of the fine-tuned vs chosen table -> (compression.json row key, label)
FIGURES = [("validation_accuracy", "validation accuracy"), ("accuracy", "test accuracy"),
           ("throughput", "throughput (batch, /s)"), ("latency_ms_p50", "latency p50 (batch 1, ms)"),
           ("size_mb", "size (MB)")]


def pipeline_page(path: Path) -> Page:
    summary = runs.read_pipeline(path)  # checked; every path it records inside `path`
    stages = summary["stages"]
    order = [s for s in summary.get("order", stages) if s in stages]
    page = Page(title=path.name, kind="pipeline", subtitle=" → ".join(order))
    # A stage that raised stops the pipeline with its status still "running"; the page is written
    # by the report stage, so report and release are not judged.
    done = all(stages[s].get("status") in ("completed", "skipped") for s in order if s not in ("report", "release"))
    page.status = "completed" if done else "running"
    page.facts = [("recipe", str(path / runs.RECIPE)), ("released model", str(path / "model")),
                  *[("fit override", o) for o in summary.get("fit_overrides", [])]]
    stages_section(page, path, stages, order)
    checked = stages.get("check", {}).get("path")
    if checked and Path(checked).is_file():
        check_section(page, runs.read_check(Path(checked)))
    compressed = stages.get("compress", {}).get("path")
    if compressed and (Path(compressed) / COMPRESSION).is_file():
        saved = read_table(Path(compressed))
        rows = saved["rows"]
        if rows:  # the first row is the fine-tuned model, measured like every variant
            comparison_section(page, rows[0], next((r for r in rows if r.get("chosen")), rows[0]))
        variants = compression_page(Path(compressed), saved)
        page.sections += variants.sections
        page.figures.update(variants.figures)
    return page


def stages_section(page: Page, path: Path, stages: dict, order: list[str]) -> None:
    table = []
    for name in order:
        record = stages[name]
        cell = Cell(name)
        made = record.get("path")
        own = Path(made) / REPORT if made and Path(made).is_dir() else None
        if own is not None and own.is_file():
            cell.href = os.path.relpath(own, path)
        table.append([cell, Cell(str(record.get("status", ""))), num(record.get("seconds")),
                      Cell(str(record.get("made", "")))])
    total = sum(r.get("seconds") or 0 for r in stages.values())
    page.headline = [("stages", str(len(order))), ("seconds", fmt(total))]
    page.section("stages", "Stages").blocks.append(
        Block("table", title="Each stage, what it made and how long it took (a stage name links to its own page)",
              columns=["stage", "status", "seconds", "made"], rows=table))


def check_section(page: Page, result: dict) -> None:
    """The data check's lines, as `pretune check` prints them: counts, repeats, leakage, classes."""
    from pretune.data.check import summary

    page.section("check", "Data check").blocks.append(
        Block("table", title="What the data held before the fit (check.json; the recipe's data.drop_* say what "
              "the fit dropped)", columns=["finding"], rows=[[Cell(line)] for line in summary(result, shown=3)]))


def comparison_section(page: Page, fine_tuned: dict, chosen: dict) -> None:
    ratios = {k: chosen[k] / fine_tuned[k] for k, _ in FIGURES
              if isinstance(chosen.get(k), (int, float)) and isinstance(fine_tuned.get(k), (int, float))
              and fine_tuned[k]}
    rows = [[Cell(label), num(fine_tuned.get(k)), num(chosen.get(k)),
             Cell(f"{ratios[k]:.2f}×" if k in ratios else "–", ratios.get(k))] for k, label in FIGURES]
    name = chosen.get("name") or "the fine-tuned model"
    page.headline += [("chosen", name)] + [(label, f"{ratios[k]:.2f}×") for k, label in
                                           (("throughput", "throughput"), ("size_mb", "size")) if k in ratios]
    page.section("chosen", "Fine-tuned against chosen").blocks.append(
        Block("table", title=f"The fine-tuned model against the released one ({name}); ratio: chosen / fine-tuned",
              columns=["figure", "fine-tuned", "chosen", "ratio"], rows=rows))
