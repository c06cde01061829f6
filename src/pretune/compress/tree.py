"""`pretune compress`: a tree of variants, each node a Run directory named by its path
(`distill/trim-vocab/quantize`), chains that share a prefix sharing its work (the distilled
student of `[distill, quantize]` and `[distill, trim-vocab, quantize]` is trained once).

Every node, and the original, is measured the same way (measure.py) and scored on validation
and test; `--max-drop` chooses the fastest node within the budget on *validation* and the table
reports both (choice.py). Before any work: every chain resolves for the run's input kind, in an
order that can work. A node is finished when its run is complete and its measurement is stored;
rerunning the same command reuses finished nodes and redoes only what is missing, was killed or
was made with other settings. Temporary work goes under `OUT/.work`, removed when a command
starts and ends. Writes `compression.json` (the table, the tree, the choice and its reason) and
`pareto.png`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pretune import atomic, runs
from pretune.compress import steps
from pretune.compress.choice import add_ratios, choose, pareto_plot
from pretune.compress.loaded import Frames, LoadedRun, backend_of
from pretune.compress.measure import measure
from pretune.compress.variant import figures
from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.recipe import CompressConfig, as_recipe
from pretune.tasks import create_task

TABLE, PLOT, WORK = runs.COMPRESSION, runs.PARETO, ".work"
NODE, MEASUREMENT, ORIGINAL = runs.NODE, runs.MEASUREMENT, runs.ORIGINAL
NOTE_SPARSE = "sparsity alone gives no CPU speed-up (dense kernels)"
DEFAULT_TREES = {
    "text": [["quantize"], ["distill", "quantize"], ["distill", "trim-vocab", "quantize"], ["prune", "quantize"]],
    "image": [["quantize"], ["prune"], ["prune", "quantize"]],
}


@dataclass
class Compression:
    """What `compress` made: the variants (tree order), the table, the chosen row, a message."""

    path: Path
    variants: list[Run]
    rows: list[dict]
    chosen: dict | None
    message: str
    chains: list[list[str]] = field(default_factory=list)
    reads: int = 0  # data files read by the command (once per data source)

    @property
    def best(self) -> Run | None:
        return Run(self.chosen["run"]) if self.chosen else None


@dataclass
class Node:
    path: tuple[str, ...]
    children: dict[str, Node] = field(default_factory=dict)

    @property
    def step(self) -> str:
        return self.path[-1]

    @property
    def name(self) -> str:
        return "/".join(self.path)


def parse_variants(text: str) -> list[list[str]]:
    """`--variants`: chains separated by ';', steps by ',' (`quantize;distill,quantize`), or YAML."""
    if text.strip().startswith("["):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise PretuneError(f"--variants is not valid YAML: {str(e).splitlines()[0]}") from None
    return [[s.strip() for s in chain.split(",") if s.strip()] for chain in text.split(";")]


def resolve_config(run: Run, step_names: list[str] | str | None = None, max_drop: float | None = None,
                   overrides: list[str] | None = None, config: CompressConfig | dict | None = None,
                   variants: list[list[str]] | str | None = None) -> CompressConfig:
    """The run recipe's `compress` section < `config` < `overrides` (compress.x=y) < arguments,
    every value validated the same way (a budget below zero or NaN is refused however given)."""
    recipe = run.recipe
    if config is not None:
        recipe = recipe.updated({"compress": config})
    recipe = as_recipe(recipe, overrides)
    changes: dict = {}
    if isinstance(step_names, str):
        step_names = [s.strip() for s in step_names.split(",") if s.strip()]
    if step_names is not None:
        changes |= {"compress.steps": list(step_names), "compress.variants": None}
    if variants is not None:
        changes["compress.variants"] = parse_variants(variants) if isinstance(variants, str) else variants
    if max_drop is not None:
        changes["compress.max_drop"] = max_drop
    return recipe.updated(changes).compress if changes else recipe.compress


def chains_of(cfg: CompressConfig, kind: str) -> list[list[str]]:
    """`variants`, else the one chain `steps`, else the input kind's default tree."""
    if cfg.variants is not None:
        if not cfg.variants:
            raise PretuneError("compress.variants is empty: give at least one chain, e.g. [[quantize]]")
        return cfg.variants
    if cfg.steps is not None:
        return [cfg.steps]
    tree = [list(chain) for chain in DEFAULT_TREES[kind]]
    return tree + [["distill"]] if kind == "image" and cfg.distill.student else tree


def check_out(out: Path, run: Run) -> None:
    if out.is_file():
        raise PretuneError(f"--out {out} is a file; give a directory for the variants")
    if (out / runs.RECIPE).exists():
        raise PretuneError(f"--out {out} holds a run, not a compression; give another directory")
    if out.resolve() == run.path.resolve():
        raise PretuneError("--out is the run itself; give another directory for the variants")


def finished_run(run: Run) -> Run:
    """The run to compress, finished, with readable metrics (one line if not)."""
    run.metrics  # noqa: B018  an unfinished run, or one whose metrics.json is not pretune's: one line
    return run


def compress(run: Run | str | Path, steps_: list[str] | str | None = None, *, out: str | Path | None = None,
             max_drop: float | None = None, overrides: list[str] | None = None,
             config: CompressConfig | dict | None = None, variants: list[list[str]] | str | None = None,
             quiet: bool = True) -> Compression:
    run = finished_run(run if isinstance(run, Run) else Run(run))
    cfg = resolve_config(run, steps_, max_drop, overrides, config, variants)
    out = Path(out) if out else run.path.with_name(f"{run.path.name}-compressed")
    check_out(out, run)
    kind = create_task(run.recipe.data).inputs
    chains = chains_of(cfg, kind)
    for chain in chains:  # every chain can work, before the first step runs or the data is read
        steps.check_chain(chain, kind, backend_of(run.model_path), cfg)
    root = LoadedRun(run, Frames(), out / WORK)
    shutil.rmtree(out / WORK, ignore_errors=True)  # a killed command's leftovers
    rows: list[dict] = []
    variants_made: list[Run] = []
    tree: dict[str, dict] = {}

    def visit(parent: LoadedRun, node: Node) -> None:
        target = out.joinpath(*node.path)
        fingerprint = {"original": str(run.path), "path": list(node.path), **_settings(cfg, node.step)}
        reused = _finished(target, fingerprint)
        if reused:
            loaded = parent.child(target)
        else:
            shutil.rmtree(target, ignore_errors=True)  # missing, killed, or made with other settings
            loaded = steps.get(node.step, root.kind).run(parent, cfg, target)
            atomic.write_json(target / NODE, fingerprint)
        if not quiet:
            print(f"{node.name}: {target}" + (" (reused)" if reused else ""))
        rows.append(_row(loaded, cfg, target / MEASUREMENT, fingerprint, node.name, node.name))
        variants_made.append(loaded.run)
        tree[node.name] = {"step": node.step, "parent": "/".join(node.path[:-1]), "run": str(target),
                           "reused": reused}
        for child in node.children.values():
            visit(loaded, child)

    try:  # the nodes first: a step that refuses its settings leaves no directory behind
        for node in _trie(chains).values():
            visit(root, node)
        out.mkdir(parents=True, exist_ok=True)
        rows.insert(0, _row(root, cfg, out / ORIGINAL, {"original": str(run.path)}, run.path.name, ""))
    finally:
        shutil.rmtree(out / WORK, ignore_errors=True)
    add_ratios(rows)
    chosen, message = choose(rows, cfg.max_drop)
    for row in rows:
        row["chosen"] = row is chosen
    # Each fact once (runs.schemas.CompressionTable): the steps are the chains', the chosen flag of a
    # row is the choice's name; runs.read_compression derives them, and reads older tables too.
    table = {"original": str(run.path), "variants": chains, "max_drop": cfg.max_drop,
             "choice": {"name": chosen and chosen["name"], "reason": message, "on": "validation accuracy drop",
                        "reported": "test"},
             "rows": [{k: v for k, v in row.items() if k != "chosen"} for row in rows], "tree": tree}
    atomic.write_json(out / TABLE, runs.checked_table(table, out / TABLE))
    pareto_plot(rows, out / PLOT)
    return Compression(out, variants_made, rows, chosen, message, chains, root.frames.reads)


def run_step(run: Run, name: str, out: Path, config: CompressConfig | None = None) -> Run:
    """One step on its own (e.g. `pretune export`), with the run recipe's settings."""
    run = finished_run(run)
    cfg = config or resolve_config(run, [name])
    out = Path(out)
    if out.is_file() or (out / runs.RECIPE).exists():
        raise PretuneError(f"--out {out} already exists; give a new directory for the variant")
    kind = create_task(run.recipe.data).inputs
    steps.check_chain([name], kind, backend_of(run.model_path), cfg)
    work = out.with_name(f".{out.name}.work")
    shutil.rmtree(work, ignore_errors=True)
    parent = LoadedRun(run, Frames(), work)
    try:
        return steps.get(name, parent.kind).run(parent, cfg, out).run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _trie(chains: list[list[str]]) -> dict[str, Node]:
    roots: dict[str, Node] = {}
    for chain in chains:
        level, path = roots, ()
        for name in chain:
            path = (*path, name)
            level = level.setdefault(name, Node(path)).children
    return roots


def _settings(cfg: CompressConfig, step: str) -> dict:
    """What a node's result depends on besides its parent: its step's section (and the budget,
    which the quantize gate reads)."""
    section = getattr(cfg, step.replace("-", "_"), None)
    return {"settings": section.model_dump(mode="json") if section is not None else {},
            **({"max_drop": cfg.max_drop} if step == "quantize" else {})}


def _finished(target: Path, fingerprint: dict) -> bool:
    metrics = runs.read_cached(target / runs.METRICS, runs.schemas.MetricsFile)
    return bool(metrics and "compress" in metrics and metrics.get("status", "completed") == "completed"
                and runs.read_cached(target / NODE, runs.schemas.NodeRecord) == fingerprint)


def _row(loaded: LoadedRun, cfg: CompressConfig, stored: Path, fingerprint: dict, name: str, node: str) -> dict:
    """The node's measured row: reused when stored with the same settings, else measured now."""
    key = {"fingerprint": fingerprint, "measure": cfg.measure.model_dump(mode="json")}
    saved = runs.read_cached(stored, runs.schemas.NodeMeasurement)
    if saved and saved["key"] == key:
        return {**saved["row"], "reused": True}
    row = measured_row(loaded, cfg, name, node)
    atomic.write_json(stored, {"key": key, "row": row})
    return {**row, "reused": False}


def measured_row(loaded: LoadedRun, cfg: CompressConfig, name: str, node: str = "") -> dict:
    """Measurement (measure.py), test and validation figures of one loaded run."""
    validation = figures(loaded.score("validation"))
    row = {"name": name, "node": node, **measure(loaded.run, cfg.measure, loaded), "validation": validation,
           **({"validation_accuracy": validation["accuracy"]} if "accuracy" in validation else {})}
    if loaded.run.metrics.get("compress", {}).get("settings", {}).get("method") == "magnitude":
        row["note"] = NOTE_SPARSE
    return row


def measure_table(named: dict[str, Run], cfg: CompressConfig, work: Path) -> list[dict]:
    """Rows for runs made outside one tree (benchmarks), sharing one read of the data; ratios
    against the first."""
    frames = Frames()
    rows = [measured_row(LoadedRun(run, frames, work), cfg, name) for name, run in named.items()]
    shutil.rmtree(work, ignore_errors=True)
    return add_ratios(rows)
