"""The compress pipeline: named steps, each `Run -> new Run`, chained in order; every variant
and the original measured the same way; `compression.json` (the table), `pareto.png`, and with
a budget the fastest variant inside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pretune import atomic
from pretune.compress.measure import measure
from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.recipe import CompressConfig, as_recipe
from pretune.registry import Registry

StepFn = Callable[[Run, CompressConfig, Path], Run]
steps: Registry[StepFn] = Registry("compression step")
TABLE, PLOT = "compression.json", "pareto.png"
NOTE_SPARSE = "sparsity alone gives no CPU speed-up (dense kernels)"


@dataclass
class Compression:
    """What `compress` made: the variants (in step order), the table, the chosen row, a message."""

    path: Path
    variants: list[Run]
    rows: list[dict]
    chosen: dict | None
    message: str

    @property
    def best(self) -> Run | None:
        return Run(self.chosen["run"]) if self.chosen else None


def _register_builtin() -> None:
    from pretune.compress.distill import distill_step
    from pretune.compress.export import export_step
    from pretune.compress.prune import prune_step
    from pretune.compress.quantize import quantize_step
    from pretune.compress.trim_vocab import trim_vocab_step

    for name, fn in (("distill", distill_step), ("prune", prune_step), ("quantize", quantize_step),
                     ("trim-vocab", trim_vocab_step), ("export", export_step)):
        if name not in steps:
            steps.register(name)(fn)


def resolve_config(run: Run, step_names: list[str] | str | None = None, max_drop: float | None = None,
                   overrides: list[str] | None = None, config: CompressConfig | dict | None = None) -> CompressConfig:
    """The run recipe's `compress` section < `config` < `overrides` (compress.x=y) < arguments."""
    _register_builtin()
    base = run.recipe
    if config is not None:
        raw = base.model_dump(mode="json")
        raw["compress"] = config.model_dump(mode="json") if isinstance(config, CompressConfig) else config
        base = raw
    cfg = as_recipe(base, overrides).compress
    if isinstance(step_names, str):
        step_names = [s.strip() for s in step_names.split(",") if s.strip()]
    updates = {k: v for k, v in (("steps", step_names), ("max_drop", max_drop)) if v is not None}
    cfg = cfg.model_copy(update=updates)
    if not cfg.steps:
        raise PretuneError("no compression steps given; known: " + ", ".join(steps.available()))
    for name in cfg.steps:
        steps.get(name)  # every name resolves before any work
    return cfg


def compress(run: Run | str | Path, steps_: list[str] | str | None = None, *, out: str | Path | None = None,
             max_drop: float | None = None, overrides: list[str] | None = None,
             config: CompressConfig | dict | None = None, quiet: bool = True) -> Compression:
    run = run if isinstance(run, Run) else Run(run)
    run.metrics  # noqa: B018  an unfinished run is an error before any work
    cfg = resolve_config(run, steps_, max_drop, overrides, config)
    out = Path(out) if out else run.path.with_name(f"{run.path.name}-compressed")
    variants, parent = [], run
    for i, name in enumerate(cfg.steps, start=1):
        target = out / f"{i}-{name}"
        parent = steps.get(name)(parent, cfg, target)
        variants.append(parent)
        if not quiet:
            print(f"{name}: {target}")
    rows = table([run, *variants], cfg)
    chosen, message = choose(rows, cfg.max_drop)
    atomic.write_json(out / TABLE, {"original": str(run.path), "steps": cfg.steps, "max_drop": cfg.max_drop,
                                    "chosen": chosen and chosen["name"], "message": message, "rows": rows})
    pareto_plot(rows, out / PLOT)
    return Compression(out, variants, rows, chosen, message)


def run_step(run: Run, name: str, out: Path, config: CompressConfig | None = None) -> Run:
    """One step on its own (e.g. `pretune export`), with the run recipe's settings."""
    cfg = config or resolve_config(run, [name])
    return steps.get(name)(run, cfg, Path(out))


def table(runs: list[Run], cfg: CompressConfig) -> list[dict]:
    """One measured row per run; ratios against the first (the original)."""
    rows = []
    for run in runs:
        row = {"name": run.path.name, **measure(run, cfg.measure)}
        info = run.metrics.get("compress", {})
        if info.get("settings", {}).get("method") == "magnitude":
            row["note"] = NOTE_SPARSE
        rows.append(row)
    first = rows[0]
    for row in rows:
        row["speedup_batch"] = row["throughput"] / first["throughput"]
        row["speedup_latency"] = first["latency_ms_p50"] / row["latency_ms_p50"]
        row["size_ratio"] = row["size_mb"] / first["size_mb"]
        if "accuracy" in first:
            row["drop_points"] = round((first["accuracy"] - row["accuracy"]) * 100, 3)
    return rows


def choose(rows: list[dict], max_drop: float | None) -> tuple[dict | None, str]:
    """The fastest variant (batch throughput) whose accuracy drop is inside the budget."""
    if max_drop is None:
        return None, "no budget given (--max-drop): every variant is in the table"
    if "drop_points" not in rows[0]:
        raise PretuneError("--max-drop needs a classification task (accuracy)")
    inside = [r for r in rows[1:] if r["drop_points"] <= max_drop]
    if not inside:
        best = min(rows[1:], key=lambda r: r["drop_points"])
        return None, (f"no variant stays within {max_drop} accuracy points of the original "
                      f"(smallest drop: {best['name']}, {best['drop_points']:.2f}); keep the original")
    fastest = max(inside, key=lambda r: r["throughput"])
    return fastest, (f"fastest within {max_drop} points: {fastest['name']} ({fastest['speedup_batch']:.2f}x "
                     f"throughput, {fastest['drop_points']:.2f} points drop, {fastest['size_ratio']:.2f}x size)")


def pareto_front(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both latency (lower) and accuracy (higher)."""
    def dominated(r: dict) -> bool:
        return any(o["latency_ms_p50"] <= r["latency_ms_p50"] and o["accuracy"] >= r["accuracy"]
                   and (o["latency_ms_p50"], o["accuracy"]) != (r["latency_ms_p50"], r["accuracy"]) for o in rows)
    return [r for r in rows if not dominated(r)]


def pareto_plot(rows: list[dict], path: Path) -> None:
    if "accuracy" not in rows[0]:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    front = {id(r) for r in pareto_front(rows)}
    biggest = max(r["size_mb"] for r in rows)
    for r in rows:
        ax.scatter(r["latency_ms_p50"], r["accuracy"], s=30 + 400 * r["size_mb"] / biggest, alpha=0.6,
                   color="C1" if id(r) in front else "C0", edgecolors="k")
        ax.annotate(r["name"], (r["latency_ms_p50"], r["accuracy"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    ax.set(xlabel="latency p50, batch 1 (ms)", ylabel="test accuracy",
           title="accuracy vs latency (marker area: size on disk; orange: Pareto front)")
    fig.tight_layout()
    with atomic.atomic_path(path.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
