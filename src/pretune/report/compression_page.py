"""The page of a compression, from compression.json: the variants table with each figure's ratio
to the original, the accuracy / latency Pareto chart, which variant was chosen under the budget
and why, and the CPU it was measured on.

compression.json is read defensively: the rows and `chosen` / `message` of today, and where a
newer pipeline writes them, `tree` (each variant's parent), `validation` figures and a `choice`
reason."""

from __future__ import annotations

import json
from pathlib import Path

from pretune import atomic
from pretune.errors import PretuneError
from pretune.plots import compression as figures
from pretune.report.environment import ENVIRONMENT
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
    saved = atomic.read_json(path / "compression.json")
    if not isinstance(saved, dict):
        raise PretuneError(f"{path / 'compression.json'} is not a pretune compression table")
    return saved


def compression_page(path: Path, saved: dict | None = None) -> Page:
    """The page of the compression in `path` (`saved`: its compression.json, already read)."""
    saved = read_table(path) if saved is None else saved
    rows = [r for r in saved.get("rows", []) if isinstance(r, dict)]
    for r in rows:
        r.setdefault("name", Path(str(r.get("run", "?"))).name)
    chosen = saved.get("chosen")
    if isinstance(chosen, dict):
        chosen = chosen.get("name")
    page = Page(title=path.name, kind="compression",
                subtitle=f"{len(rows) - 1} variants of {saved.get('original', '?')} "
                         f"(steps: {', '.join(map(str, saved.get('steps', [])))})")
    reason = saved.get("choice") or saved.get("message") or ""
    if isinstance(reason, dict):
        reason = reason.get("reason") or json.dumps(reason)
    page.facts = [("original", str(saved.get("original"))), ("steps", " → ".join(map(str, saved.get("steps", [])))),
                  ("accuracy budget", "none" if saved.get("max_drop") is None else f"{saved['max_drop']} points"),
                  ("chosen", chosen or "none")]
    if rows:
        first = rows[0]
        setup = (f"{first.get('threads', '?')} threads, batch {first.get('batch_size', '?')}, "
                 f"{first.get('timed_texts', '?')} timed inputs")
        page.facts.append(("measured with", setup))
    env_file = path / ENVIRONMENT
    if env_file.is_file():
        environment_facts(page.facts, atomic.read_json(env_file))
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
    """variant -> parent, from a `tree` given as {child: parent} or as a list of {name, parent}."""
    tree = saved.get("tree")
    if isinstance(tree, dict):
        return {str(k): str(v.get("parent", "") if isinstance(v, dict) else v) for k, v in tree.items()}
    if isinstance(tree, list):
        return {str(n.get("name")): str(n.get("parent", "")) for n in tree if isinstance(n, dict)}
    return {}
