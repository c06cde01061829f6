"""Batch throughput of every row of one choice (the original and each node), timed in rounds
interleaved across the rows, each row keeping its best round (as benchmarks/_common.py times
contenders): a slow spell on a shared machine then hits every row, not the one timed during it.
Timed once per row, one row after the other, a loaded machine recorded a 3-layer student at
0.43x its 6-layer teacher.

Every runner is loaded in one fresh process (`measure.isolate`), warmed up, then each round
times one pass over each row's batches, the order rotated each round so that no row always
runs first. Each row's spread, (best - worst) / median of its rounds, is the noise choice.py
reads to call two rows tied.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pretune.compress.loaded import LoadedRun, input_batches
from pretune.errors import PretuneError
from pretune.recipe import MeasureConfig


def timed_in_rounds(loaded: list[LoadedRun], cfg: MeasureConfig, work: Path) -> list[dict]:
    """For each run, in order: {"throughput": best rows/s, "throughput_rounds": [...],
    "throughput_spread": (best - worst) / median, "timing": how}."""
    inputs = []
    for run in loaded:
        split = run.encoded("test", cfg.samples)
        inputs.append({"batches": input_batches(split, cfg.batch_size, run.pad_id), "rows": len(split)})
    paths = [str(run.path) for run in loaded]
    if cfg.isolate:
        rounds = _in_child(paths, inputs, cfg, work)
    else:
        rounds = time_rounds([run.runner(cfg.threads) for run in loaded], inputs, cfg.rounds)
    how = f"best of {cfg.rounds} rounds interleaved across {len(loaded)} rows, batch {cfg.batch_size}"
    return [{**throughput_of(r), "timing": how} for r in rounds]


def throughput_of(rounds: list[float]) -> dict:
    """One row's figures from its rounds (rows/s): the best, every round, and the spread,
    (best - worst) / median, that choice.py reads as the row's timing noise."""
    return {"throughput": max(rounds), "throughput_rounds": [round(x, 2) for x in rounds],
            "throughput_spread": round((max(rounds) - min(rounds)) / statistics.median(rounds), 4)}


def time_rounds(runners: list, inputs: list[dict], rounds: int) -> list[list[float]]:
    """rows/s of each runner's pass over its batches, per round; the order rotates each round."""
    for runner, given in zip(runners, inputs, strict=True):
        runner(given["batches"][0])  # warm-up: allocations, kernel selection
    times: list[list[float]] = [[] for _ in runners]
    for r in range(rounds):
        for i in [(r + k) % len(runners) for k in range(len(runners))]:
            batches = inputs[i]["batches"]
            start = time.perf_counter()
            for batch in batches:
                runners[i](batch)
            times[i].append(inputs[i]["rows"] / (time.perf_counter() - start))
    return times


def _in_child(paths: list[str], inputs: list[dict], cfg: MeasureConfig, work: Path) -> list[list[float]]:
    from safetensors.torch import save_file

    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        file = Path(tmp) / "inputs.safetensors"
        save_file({f"{i}.{b}.{name}": tensor.contiguous() for i, given in enumerate(inputs)
                   for b, batch in enumerate(given["batches"]) for name, tensor in batch.items()}, str(file),
                  metadata={"rows": json.dumps([given["rows"] for given in inputs])})
        args = {"paths": paths, "inputs": str(file), "threads": cfg.threads, "rounds": cfg.rounds}
        code = ("import json, sys; from pretune.compress.rounds import _child; "
                "print('\\n' + json.dumps(_child(json.loads(sys.argv[1]))))")
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PretuneError(f"timing the variants failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(args: dict) -> list[list[float]]:
    import torch
    from safetensors import safe_open

    from pretune.compress.loaded import load_runner, task_of
    from pretune.predictor import Run

    torch.set_num_threads(args["threads"])
    found: dict[int, dict[int, dict]] = {}
    with safe_open(args["inputs"], framework="pt") as f:
        for key in f.keys():  # noqa: SIM118  safe_open is no mapping
            i, b, name = key.split(".", 2)
            found.setdefault(int(i), {}).setdefault(int(b), {})[name] = f.get_tensor(key)
        rows = json.loads(f.metadata()["rows"])
    inputs = [{"batches": [found[i][b] for b in sorted(found[i])], "rows": rows[i]} for i in range(len(rows))]
    runners = []
    for path in args["paths"]:
        run = Run(path)
        runners.append(load_runner(run.model_path, task_of(run), args["threads"]))
    return time_rounds(runners, inputs, args["rounds"])
