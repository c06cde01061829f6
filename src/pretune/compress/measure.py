"""One measurement for every variant (torch fp32, torch int8, ONNX fp32 / int8):

size on disk of model/, parameters and non-zero parameters, latency p50 / p95 at batch 1 and
throughput at batch `batch_size` on real test texts or images (encoded and collated beforehand,
as evaluation encodes them: timing covers the model only; fixed thread count, warm-up, `repeats`
passes, the median pass counts), peak memory (resident memory the model's loading and running
added, measured in a fresh process), and accuracy / F1 on the whole test split. Peak memory is
the peak resident memory of loading the model and timing it at batch 1 and `batch_size`, minus
the resident memory before the load.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.recipe import MeasureConfig

SHOWN = ("accuracy", "f1_macro", "mse")


def measure(run: Run | str | Path, cfg: MeasureConfig | None = None) -> dict:
    """The figures of one run's model; see the module docstring."""
    run = run if isinstance(run, Run) else Run(run)
    cfg = cfg or MeasureConfig()
    run.model_path  # noqa: B018  a run without a model is an error here, not in the child
    if not cfg.isolate:
        return _measure_here(run, cfg, isolated=False)
    code = ("import json, sys; from pretune.compress.measure import _child; "
            "print('\\n' + json.dumps(_child(json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps({"run": str(run.path), **cfg.model_dump()})],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PretuneError(f"measuring {run.path} failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(args: dict) -> dict:
    run = Run(args.pop("run"))
    return _measure_here(run, MeasureConfig(**args), isolated=True)


def _measure_here(run: Run, cfg: MeasureConfig, isolated: bool) -> dict:
    import torch

    from pretune.compress.variant import (
        encode_rows,
        evaluate_runner,
        input_batches,
        load_data,
        load_preprocessor_of,
        load_runner,
        task_of,
    )

    torch.set_num_threads(cfg.threads)
    task = task_of(run)
    data = load_data(run, task)
    preprocessor = load_preprocessor_of(run)
    max_length = run.recipe.data.max_length
    timed = encode_rows(data, task, preprocessor, max_length, "test", cfg.samples)
    pad_id = preprocessor.pad_token_id or 0
    singles, batches = input_batches(timed, 1, pad_id), input_batches(timed, cfg.batch_size, pad_id)
    _reset_peak()
    before = _rss_mb()
    runner = load_runner(run.model_path, task, cfg.threads)
    for batch in singles[:5] + batches[:1]:  # warm-up: allocations, kernel selection
        runner(batch)
    latencies = []
    for _ in range(cfg.repeats):
        for batch in singles[: min(len(singles), 100)]:
            start = time.perf_counter()
            runner(batch)
            latencies.append((time.perf_counter() - start) * 1000)
    passes = []
    for _ in range(cfg.repeats):
        start = time.perf_counter()
        for batch in batches:
            runner(batch)
        passes.append(len(timed) / (time.perf_counter() - start))
    peak = _peak_mb() - before if isolated else None  # before the evaluation's batches of 64
    test = evaluate_runner(runner, data, task, preprocessor, max_length) if cfg.evaluate else {"samples": 0}
    return {
        "run": str(run.path), "backend": backend_of(run.model_path),
        "size_mb": round(size_on_disk(run.model_path) / 1e6, 3), **count_parameters(run.model_path),
        "latency_ms_p50": float(np.percentile(latencies, 50)), "latency_ms_p95": float(np.percentile(latencies, 95)),
        "throughput": float(np.median(passes)), "batch_size": cfg.batch_size, "threads": cfg.threads,
        "peak_memory_mb": None if peak is None else round(peak, 1), "timed_texts": len(timed),
        "test_samples": test["samples"], **{k: test[k] for k in SHOWN if k in test},
    }


def size_on_disk(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in Path(model_dir).rglob("*") if f.is_file())


def backend_of(model_dir: Path) -> str:
    from pretune.models.onnx_runner import ONNX_FILE

    model_dir = Path(model_dir)
    if (model_dir / ONNX_FILE).is_file():
        import onnx

        graph = onnx.load(str(model_dir / ONNX_FILE), load_external_data=False).graph
        int8 = any(init.data_type in (2, 3) and len(init.dims) >= 1 for init in graph.initializer)
        return "onnx-int8" if int8 else "onnx-fp32"
    from pretune.models.quantized import quantization_of

    return "torch-int8" if quantization_of(model_dir) else "torch-fp32"


def count_parameters(model_dir: Path) -> dict:
    """Weights as stored: tensors (ONNX initializers with at least one axis, float or int8;
    shape constants are int64 and not counted) and how many of their entries are non-zero."""
    from pretune.models.onnx_runner import ONNX_FILE

    model_dir = Path(model_dir)
    if (model_dir / ONNX_FILE).is_file():
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(model_dir / ONNX_FILE)).graph
        arrays = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type in (1, 2, 3, 10, 16)]
        arrays = [a for a in arrays if a.ndim >= 1]
        return {"parameters": int(sum(a.size for a in arrays)),
                "nonzero_parameters": int(sum(np.count_nonzero(a) for a in arrays))}
    from safetensors.numpy import load_file

    tensors = load_file(str(model_dir / "model.safetensors")).values()
    return {"parameters": int(sum(t.size for t in tensors)),
            "nonzero_parameters": int(sum(np.count_nonzero(t) for t in tensors))}


def _reset_peak() -> None:
    """Linux: restart the peak-resident-memory count here (data loading is not the model's)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) / 1e3  # kB
    except (OSError, StopIteration):
        return None


def _rss_mb() -> float:
    rss = _status_mb("VmRSS")
    return rss if rss is not None else _peak_mb()


def _peak_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3
