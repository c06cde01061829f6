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
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from pretune.compress.loaded import SHOWN, LoadedRun, backend_of, input_batches, load_runner
from pretune.errors import PretuneError
from pretune.predictor import Run
from pretune.recipe import MeasureConfig

SINGLES = 100  # batch-1 inputs timed per pass


def measure(run: Run | str | Path, cfg: MeasureConfig | None = None, loaded: LoadedRun | None = None) -> dict:
    """The figures of one run's model; see the module docstring. With `loaded` (the run loaded
    by a compress command) the timed inputs are encoded from it and handed to the measuring
    process in a safetensors file, and the test figures are its own: no second read of the data."""
    run = run if isinstance(run, Run) else Run(run)
    cfg = cfg or MeasureConfig()
    run.model_path  # noqa: B018  a run without a model is an error here, not in the child
    inputs = None
    if loaded is not None:
        timed = loaded.encoded("test", cfg.samples)
        inputs = {"single": input_batches(timed, 1, loaded.pad_id)[:SINGLES],
                  "batch": input_batches(timed, cfg.batch_size, loaded.pad_id), "rows": len(timed)}
    if not cfg.isolate:
        row = _measure_here(run, cfg, isolated=False, inputs=inputs)
    else:
        row = _measure_isolated(run, cfg, inputs, loaded.work if loaded is not None else None)
    if loaded is not None and cfg.evaluate:
        test = loaded.score("test")
        row |= {"test_samples": test["samples"], **{k: test[k] for k in SHOWN if k in test}}
    return row


def _measure_isolated(run: Run, cfg: MeasureConfig, inputs: dict | None, work: Path | None) -> dict:
    args = {"run": str(run.path), **cfg.model_dump()}
    with tempfile.TemporaryDirectory(dir=_made(work)) if inputs is not None else nullcontext() as tmp:
        if inputs is not None:
            from safetensors.torch import save_file

            args["inputs"] = str(Path(tmp) / "inputs.safetensors")
            save_file({f"{kind}.{i}.{name}": tensor.contiguous() for kind in ("single", "batch")
                       for i, batch in enumerate(inputs[kind]) for name, tensor in batch.items()}, args["inputs"],
                      metadata={"rows": str(inputs["rows"])})
            args["evaluate"] = False  # the caller's figures
        code = ("import json, sys; from pretune.compress.measure import _child; "
                "print('\\n' + json.dumps(_child(json.loads(sys.argv[1]))))")
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PretuneError(f"measuring {run.path} failed: {tail[0]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _made(work: Path | None) -> Path | None:
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    return work


def _child(args: dict) -> dict:
    run = Run(args.pop("run"))
    path = args.pop("inputs", None)
    return _measure_here(run, MeasureConfig(**args), isolated=True, inputs=_read_inputs(path) if path else None)


def _read_inputs(path: str) -> dict:
    from safetensors import safe_open

    inputs: dict = {"single": {}, "batch": {}}
    with safe_open(path, framework="pt") as f:
        for key in f.keys():  # noqa: SIM118  safe_open is no mapping
            kind, i, name = key.split(".", 2)
            inputs[kind].setdefault(int(i), {})[name] = f.get_tensor(key)
        rows = int(f.metadata()["rows"])
    return {kind: [batches[i] for i in sorted(batches)] for kind, batches in inputs.items()} | {"rows": rows}


def _measure_here(run: Run, cfg: MeasureConfig, isolated: bool, inputs: dict | None = None) -> dict:
    import torch

    from pretune.compress.loaded import task_of

    torch.set_num_threads(cfg.threads)
    task = task_of(run)
    loaded = None
    if inputs is None:  # `pretune measure RUN`: the run's own data, read here
        loaded = LoadedRun(run)
        timed = loaded.encoded("test", cfg.samples)
        inputs = {"single": input_batches(timed, 1, loaded.pad_id)[:SINGLES],
                  "batch": input_batches(timed, cfg.batch_size, loaded.pad_id), "rows": len(timed)}
    singles, batches = inputs["single"], inputs["batch"]
    _reset_peak()
    before = _rss_mb()
    runner = load_runner(run.model_path, task, cfg.threads)
    for batch in singles[:5] + batches[:1]:  # warm-up: allocations, kernel selection
        runner(batch)
    latencies = []
    for _ in range(cfg.repeats):
        for batch in singles:
            start = time.perf_counter()
            runner(batch)
            latencies.append((time.perf_counter() - start) * 1000)
    passes = []
    for _ in range(cfg.repeats):
        start = time.perf_counter()
        for batch in batches:
            runner(batch)
        passes.append(inputs["rows"] / (time.perf_counter() - start))
    peak = _peak_mb() - before if isolated else None  # before the evaluation's batches of 64
    test = loaded.score("test", runner) if cfg.evaluate and loaded is not None else {"samples": 0}
    return {
        "run": str(run.path), "backend": backend_of(run.model_path),
        "size_mb": round(size_on_disk(run.model_path) / 1e6, 3), **count_parameters(run.model_path),
        "latency_ms_p50": float(np.percentile(latencies, 50)), "latency_ms_p95": float(np.percentile(latencies, 95)),
        "throughput": float(np.median(passes)), "batch_size": cfg.batch_size, "threads": cfg.threads,
        "peak_memory_mb": None if peak is None else round(peak, 1), "timed_texts": inputs["rows"],
        "test_samples": test["samples"], **{k: test[k] for k in SHOWN if k in test},
    }


def size_on_disk(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in Path(model_dir).rglob("*") if f.is_file())


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

    from pretune.models.openvino_runner import is_openvino
    from pretune.models.static import WEIGHTS_FILE, is_static

    if is_openvino(model_dir):
        return _openvino_parameters(model_dir)

    weights = WEIGHTS_FILE if is_static(model_dir) else "model.safetensors"
    tensors = [t for name, t in load_file(str(model_dir / weights)).items() if name != "skip_ids"]
    return {"parameters": int(sum(t.size for t in tensors)),
            "nonzero_parameters": int(sum(np.count_nonzero(t) for t in tensors))}


def _openvino_parameters(model_dir: Path) -> dict:
    """An OpenVINO model's weights: its Constant ops with at least one axis, float or int8."""
    from pretune.models.openvino_runner import OPENVINO_FILE, import_openvino

    model = import_openvino().Core().read_model(str(model_dir / OPENVINO_FILE))
    arrays = [op.get_data() for op in model.get_ordered_ops() if op.get_type_name() == "Constant"
              and len(op.get_output_shape(0)) >= 1 and op.get_output_element_type(0).get_type_name()
              in ("f32", "f16", "i8", "u8")]
    return {"parameters": int(sum(a.size for a in arrays)),
            "nonzero_parameters": int(sum(np.count_nonzero(a) for a in arrays))}


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
