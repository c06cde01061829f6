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


def choose(rows: list[dict], max_drop: float | None, tie: float = 0.0) -> tuple[dict | None, str]:
    """The fastest variant (batch throughput) whose validation accuracy drop is inside the budget;
    if none is, the original (rows[0]) with a message naming the closest variant.

    Variants whose throughput lies within the noise of the fastest (the larger of either row's
    measured spread, `throughput_spread`, and `tie`) are tied with it: timing noise must not
    decide between them, so a tie goes to the higher validation accuracy, then the smaller size
    on disk, then the shorter chain (then the name: the same rows always give the same choice)."""
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
    fastest = max(inside, key=lambda r: (r["throughput"], r["name"]))
    tied = sorted(tied_with(fastest, inside, tie), key=tie_order)
    chosen = tied[0]
    test = f", {chosen['drop_points']:.2f} on test" if "drop_points" in chosen else ""
    message = (f"fastest within {max_drop} validation points: {chosen['name']} "
               f"({chosen['speedup_batch']:.2f}x throughput, {chosen['validation_drop_points']:.2f} points "
               f"drop on validation{test}, {chosen['size_ratio']:.2f}x size)")
    if len(tied) > 1:
        others = ", ".join(r["name"] for r in tied[1:])
        message += (f"; tied within the measured throughput noise ({noise(fastest, fastest, tie):.0%}) with "
                    f"{others}: chosen by {_decided_by(tied[0], tied[1])}")
    return chosen, message


def noise(row: dict, fastest: dict, tie: float) -> float:
    return max(tie, row.get("throughput_spread", 0.0), fastest.get("throughput_spread", 0.0))


def tied_with(fastest: dict, rows: list[dict], tie: float) -> list[dict]:
    """The rows whose throughput is within the noise of the fastest's (the fastest included)."""
    return [r for r in rows if r["throughput"] >= fastest["throughput"] * (1 - noise(r, fastest, tie))]


def tie_order(row: dict) -> tuple:
    return (-row.get("validation_accuracy", 0.0), row.get("size_mb", 0.0), len(row["name"].split("/")), row["name"])


def _decided_by(first: dict, second: dict) -> str:
    a, b = tie_order(first), tie_order(second)
    reasons = ("higher validation accuracy", "smaller size", "shorter chain", "name (all else equal)")
    return next(reason for reason, x, y in zip(reasons, a, b, strict=False) if x != y)


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
