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

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pretune import atomic, runs
from pretune.compress import steps
from pretune.compress.choice import add_ratios, choose, pareto_plot
from pretune.compress.loaded import Frames, LoadedRun, backend_of
from pretune.compress.measure import measure
from pretune.compress.quantize.gate import budget_of
from pretune.compress.rounds import timed_in_rounds
from pretune.compress.static import takes_task
from pretune.compress.variant import figures
from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.recipe import CompressConfig, as_recipe
from pretune.tasks import Task, create_task

TABLE, PLOT, WORK, TIMING = runs.COMPRESSION, runs.PARETO, ".work", "timing.json"
NODE, MEASUREMENT, ORIGINAL = runs.NODE, runs.MEASUREMENT, runs.ORIGINAL
NOTE_SPARSE = "sparsity alone gives no CPU speed-up (dense kernels)"
DEFAULT_TREES = {
    "text": [["quantize"], ["distill", "quantize"], ["distill", "trim-vocab", "quantize"], ["prune", "quantize"],
             ["static"]],
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


def chains_of(cfg: CompressConfig, kind: str, task=None) -> list[list[str]]:
    """`variants`, else the one chain `steps`, else the input kind's default tree (without
    `[static]` for a `task` the static student cannot take: regression, tokens)."""
    if cfg.variants is not None:
        if not cfg.variants:
            raise PretuneError("compress.variants is empty: give at least one chain, e.g. [[quantize]]")
        return cfg.variants
    if cfg.steps is not None:
        return [cfg.steps]
    tree = [list(chain) for chain in DEFAULT_TREES[kind]]
    if task is not None and not takes_task(task):
        tree = [chain for chain in tree if chain != ["static"]]
    return tree + [["distill"]] if kind == "image" and cfg.distill.student else tree


def check_compression(cfg: CompressConfig, task: Task, backend: str) -> list[list[str]]:
    """Every precondition of the whole tree, before any work (no data read, nothing trained):
    every chain works for the task in its order and each step's own check passes, and a budget
    has accuracy to count. `pretune compress` and the pipeline's plan both call this. The chains."""
    if cfg.max_drop is not None and task.budget_metric is None:
        raise PretuneError(f"compress.max_drop counts accuracy points, which a {task.name} task does not report; "
                           f"remove it (and --max-drop): every variant is then listed, the original kept")
    chains = chains_of(cfg, task.inputs, task)
    for chain in chains:
        steps.check_chain(chain, task, backend, cfg)
    return chains


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
             quiet: bool = True, allows: Callable[[str], bool] | None = None, loss=None) -> Compression:
    """`allows(step)`: asked before each node that is not already made (a time limit's check); False
    skips the node and its subtree, listed in compression.json's `skipped`."""
    run = finished_run(run if isinstance(run, Run) else Run(run))
    cfg = resolve_config(run, steps_, max_drop, overrides, config, variants)
    out = Path(out) if out else run.path.with_name(f"{run.path.name}-compressed")
    check_out(out, run)
    chains = check_compression(cfg, create_task(run.recipe.data), backend_of(run.model_path))
    root = LoadedRun(run, Frames(), out / WORK, loss)
    shutil.rmtree(out / WORK, ignore_errors=True)  # a killed command's leftovers
    rows: list[dict] = []
    variants_made: list[Run] = []
    tree: dict[str, dict] = {}
    skipped: list[str] = []
    timed: list[tuple[LoadedRun, dict]] = []  # each row's run and fingerprint, in row order

    def visit(parent: LoadedRun, node: Node) -> None:
        target = out.joinpath(*node.path)
        fingerprint = {"original": str(run.path), "path": list(node.path),
                       "settings": steps.get(node.step, root.kind).settings_of(cfg)}
        reused, why = _finished(target, fingerprint), None
        if reused and node.step == "quantize":
            why = _gate_changed(target, budget_of(cfg.quantize, cfg.max_drop))
            reused = why is None
        if not reused and allows is not None and not allows(node.step):
            skipped.append(node.name)
            return
        if reused:
            loaded = parent.child(target)
        else:
            shutil.rmtree(target, ignore_errors=True)  # missing, killed, or made with other settings
            loaded = steps.get(node.step, root.kind).run(parent, cfg, target)
            atomic.write_json(target / NODE, fingerprint)
        if not quiet:
            print(f"{node.name}: {target}" + (" (reused)" if reused else f" (rebuilt: {why})" if why else ""))
        rows.append(_row(loaded, cfg, target / MEASUREMENT, fingerprint, node.name, node.name))
        timed.append((loaded, fingerprint))
        variants_made.append(loaded.run)
        tree[node.name] = {"step": node.step, "parent": "/".join(node.path[:-1]), "run": str(target),
                           "reused": reused, **({"rebuilt": why} if why else {})}
        for child in node.children.values():
            visit(loaded, child)

    try:  # the nodes first: a step that refuses its settings leaves no directory behind
        for node in _trie(chains).values():
            visit(root, node)
        out.mkdir(parents=True, exist_ok=True)
        rows.insert(0, _row(root, cfg, out / ORIGINAL, {"original": str(run.path)}, run.path.name, ""))
        timed.insert(0, (root, {"original": str(run.path)}))
        _time_rows(rows, timed, cfg, out)
    finally:
        shutil.rmtree(out / WORK, ignore_errors=True)
    add_ratios(rows)
    chosen, message = choose(rows, cfg.max_drop, cfg.measure.tie)
    for row in rows:
        row["chosen"] = row is chosen
    # Each fact once (runs.schemas.CompressionTable): the steps are the chains', the chosen flag of a
    # row is the choice's name; runs.read_compression derives them, and reads older tables too.
    table = {"original": str(run.path), "variants": chains, "max_drop": cfg.max_drop,
             "choice": {"name": chosen and chosen["name"], "reason": message, "on": "validation accuracy drop",
                        "reported": "test"},
             "rows": [{k: v for k, v in row.items() if k != "chosen"} for row in rows], "tree": tree,
             "skipped": skipped}
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
    steps.check_chain([name], create_task(run.recipe.data), backend_of(run.model_path), cfg)
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


def _read(path: Path) -> dict | None:
    """A cache file of this tree (a node's metrics, timing.json): its content, or None when it is
    missing or not whole (its work is then done again)."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _gate_changed(target: Path, budget: float | None) -> str | None:
    """Why a finished quantize node is not what `budget` would build (None: it is). A gate that
    kept nothing fp32 gives the same model under any budget its full-int8 drop fits in (or
    none); one that kept layers fp32 decided them for its own budget."""
    notes = (_read(target / runs.METRICS) or {}).get("compress", {})
    built = notes.get("settings", {}).get("max_drop")
    if budget == built:
        return None
    if "backend_choice" in notes:
        return f"its int8 backend (ONNX Runtime or OpenVINO) was chosen for a budget of {built} points"
    if notes.get("kept_fp32"):
        return f"its accuracy gate kept {', '.join(notes['kept_fp32'])} fp32 for a budget of {built} points"
    fp32, int8 = notes.get("validation_accuracy_fp32"), notes.get("validation_accuracy_int8")
    if budget is None or (fp32 is not None and int8 is not None and (fp32 - int8) * 100 <= budget):
        return None
    return f"int8 everywhere loses {(fp32 - int8) * 100:.2f} validation points, past the budget of {budget}" \
        if fp32 is not None and int8 is not None else "no gate figures stored"


def _time_rows(rows: list[dict], timed: list[tuple[LoadedRun, dict]], cfg: CompressConfig, out: Path) -> None:
    """Every row's throughput from one set of interleaved rounds (rounds.py): stored, and
    reused only when every row is (a stored timing is never compared with a fresh one)."""
    key = {"rows": [[row["name"], fingerprint] for row, (_, fingerprint) in zip(rows, timed, strict=True)],
           "measure": cfg.measure.model_dump(mode="json", exclude={"tie"})}
    saved = _read(out / TIMING)
    if saved and saved.get("key") == key and all(row["reused"] for row in rows):
        figures = saved["rows"]
    else:
        figures = timed_in_rounds([loaded for loaded, _ in timed], cfg.measure, out / WORK)
        atomic.write_json(out / TIMING, {"key": key, "rows": figures})
    for row, timing in zip(rows, figures, strict=True):
        row["throughput_alone"] = row.get("throughput_alone", row["throughput"])  # measure.py's, timed alone
        row.update(timing)


def _finished(target: Path, fingerprint: dict) -> bool:
    metrics = runs.read_cached(target / runs.METRICS, runs.schemas.MetricsFile)
    return bool(metrics and "compress" in metrics and metrics.get("status", "completed") == "completed"
                and runs.read_cached(target / NODE, runs.schemas.NodeRecord) == fingerprint)


def _row(loaded: LoadedRun, cfg: CompressConfig, stored: Path, fingerprint: dict, name: str, node: str) -> dict:
    """The node's measured row: reused when stored with the same settings, else measured now."""
    key = {"fingerprint": fingerprint, "measure": cfg.measure.model_dump(mode="json", exclude={"rounds", "tie"})}
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
    notes = loaded.run.metrics.get("compress", {})
    if notes.get("settings", {}).get("method") == "magnitude":
        row["note"] = NOTE_SPARSE
    if notes.get("backend_choice"):  # quantize.backend auto: which int8 (backend and mode) was kept
        row["int8_choice"] = notes["backend_choice"]["chosen"]
    return row


def measure_table(named: dict[str, Run], cfg: CompressConfig, work: Path) -> list[dict]:
    """Rows for runs made outside one tree (benchmarks), sharing one read of the data; ratios
    against the first."""
    frames = Frames()
    rows = [measured_row(LoadedRun(run, frames, work), cfg, name) for name, run in named.items()]
    shutil.rmtree(work, ignore_errors=True)
    return add_ratios(rows)
