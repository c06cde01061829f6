"""Helpers shared by the benchmark scripts: child-process isolation, tables, JSON."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def peak_memory_mb() -> float:
    """Peak memory of this process: GPU allocator peak on CUDA, else the max resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_child(script: Path, name: str, extra: list[str]) -> dict:
    """Run one contender in a fresh process so that its memory peak is its own."""
    proc = subprocess.run([sys.executable, str(script), "--only", name, *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def cpu_flags_line() -> str:
    """The CPU model and the flags that decide bf16 / int8 speed, for every benchmark's header."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    return f"cpu: {model}; flags: {' '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}"


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("| " + " | ".join("-" * widths[c] for c in columns) + " |")
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns) + " |")


def best_of_rounds(rows: list[dict], runs: list, measure_cfg, rounds: int) -> None:
    """`rounds - 1` more timing-only rounds of pretune's measure, interleaved across the variants
    (a slow spell on a shared machine then hits every variant, not one); each row keeps its best
    round, and its ratios to the first row are recomputed from those."""
    from pretune.compress.measure import measure

    timing = measure_cfg.model_copy(update={"evaluate": False})
    for _ in range(rounds - 1):
        for row, run in zip(rows, runs, strict=True):
            again = measure(run, timing)
            row["throughput"] = max(row["throughput"], again["throughput"])
            for key in ("latency_ms_p50", "latency_ms_p95"):
                row[key] = min(row[key], again[key])
    for row in rows:
        row["speedup_batch"] = row["throughput"] / rows[0]["throughput"]
        row["speedup_latency"] = rows[0]["latency_ms_p50"] / row["latency_ms_p50"]


def interleaved_rounds(script: Path, names: list[str], extra: list[str], rounds: int, key: str
                       ) -> dict[str, list[dict]]:
    """Every contender once per round, each in a fresh process, the rounds one after the other:
    a slow spell on a shared machine hits every contender (timed once each, one after the other,
    the drift between them was as large as the margin measured)."""
    results: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names:
            print(f"round {r + 1}/{rounds}: {name} ...", file=sys.stderr, flush=True)
            results[name].append(run_child(script, name, extra))
            print(f"  {key} {results[name][-1][key]:.2f}", file=sys.stderr, flush=True)
    return results


def summarize_rounds(results: dict[str, list[dict]], key: str) -> list[dict]:
    """One row per contender: best and median of `key` over its rounds, the spread ((best -
    worst) / median), and the other figures of its best round (accuracy, memory)."""
    rows = []
    for name, runs in results.items():
        values = sorted(run[key] for run in runs)
        median = float(statistics.median(values))
        rows.append({**max(runs, key=lambda run: run[key]), "contender": name, f"best_{key}": values[-1],
                     f"median_{key}": median, "spread": (values[-1] - values[0]) / median,
                     "rounds": len(values)})
    return rows


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v and abs(v) < 0.01:
            return f"{v:.0e}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)
