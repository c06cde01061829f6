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
        ax.annotate(r["name"], (r["latency_ms_p50"], r[metric]), textcoords="offset points", xytext=(7, 4),
                    fontsize=8)
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
    return fig
