"""The page of a compression, from compression.json: the variants table with each figure's ratio
to the original, the accuracy / latency Pareto chart, which variant was chosen under the budget
and why, and the CPU it was measured on.

compression.json is read by `runs.read_compression`: checked, in today's shape whatever version
wrote it (the chain's `chosen` / `message` / `steps` of earlier versions included)."""

from __future__ import annotations

from pathlib import Path

from pretune import runs
from pretune.plots import compression as figures
from pretune.report.page import Block, Cell, Page, fmt, num
from pretune.report.run_page import environment_facts

# row key -> column header, in the order shown; a ratio follows the figure it divides
COLUMNS = [("backend", "backend"), ("accuracy", "accuracy"), ("f1_macro", "F1 macro"), ("drop_points", "drop (points)"),
           ("throughput", "batch throughput /s"), ("speedup_batch", "× throughput"),
           ("latency_ms_p50", "latency p50 ms"), ("speedup_latency", "× latency"),
           ("latency_ms_p95", "latency p95 ms"), ("size_mb", "size MB"), ("size_ratio", "× size"),
           ("peak_memory_mb", "peak memory MB"), ("parameters", "parameters")]


def read_table(path: Path) -> dict:
    """A compression directory's compression.json, or one line saying what is wrong with it."""
    return runs.read_compression(path)


def compression_page(path: Path, saved: dict | None = None) -> Page:
    """The page of the compression in `path` (`saved`: its compression.json, already read)."""
    saved = read_table(path) if saved is None else saved
    rows = saved["rows"]
    chosen = saved["chosen_name"]
    page = Page(title=path.name, kind="compression",
                subtitle=f"{len(rows) - 1} variants of {saved.get('original', '?')} "
                         f"(steps: {', '.join(saved['steps'])})")
    reason = saved["choice"].get("reason", "")
    page.facts = [("original", str(saved.get("original"))), ("steps", " → ".join(saved["steps"])),
                  ("accuracy budget", "none" if saved.get("max_drop") is None else f"{saved['max_drop']} points"),
                  ("chosen", chosen or "none")]
    if rows:
        first = rows[0]
        setup = (f"{first.get('threads', '?')} threads, batch {first.get('batch_size', '?')}, "
                 f"{first.get('timed_texts', '?')} timed inputs")
        page.facts.append(("measured with", setup))
    env = runs.read_environment(path)
    if env is not None:
        environment_facts(page.facts, env)
    best = next((r for r in rows if r["name"] == chosen), None)
    if best:
        page.headline = [("chosen", chosen)] + [(label, f"{best[k]:.2f}×") for k, label in
                                                 (("speedup_batch", "throughput"), ("size_ratio", "size"))
                                                 if isinstance(best.get(k), (int, float))]
    variants_section(page, rows, chosen, reason, saved)
    return page


def variants_section(page: Page, rows: list[dict], chosen: str | None, reason: str, saved: dict) -> None:
    section = page.section("variants", "Variants")
    if reason:
        section.blocks.append(Block("note", title="The choice", text=str(reason)))
    shown = [(k, label) for k, label in COLUMNS if any(r.get(k) is not None for r in rows)]
    parents = _parents(saved)
    table = []
    for r in rows:
        name = Cell(r["name"] + ("  ✓ chosen" if r["name"] == chosen else ""), r["name"],
                    css="best" if r["name"] == chosen else "")
        cells = [name]
        if parents:
            cells.append(Cell(parents.get(r["name"], "")))
        cells += [num(r.get(k)) if k != "backend" else Cell(str(r.get(k, ""))) for k, _ in shown]
        table.append(cells)
    columns = ["variant", *(["parent"] if parents else []), *[label for _, label in shown]]
    section.blocks.append(Block("table", title="Every variant, measured the same way (test split; × is the ratio "
                                               "to the original)", columns=columns, rows=table, sortable=True))
    validation = saved.get("validation")
    if isinstance(validation, dict) and validation:
        vrows = [[Cell(str(name))] + [num(v) for v in (figs.values() if isinstance(figs, dict) else [figs])]
                 for name, figs in validation.items()]
        keys = next((list(f) for f in validation.values() if isinstance(f, dict)), ["value"])
        section.blocks.append(Block("table", title="Validation figures (what the choice was made on)",
                                    columns=["variant", *keys], rows=vrows))
    metric = "accuracy" if any("accuracy" in r for r in rows) else "f1_macro"
    drawable = [r for r in rows if isinstance(r.get(metric), (int, float)) and
                isinstance(r.get("latency_ms_p50"), (int, float))]
    if len(drawable) >= 2:
        front = {r["name"] for r in _front(drawable, metric)}
        page.figure(section, "pareto", figures.accuracy_latency(drawable, metric, front, chosen),
                    {"rows": [{k: r.get(k) for k in ("name", metric, "latency_ms_p50", "size_mb")} for r in drawable],
                     "front": sorted(front), "chosen": chosen}, title="Accuracy against latency")
        fastest = min(drawable, key=lambda r: r["latency_ms_p50"])
        section.blocks.append(Block("note", text="Pareto front: no other variant is both faster and more accurate. "
                                    f"Fastest p50: {fastest['name']} ({fmt(fastest['latency_ms_p50'])} ms)."))


def _front(rows: list[dict], metric: str) -> list[dict]:
    def dominated(r):
        return any(o["latency_ms_p50"] <= r["latency_ms_p50"] and o[metric] >= r[metric]
                   and (o["latency_ms_p50"], o[metric]) != (r["latency_ms_p50"], r[metric]) for o in rows)

    return [r for r in rows if not dominated(r)]


def _parents(saved: dict) -> dict[str, str]:
    """variant -> parent, from the tree (read_compression gives it as {node: {parent, ...}})."""
    return {name: node.get("parent", "") for name, node in (saved.get("tree") or {}).items()}
