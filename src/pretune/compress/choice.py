"""The table of a compression and its choice: ratios against the original (the first row), the
fastest variant whose *validation* accuracy drop is inside the budget (chosen on validation,
reported on test), and the accuracy / latency Pareto front."""

from __future__ import annotations

from pathlib import Path

from pretune import atomic
from pretune.errors import PretuneError


def add_ratios(rows: list[dict]) -> list[dict]:
    """Throughput, latency and size ratios, and test and validation drops (accuracy points),
    each against the first row (the original)."""
    first = rows[0]
    for row in rows:
        row["speedup_batch"] = row["throughput"] / first["throughput"]
        row["speedup_latency"] = first["latency_ms_p50"] / row["latency_ms_p50"]
        row["size_ratio"] = row["size_mb"] / first["size_mb"]
        if "accuracy" in first and "accuracy" in row:
            row["drop_points"] = round((first["accuracy"] - row["accuracy"]) * 100, 3)
        if "validation_accuracy" in first and "validation_accuracy" in row:
            row["validation_drop_points"] = round((first["validation_accuracy"] - row["validation_accuracy"]) * 100, 3)
    return rows


def choose(rows: list[dict], max_drop: float | None) -> tuple[dict | None, str]:
    """The fastest variant (batch throughput) whose validation accuracy drop is inside the budget;
    if none is, the original (rows[0]) with a message naming the closest variant."""
    if max_drop is None:
        return None, "no budget given (--max-drop): every variant is in the table"
    if "validation_drop_points" not in rows[0]:
        raise PretuneError("--max-drop needs a classification task (accuracy)")
    if len(rows) == 1:
        return rows[0], "no variant in the table; the original is the choice"
    inside = [r for r in rows[1:] if r["validation_drop_points"] <= max_drop]
    if not inside:
        best = min(rows[1:], key=lambda r: r["validation_drop_points"])
        return rows[0], (f"no variant stays within {max_drop} validation accuracy points of the original "
                         f"(closest: {best['name']}, {best['validation_drop_points']:.2f} points); "
                         f"the original is the choice")
    fastest = max(inside, key=lambda r: r["throughput"])
    test = f", {fastest['drop_points']:.2f} on test" if "drop_points" in fastest else ""
    return fastest, (f"fastest within {max_drop} validation points: {fastest['name']} "
                     f"({fastest['speedup_batch']:.2f}x throughput, {fastest['validation_drop_points']:.2f} points "
                     f"drop on validation{test}, {fastest['size_ratio']:.2f}x size)")


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
                   color="C1" if id(r) in front else "C0", edgecolors="k", linewidths=2.5 if r.get("chosen") else 1)
        ax.annotate(r["name"] + (" (chosen)" if r.get("chosen") else ""), (r["latency_ms_p50"], r["accuracy"]),
                    fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set(xlabel="latency p50, batch 1 (ms)", ylabel="test accuracy",
           title="accuracy vs latency (marker area: size on disk; orange: Pareto front)")
    fig.tight_layout()
    with atomic.atomic_path(path.with_suffix(".png")) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
