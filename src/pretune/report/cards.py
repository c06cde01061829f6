"""Model cards: `README.md` in every saved model directory, in the Hugging Face model-card format.

The metadata (base model, library, pipeline tag, tags, datasets, licence, model-index results on
the test split) is built with huggingface_hub's `ModelCardData` / `EvalResult`, so the Hub and
`ModelCard.load` read it as they read any card. The body says how the model was trained, on what,
how well it does, what compression was applied and how fast and large the result measured, its
limitations, and code that loads it (the tests run that code).

Only directories are read (recipe.yaml, metrics.json, model/, a compression's compression.json),
defensively: a field another part adds later is used when present and skipped when absent.
"""

from __future__ import annotations

import json
from pathlib import Path

from pretune import atomic, runs
from pretune.errors import PretuneError
from pretune.predictor import saved_max_length
from pretune.runs import RunDir
from pretune.tasks import task_type

CARD = "README.md"
TABLE = runs.COMPRESSION

# What pretune knows about its bundled aliases: the Hub id of the same weights and their licence.
KNOWN_MODELS = {
    "minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "efficientnet-lite0": (None, "apache-2.0"),
    "efficientnet-lite1": (None, "apache-2.0"),
    "efficientnet-lite2": (None, "apache-2.0"),
}
# Bundled data sets and the Hub dataset id of the same data, where there is one.
KNOWN_DATASETS = {
    "rotten-tomatoes": "cornell-movie-review-data/rotten_tomatoes",
    "bbc-news": "SetFit/bbc-news",
    "fashion-mnist": "zalando-datasets/fashion_mnist",
    "mnist-5k": "ylecun/mnist",
    "wnut16": "wnut16",
    "wnut16-types": "wnut16",
}
# Scalars of metrics.json["test"] that are bookkeeping, not quality.
NOT_METRICS = {"samples", "loss", "eval_seconds"}
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")


def write_card(run: RunDir | str | Path, measured: dict | None = None) -> Path | None:
    """Write `model/README.md` of a run with a saved model; return its path (None: no model).

    `measured`: the run's row of a compression table (size, latency, throughput, CPU), when the
    caller holds it; else it is looked up in a compression.json beside the run."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData  # a dependency of transformers
    run = run if isinstance(run, RunDir) else RunDir(run)
    model_dir = run.path / runs.MODEL
    if not run.finished or not model_dir.is_dir():
        return None
    facts = _facts(run, measured)
    results = [EvalResult(task_type=facts["pipeline_tag"], dataset_type=facts["dataset_id"] or facts["data_name"],
                          dataset_name=facts["data_name"], dataset_split="test", metric_type=name,
                          metric_name=name, metric_value=value, task_name=facts["task"])
               for name, value in facts["test_metrics"].items()]
    data = ModelCardData(
        base_model=facts["base_hub_id"], library_name=facts["library"], pipeline_tag=facts["pipeline_tag"],
        tags=facts["tags"], datasets=[facts["dataset_id"]] if facts["dataset_id"] else None,
        license=facts["license"], model_name=facts["name"], eval_results=results or None,
        metrics=list(facts["test_metrics"]) or None,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{_body(run, facts)}")
    path = model_dir / CARD
    atomic.write_text(path, str(card))
    return path


def _facts(run: RunDir, measured: dict | None) -> dict:
    """Everything the card says, gathered once from the directories."""
    recipe, metrics = run.recipe, run.metrics
    chain = _compression_chain(run)
    origin = chain[-1]["parent_run"] if chain else run
    source = origin.recipe.model.source
    hub_id, license_ = KNOWN_MODELS.get(source, (None, None))
    if hub_id is None and source not in KNOWN_MODELS and _looks_like_hub_id(source):
        hub_id = source
    task = metrics.get("task") or origin.metrics.get("task") or recipe.data.task
    data_name = Path(recipe.data.train).name if recipe.data.train else recipe.data.source
    dataset_id = KNOWN_DATASETS.get(recipe.data.source)
    if recipe.data.source.startswith("hf:"):
        dataset_id = recipe.data.source[3:]
    if recipe.data.train or Path(recipe.data.source).suffix:
        dataset_id, data_name = None, Path(recipe.data.train or recipe.data.source).name
    onnx = (run.path / runs.MODEL / "model.onnx").is_file()
    steps = [link["step"] for link in reversed(chain)]
    tags = ["pretune", task, f"strategy-{origin.recipe.strategy.name}", *[f"compress-{s}" for s in steps]]
    if onnx:
        tags.append("onnx")
    test = metrics.get("test") or {}
    return {
        "name": run.path.name, "task": task, "source": source, "base_hub_id": hub_id, "license": license_,
        "library": "onnx" if onnx else "transformers", "onnx": onnx,
        "pipeline_tag": task_type(task).pipeline_tag,
        "tags": list(dict.fromkeys(tags)), "data_name": data_name, "dataset_id": dataset_id,
        "test_metrics": {k: v for k, v in test.items() if _is_number(v) and k not in NOT_METRICS},
        "chain": chain, "origin": origin, "measured": measured or _measured_row(run),
        "max_length": saved_max_length(run.path / runs.MODEL, recipe.data),  # effective: capped at the positions
        "warnings": [str(w) for w in metrics.get("warnings") or origin.metrics.get("warnings") or []],
    }


def _compression_chain(run: RunDir) -> list[dict]:
    """The compression steps that made this run, newest first: {step, settings, parent_run}."""
    chain, current, seen = [], run, set()
    while True:
        info = _metrics_or_empty(current).get("compress")
        if not isinstance(info, dict) or not info.get("parent") or current.path in seen:
            return chain
        seen.add(current.path)
        try:
            parent = RunDir(info["parent"])
        except Exception:  # a parent moved or deleted: the chain ends where the record does
            return chain
        chain.append({"step": info.get("step", "?"), "settings": info.get("settings") or {}, "parent_run": parent})
        current = parent


def write_compression_cards(root: str | Path) -> list[Path]:
    """A card for every variant under a compression directory (a chain or a tree of steps),
    each with its measured row of the root's compression.json."""
    root = Path(root)
    written = []
    for recipe in sorted(root.rglob(runs.RECIPE)):
        run_dir = recipe.parent
        if run_dir == root or any(part.startswith(".") for part in run_dir.relative_to(root).parts):
            continue  # the compression's own files, or a temporary directory being written
        path = write_card(run_dir, _measured_row(RunDir(run_dir), root / TABLE))
        if path:
            written.append(path)
    return written


def _measured_row(run: RunDir, table: Path | None = None) -> dict | None:
    """This run's row of a compression.json (given, or in the directory above the run)."""
    for path in [t for t in (table, run.path.parent / TABLE) if t is not None]:
        if not path.is_file():
            continue
        try:
            rows = runs.read_compression(path.parent)["rows"]
        except PretuneError:  # a table that is not pretune's: the card goes without its figures
            continue
        for row in rows:
            if row["name"] == run.path.name or Path(str(row.get("run", ""))).resolve() == run.path.resolve():
                return row
    return None


def _body(run: RunDir, f: dict) -> str:
    recipe, metrics = run.recipe, run.metrics
    origin = f["origin"].recipe
    base = f["base_hub_id"] or f["source"]
    lines = [f"# {f['name']}", "",
             f"A {f['task']} model fine-tuned from `{base}` by pretune, "
             f"with the `{origin.strategy.name}` strategy"
             + (f", then compressed by {' -> '.join(link['step'] for link in reversed(f['chain']))}."
                if f["chain"] else "."), ""]
    lines += ["## Training", "", *_training(f["origin"], f["max_length"]), ""]
    lines += ["## Data", "", *_data(recipe, metrics, f), ""]
    lines += ["## Metrics", "", *_metrics_table(metrics), ""]
    if f["chain"]:
        lines += ["## Compression", "", *_compression(f), ""]
    lines += ["## Limitations", "", *_limitations(recipe, f), ""]
    lines += ["## How to use", "", *_snippets(run, f), ""]
    return "\n".join(lines)


def _training(origin: RunDir, max_length: int) -> list[str]:
    recipe, train = origin.recipe, _metrics_or_empty(origin).get("train", {})
    tc = recipe.train
    rows = [("base model", f"`{recipe.model.source}`"), ("strategy", recipe.strategy.name),
            ("optimizer", f"{tc.optimizer.name}, lr {tc.optimizer.lr:g}, weight decay {tc.optimizer.weight_decay:g}"),
            ("schedule", f"{tc.schedule.name}, warm-up {tc.schedule.warmup_ratio:g}"),
            ("loss", train.get("loss_function") or tc.loss.name or "the task's default"),
            ("batch size", f"{tc.batch_size} x {tc.gradient_accumulation_steps} accumulation"),
            ("epochs", f"{tc.epochs:g}" + (f" ({train['steps']} steps)" if "steps" in train else "")),
            *([("max length", str(max_length))] if max_length else []), ("seed", str(recipe.seed))]
    if "train_seconds" in train:
        rows.append(("train time", f"{train['train_seconds']:.1f} s"))
    if train.get("best_step") is not None:
        rows.append(("weights", f"best validation {train.get('best_metric')} at step {train['best_step']}"))
    changes = _metrics_or_empty(origin).get("model", {}).get("changes") or []
    for change in changes:
        if isinstance(change, dict) and "change" in change:
            rows.append(("model", f"{change['change']}: {change.get('parameters', '?'):,} parameters"
                         if isinstance(change.get("parameters"), int) else change["change"]))
    return ["| setting | value |", "| --- | --- |", *(f"| {k} | {_cell(v)} |" for k, v in rows)]


def _data(recipe, metrics: dict, f: dict) -> list[str]:
    train = _metrics_or_empty(f["origin"]).get("train", {})
    sizes = [f"{split} {n:,}" for split, n in (("train", train.get("samples")),
                                                 ("validation", metrics.get("validation", {}).get("samples")),
                                                 ("test", metrics.get("test", {}).get("samples"))) if n]
    labels = (metrics.get("model") or _metrics_or_empty(f["origin"]).get("model", {})).get("labels")
    out = [f"- source: `{f['data_name']}`" + (f" (Hub: `{f['dataset_id']}`)" if f["dataset_id"] else "")]
    if sizes:
        out.append(f"- rows: {', '.join(sizes)}")
    if labels:
        out.append(f"- labels ({len(labels)}): {', '.join(f'`{_cell(str(x))}`' for x in labels[:30])}"
                   + (" ..." if len(labels) > 30 else ""))
    return out


def _metrics_table(metrics: dict) -> list[str]:
    splits = [s for s in ("validation", "test") if isinstance(metrics.get(s), dict)]
    names = [k for k in dict.fromkeys(k for s in splits for k, v in metrics[s].items() if _is_number(v))
             if k not in {"samples"}]
    if not names:
        return ["No metrics were recorded."]
    out = [f"| metric | {' | '.join(splits)} |", f"| --- |{' --- |' * len(splits)}"]
    for name in names:
        out.append(f"| {name} | " + " | ".join(_num(metrics[s].get(name)) for s in splits) + " |")
    return out + _temperature_lines(metrics.get("calibration") or {})


def _temperature_lines(calibration: dict) -> list[str]:
    if not _is_number(calibration.get("temperature")):
        return []
    where = "test" if _is_number(calibration.get("test_ece_after")) else "validation"
    before, after = calibration.get(f"{where}_ece_before"), calibration.get(f"{where}_ece_after")
    return ["", f"Probabilities are temperature-scaled (T = {_num(calibration['temperature'])}, fitted on the "
                f"validation split; Guo et al. 2017): expected calibration error on {where} {_num(before)} before, "
                f"{_num(after)} after. Every runner (torch, ONNX, compressed variants) applies it when it decodes."]


def _compression(f: dict) -> list[str]:
    out = []
    for i, link in enumerate(reversed(f["chain"]), start=1):
        settings = ", ".join(f"{k} {v}" for k, v in link["settings"].items() if not isinstance(v, (dict, list)))
        out.append(f"{i}. `{link['step']}`" + (f": {_cell(settings)}" if settings else ""))
    row = f["measured"]
    if row:
        shown = [("backend", row.get("backend")), ("size on disk (MB)", row.get("size_mb")),
                 ("latency p50, batch 1 (ms)", row.get("latency_ms_p50")),
                 ("latency p95, batch 1 (ms)", row.get("latency_ms_p95")),
                 (f"throughput, batch {row.get('batch_size', '?')} (per s)", row.get("throughput")),
                 ("peak memory (MB)", row.get("peak_memory_mb")),
                 ("x throughput of the original", row.get("speedup_batch")),
                 ("x size of the original", row.get("size_ratio")), ("accuracy drop (points)", row.get("drop_points"))]
        out += ["", "Measured by `pretune measure`"
                + (f" with {row['threads']} threads" if row.get("threads") else "") + f" on {row.get('cpu') or cpu()}:",
                "", "| measure | value |", "| --- | --- |",
                *(f"| {k} | {_num(v)} |" for k, v in shown if v is not None)]
    return out


def _limitations(recipe, f: dict) -> list[str]:
    task = task_type(f["task"])
    out = [*(f"- **Warning:** {_cell(w)}" for w in f.get("warnings") or []),
           f"- Measured only on the test split of `{f['data_name']}`; {task.inputs}s unlike its data may score "
           "lower.", f"- {task.card_limitation}"]
    if task.inputs == "text":
        out.append(f"- Inputs longer than {f['max_length']} tokens are truncated.")
    if f["onnx"]:
        out.append("- An ONNX model: it runs in ONNX Runtime (pretune's `compress` extra), not in torch.")
    if f["chain"]:
        out.append("- Compressed: the figures above are this variant's own, not the original's.")
    return out


def _snippets(run: RunDir, f: dict) -> list[str]:
    """Code that loads this model; the tests run every python block of a card."""
    path = str(run.path.resolve())
    task = task_type(f["task"])
    imports, example = task.card_example
    out = ["With pretune (any variant: torch, int8 or ONNX):", "", "```python", *imports,
           "import pretune", "", f"run = pretune.load_run({path!r})", f"print(run.predict({example}))", "```"]
    if _plain_transformers(run, f):
        auto = task.auto_class
        model_dir = str((run.path / runs.MODEL).resolve())
        out += ["", "With transformers alone:", "", "```python",
                f"from transformers import AutoTokenizer, {auto}", "",
                f"tokenizer = AutoTokenizer.from_pretrained({model_dir!r})",
                f"model = {auto}.from_pretrained({model_dir!r})",
                f'logits = model(**tokenizer({example}, return_tensors="pt")).logits',
                "print(logits.argmax(-1).tolist(), model.config.id2label)", "```"]
        if _temperature(model_dir) is not None:
            out += ["", f"Its probabilities are `softmax(logits / {_temperature(model_dir):.4g})` "
                        "(`config.pretune_temperature`, fitted on validation; the arg max is the same)."]
    elif f["onnx"] and task.inputs == "text":
        model_dir = str((run.path / runs.MODEL).resolve())
        out += ["", "With ONNX Runtime alone (the tokenizer is saved beside the model):", "", "```python",
                "import numpy as np", "import onnxruntime", "from transformers import AutoTokenizer", "",
                f"tokenizer = AutoTokenizer.from_pretrained({model_dir!r})",
                f"session = onnxruntime.InferenceSession({model_dir + '/model.onnx'!r}, "
                "providers=['CPUExecutionProvider'])",
                f'batch = tokenizer({example}, return_tensors="np")',
                "names = {i.name for i in session.get_inputs()}",
                "logits = session.run(None, {k: v.astype(np.int64) for k, v in batch.items() if k in names})[0]",
                "print(logits.argmax(-1).tolist())", "```"]
    return out


def _plain_transformers(run: RunDir, f: dict) -> bool:
    """Whether `from_pretrained` alone loads it: a text model in a plain Hugging Face layout."""
    model_dir = run.path / runs.MODEL
    if f["onnx"] or task_type(f["task"]).inputs != "text" or (model_dir / "adapter_config.json").is_file():
        return False
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    # A temperature only rescales the probabilities (the arg max is the same): the snippet says so.
    return (not any(k.startswith("pretune_") and k != "pretune_temperature" for k in config)
            and "quantization" not in json.dumps(config))


def _temperature(model_dir: str) -> float | None:
    try:
        value = json.loads((Path(model_dir) / "config.json").read_text()).get("pretune_temperature")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, (int, float)) else None


def cpu() -> str:
    """The CPU model and the flags that decide int8 / bf16 speed."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine() or "an unknown CPU"
    lines = text.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "a CPU")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    present = [flag for flag in CPU_FLAGS if flag in flags]
    return f"{model} (flags: {' '.join(present) or 'none of ' + ' '.join(CPU_FLAGS)})"


def _metrics_or_empty(run: RunDir) -> dict:
    try:
        return run.metrics
    except Exception:  # an unfinished parent: nothing to say about it
        return {}


def _looks_like_hub_id(source: str) -> bool:
    return not Path(source).expanduser().exists() and source.count("/") <= 1 and not source.startswith((".", "/", "~"))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else _cell(str(v))


def _cell(text: str) -> str:
    # Labels and settings come from the user's data: keep them from breaking the table or the page.
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
