"""The autopilot's time limit, measured: `pretune pipeline DATA --label L --time-limit T` at several
limits, each in its own process, on the whole Rotten Tomatoes set written as a CSV with its own
column names (the autopilot carves validation and test from it) and on an image folder (mnist-5k
written as one PNG folder per digit).

    python benchmarks/autopilot.py [--limits 5m,10m,20m] [--data text,image] [--preset balanced]
                                   [--no-baseline] [--tiny]

Per run: the limit, each stage's seconds and status, the wall time of the whole pipeline (from the
call to the released model), the overrun past the limit, the released model's test accuracy and
its throughput against the fine-tuned model's (speed-up). Targets (issue 29): the pipeline ends
within the limit plus 5% (or plus 30 s, whichever is larger) and releases a model, at every limit;
at 20 minutes the test accuracy is no worse than examples/demo.yaml fine-tuned by hand (rerun here
on the same file and split: the baseline row) and the speed-up >= 5x. Writes results/autopilot.json.

`--tiny` proves the script works on a loaded machine (a random 2-layer model, 400 reviews, one 3-minute
limit, text only, preset fast; results/autopilot-tiny.json): its figures are not the claim.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_flags_line, machine, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.yaml"
TARGET_OVERRUN, TARGET_SLACK, TARGET_SPEEDUP = 0.05, 30.0, 5.0


def write_data(kind: str, where: Path, rows: int | None) -> tuple[Path, str]:
    """The data file (or folder) and its label column."""
    from pretune.data.bundled import datasets

    if kind == "text":
        frame = datasets.get("rotten-tomatoes")().rename(columns={"text": "review", "label": "sentiment"})
        if rows:
            frame = frame.sample(n=rows, random_state=0)
        path = where / "reviews.csv"
        frame.to_csv(path, index=False)
        return path, "sentiment"
    from PIL import Image

    frame = datasets.get("mnist-5k")()
    if rows:
        frame = frame.sample(n=rows, random_state=0)
    root = where / "digits"
    for i, (image, label) in enumerate(zip(frame["image"], frame["label"], strict=True)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / str(label) / f"{i}.png")
    return root, "label"


def one(args) -> dict:
    """One pipeline (in this process: the parent starts one process per run)."""
    import pretune

    overrides = [f"model.source={args.model}"] if args.model else []
    out = Path(args.work) / f"{args.kind}-{args.limit}"
    started = time.time()
    error = None
    try:
        result = pretune.pipeline(args.data, out, label=args.label, preset=args.preset, time_limit=args.limit,
                                  overrides=overrides, quiet=True)
    except Exception as e:  # noqa: BLE001 - a run that failed is a row of the table, not the end of it
        result, error = None, f"{type(e).__name__}: {e}"
    wall = time.time() - started
    from pretune.pipeline.clock import parse_limit

    limit = parse_limit(args.limit)
    row = {"data": args.kind, "limit_s": limit, "wall_s": round(wall, 1), "overrun_s": round(wall - limit, 1),
           "within": wall <= limit + max(TARGET_OVERRUN * limit, TARGET_SLACK), "error": error}
    if result is not None:
        stages = result.summary["stages"]
        figures = result.figures
        row.update({f"{s}_s": stages[s].get("seconds") for s in stages},
                   statuses={s: stages[s]["status"] for s in stages}, released=result.model.is_dir(),
                   test_accuracy=figures["chosen"].get(f"test_{figures['metric']}"),
                   fine_tuned_accuracy=figures["fine_tuned"].get(f"test_{figures['metric']}"),
                   speedup=figures["ratio"].get("throughput"), chosen=_node_name(result.chosen.path, out))
    return row


def _node_name(chosen: Path, out: Path) -> str:
    """The released node as the compression names it (distill/trim-vocab/quantize), or "fit"."""
    try:
        return str(chosen.relative_to(out / "compress"))
    except ValueError:
        return chosen.name


def baseline(args) -> dict:
    """examples/demo.yaml's fit (no compression) on the same file and split the autopilot infers."""
    import yaml

    import pretune
    from pretune.data.infer import infer

    recipe = yaml.safe_load(DEMO.read_text())
    recipe.pop("compress", None)
    recipe["data"] = {**recipe["data"], **infer(args.data, args.label).data}
    recipe["data"].pop("max_train_samples", None)  # the whole training split, as the autopilot has
    if args.model:
        recipe["model"] = {"source": args.model}
    started = time.time()
    run = pretune.fit(recipe, Path(args.work) / "baseline", report=False, quiet=True)
    return {"data": "text", "limit_s": None, "wall_s": round(time.time() - started, 1), "chosen": "demo.yaml by hand",
            "test_accuracy": run.metrics["test"]["accuracy"]}


def tiny_model(where: Path) -> str:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pretune.models import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source("minilm-l6"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    path = where / "tiny-bert"
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", default="5m,10m,20m")
    parser.add_argument("--data", default="text,image", help="text, image or both (comma-separated)")
    parser.add_argument("--preset", default="balanced")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a smoke run on a random tiny model (see the docstring)")
    parser.add_argument("--out", help="keep the pipelines here (default: a temporary directory)")
    parser.add_argument("--results", default="autopilot", help="results/NAME.json (a partial run: another name "
                                                                 "keeps the full table)")
    # The child process's own arguments.
    parser.add_argument("--only", choices=["run", "baseline"], help=argparse.SUPPRESS)
    for name in ("work", "kind", "limit", "label", "model", "rows"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--data-path", dest="data_path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        args.data = args.data_path
        print(json.dumps(one(args) if args.only == "run" else baseline(args)))
        return
    print(cpu_flags_line(), flush=True)
    kinds = args.data.split(",")
    limits = args.limits.split(",")
    if args.tiny:
        kinds, limits, rows, args.preset = ["text"], ["3m"], 400, "fast"
    else:
        rows = None
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        model = tiny_model(work) if args.tiny else None
        base = {"work": str(work), "model": model, "preset": args.preset}
        for kind in kinds:
            path, label = write_data(kind, work, rows)
            shared = {**base, "kind": kind, "label": label, "data_path": str(path)}
            if kind == "text" and not args.no_baseline:
                rows_out.append(_child(shared, only="baseline"))
            for limit in limits:
                rows_out.append(_child(shared, only="run", limit=limit))
                print(json.dumps(rows_out[-1]), flush=True)
    columns = ["data", "limit_s", "wall_s", "overrun_s", "within", "check_s", "search_s", "fit_s", "compress_s",
               "report_s", "release_s", "test_accuracy", "speedup", "chosen", "error"]
    print_table(rows_out, columns)
    payload = {"machine": machine(), "cpu": cpu_flags_line(), "tiny": args.tiny, "preset": args.preset,
               "rows": rows_out, "targets": {"overrun": TARGET_OVERRUN, "slack_s": TARGET_SLACK,
                                             "speedup_at_20m": TARGET_SPEEDUP}}
    path = write_json("autopilot-tiny" if args.tiny else args.results, payload)
    print(f"wrote {path}")


def _child(options: dict, **extra) -> dict:
    import subprocess

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**options, **extra}.items() if v is not None]
    proc = subprocess.run([sys.executable, __file__, *flags], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"data": options["kind"], "limit_s": extra.get("limit"), "error": proc.stderr.strip()[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
