"""The compression figure: each variant's accuracy against its latency, the Pareto front joined,
the chosen variant ringed, marker area by size on disk."""

from __future__ import annotations

from pretune.plots.canvas import pyplot


def accuracy_latency(rows: list[dict], metric: str, front: set[str], chosen: str | None):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    biggest = max((r.get("size_mb") or 1) for r in rows)
    for r in rows:
        size = 40 + 360 * (r.get("size_mb") or biggest) / biggest
        ax.scatter([r["latency_ms_p50"]], [r[metric]], s=size, alpha=0.75,
                   color="C3" if r["name"] in front else "C0", edgecolor="white")
        if r["name"] == chosen:
            ax.scatter([r["latency_ms_p50"]], [r[metric]], s=size * 2.2, facecolor="none", edgecolor="C2", lw=2)
    on = sorted((r for r in rows if r["name"] in front), key=lambda r: r["latency_ms_p50"])
    ax.plot([r["latency_ms_p50"] for r in on], [r[metric] for r in on], color="C3", lw=1, ls="--")
    latencies = [r["latency_ms_p50"] for r in rows]
    if min(latencies) > 0 and max(latencies) / min(latencies) > 20:  # int8 against fp32 spans decades
        ax.set_xscale("log")
    ax.set(xlabel="latency p50 (ms, one input)", ylabel=f"test {metric}",
           title="Accuracy against latency (area: size on disk; red: Pareto front; green ring: chosen)")
    ax.title.set_fontsize(9.5)
    fig.tight_layout()
    place_labels(fig, ax, [(r["name"], r["latency_ms_p50"], r[metric]) for r in rows])
    return fig


# Label offsets tried in turn (points from the marker): right, then below, left, above, further out.
OFFSETS = [(7, 4, "left"), (7, -11, "left"), (-7, 4, "right"), (-7, -11, "right"), (0, 12, "center"),
           (0, -20, "center"), (12, 18, "left"), (12, -26, "left"), (-12, 18, "right"), (-12, -26, "right")]


def place_labels(fig, ax, points: list[tuple[str, float, float]]) -> None:
    """Each point's name where it overlaps no label already placed (variants close in latency
    and accuracy printed their names over each other); past every offset, the first one."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for name, x, y in points:
        for dx, dy, ha in OFFSETS:
            label = ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8, ha=ha)
            box = label.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:
            label = ax.annotate(name, (x, y), textcoords="offset points", xytext=OFFSETS[0][:2], fontsize=8)
            box = label.get_window_extent(renderer)
        placed.append(box)
