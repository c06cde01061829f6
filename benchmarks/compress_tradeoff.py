"""pretune compress on the real bundled model fine-tuned on Rotten Tomatoes: every variant
measured the same way (pretune.measure, each in a fresh process, fixed threads), as ratios
against the torch fp32 model, beside the peer a user gets today in one command: ONNX Runtime
`quantize_dynamic` of the plainly exported model (what Optimum's quantizer runs).

    python benchmarks/compress_tradeoff.py [--teacher RUN_DIR] [--work DIR] [--threads 2]

Timing: `--rounds` rounds interleaved across variants (the first also measures accuracy); each
variant keeps its best round, since other processes may share the machine.
Without --teacher it fine-tunes all-MiniLM-L6-v2 first (4,000 training rows, 2 epochs, max
length 64). Accuracy is on the whole bundled test split; timing on its first 256 texts.
Writes results/compress_tradeoff.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of_rounds, machine, print_table, write_json  # noqa: E402

TEACHER_RECIPE = {"seed": 42, "data": {"source": "rotten-tomatoes", "max_train_samples": 4000, "max_length": 64},
                  "train": {"epochs": 2, "batch_size": 32, "checkpoint_every_steps": None, "optimizer": {"lr": 1e-4}}}
# name: (parent name, step, --set overrides)
VARIANTS = {
    "onnx-fp32": ("teacher", "export", []),
    "onnx-fp32-fused": ("teacher", "export", ["compress.export.optimize=true"]),
    "pretune-int8": ("teacher", "quantize", ["compress.quantize.max_drop=1.0"]),
    "pretune-int8-static": ("teacher", "quantize", ["compress.quantize.mode=static",
                                                    "compress.quantize.calibration=minmax"]),
    "pretune-int8-static-percentile": ("teacher", "quantize", ["compress.quantize.mode=static",
                                                               "compress.quantize.calibration=percentile"]),
    "torch-int8": ("teacher", "quantize", ["compress.quantize.backend=torch"]),
    "prune-30": ("teacher", "prune", ["compress.prune.heads=0.3", "compress.prune.neurons=0.3",
                                      "compress.prune.recovery_epochs=0.5"]),
    "prune-30-int8": ("prune-30", "quantize", ["compress.quantize.max_drop=1.0"]),
    "magnitude-50": ("teacher", "prune", ["compress.prune.method=magnitude", "compress.prune.sparsity=0.5",
                                          "compress.prune.recovery_epochs=0"]),
    "distill-3": ("teacher", "distill", ["compress.distill.num_layers=3", "compress.distill.epochs=2",
                                         "compress.distill.lr=2e-4"]),
    "distill-3-trim": ("distill-3", "trim-vocab", []),
    "chain-int8": ("distill-3-trim", "quantize", ["compress.quantize.max_drop=1.5"]),
    "chain-int8-static": ("distill-3-trim", "quantize", ["compress.quantize.mode=static",
                                                         "compress.quantize.calibration=minmax"]),
    # The same without ONNX Runtime's transformer fusions, which help at batch 1 but may cost at batch 32.
    "pretune-int8-unfused": ("teacher", "quantize", ["compress.quantize.max_drop=1.0",
                                                     "compress.quantize.optimize=false"]),
    "chain-int8-unfused": ("distill-3-trim", "quantize", ["compress.quantize.max_drop=1.5",
                                                          "compress.quantize.optimize=false"]),
    # The far end of the front: a Model2Vec static-embedding student (no training of the encoder).
    "static-256": ("teacher", "static", ["compress.static.dimensions=256"]),
    # The same student reading whole texts (up to 512 tokens) where the teacher read its max_length.
    "static-256-long": ("teacher", "static", ["compress.static.dimensions=256", "compress.static.max_length=512"]),
    # OpenVINO: NNCF static int8 of the export, and the faster of it and ONNX Runtime's int8.
    "openvino-int8": ("teacher", "quantize", ["compress.quantize.backend=openvino"]),
    "auto-int8": ("teacher", "quantize", ["compress.quantize.backend=auto", "compress.quantize.max_drop=1.0"]),
}


# --quick (a busy machine): no training at all. Pruning without recovery fine-tuning, and in
# place of the distilled student the teacher's layers 0, 2, 4 untrained: speed and size only,
# as the "speed-only ceiling of the chain".
QUICK = {
    "prune-30": ("teacher", "prune", ["compress.prune.heads=0.3", "compress.prune.neurons=0.3",
                                      "compress.prune.recovery_epochs=0"]),
    "layers-3-untrained": ("teacher", None, []),
    "layers-3-trim": ("layers-3-untrained", "trim-vocab", []),
    "chain-int8": ("layers-3-trim", "quantize", []),
    "chain-int8-static": ("layers-3-trim", "quantize", ["compress.quantize.mode=static",
                                                        "compress.quantize.calibration=minmax"]),
    "static-256": VARIANTS["static-256"],  # no encoder training: quick enough for a busy machine
}


def untrained_student(teacher, out: Path):
    """Layer surgery of the teacher (layers 0, 2, 4) saved as a run, without any training."""
    from pretune.compress.loaded import LoadedRun
    from pretune.compress.variant import write_variant
    from pretune.models.surgery import apply_surgery
    from pretune.recipe import SurgeryConfig

    parent = LoadedRun(teacher)
    model = parent.model("surgery")
    apply_surgery(model, SurgeryConfig(num_layers=3))

    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        parent.preprocessor.save_pretrained(model_dir)

    return write_variant(out, parent, "surgery (untrained: speed only)", {"num_layers": 3}, save).run


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "avx_vnni")
    return " ".join(f for f in flags.split(":", 1)[1].split() if f in wanted)


def peer(teacher, export_run, out: Path):
    """The peer: plain quantize_dynamic (default settings, no graph fusion) of the exported model."""
    from onnxruntime.quantization import quantize_dynamic

    from pretune.compress.loaded import LoadedRun
    from pretune.compress.variant import finish_variant

    shutil.copytree(export_run.path, out)
    (out / "metrics.json").unlink()
    quantize_dynamic(str(export_run.model_path / "model.onnx"), str(out / "model" / "model.onnx"))
    return finish_variant(out, LoadedRun(teacher), "peer: onnxruntime.quantization.quantize_dynamic", {}).run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", type=Path, help="a finished fit run of the bundled model")
    parser.add_argument("--work", type=Path, default=Path("/tmp/pretune-compress-tradeoff"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="variants to build and measure (default: all)")
    parser.add_argument("--quick", action="store_true", help="no training (busy machine): see QUICK")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; each variant keeps its best")
    parser.add_argument("--build-only", action="store_true", help="build the variants, measure nothing")
    parser.add_argument("--results", default="compress_tradeoff", help="results/NAME.json (a partial --only run: "
                                                                          "another name keeps the full table)")
    args = parser.parse_args()
    import pretune
    from pretune.compress.tree import measure_table, resolve_config, run_step

    args.work.mkdir(parents=True, exist_ok=True)  # variants already built there are reused
    if args.teacher is None and (args.work / "teacher" / "metrics.json").is_file():
        args.teacher = args.work / "teacher"  # a rerun measures the same teacher again
    teacher = pretune.load_run(args.teacher) if args.teacher else pretune.fit(TEACHER_RECIPE, args.work / "teacher",
                                                                               quiet=True)
    runs, seconds = {"teacher": teacher}, {}
    variants = dict(VARIANTS)
    if args.quick:
        for name in ("prune-30", "distill-3", "distill-3-trim", "chain-int8", "chain-int8-static"):
            variants.pop(name)
        variants.pop("prune-30-int8")
        variants |= {**QUICK, "prune-30-int8": VARIANTS["prune-30-int8"]}
    for name, (parent, step, overrides) in variants.items():
        if args.only and name not in args.only:
            continue
        if (args.work / name / "metrics.json").is_file():
            runs[name] = pretune.load_run(args.work / name)
            continue
        shutil.rmtree(args.work / name, ignore_errors=True)  # a half-built one from a killed run
        print(f"building {name} ({step} of {parent}) ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        if step is None:
            runs[name] = untrained_student(runs[parent], args.work / name)
        else:
            cfg = resolve_config(runs[parent], [step], overrides=overrides)
            runs[name] = run_step(runs[parent], step, args.work / name, cfg)
        seconds[name] = time.perf_counter() - start
    if "onnx-fp32" in runs:
        shutil.rmtree(args.work / "peer-ort-int8", ignore_errors=True)
        runs["peer-ort-int8"] = peer(teacher, runs["onnx-fp32"], args.work / "peer-ort-int8")
    if args.build_only:
        return
    cfg = resolve_config(teacher, ["export"], overrides=[f"compress.measure.threads={args.threads}"])
    print("measuring ...", file=sys.stderr, flush=True)
    rows = measure_table(runs, cfg, args.work / ".measure-work")
    best_of_rounds(rows, list(runs.values()), cfg.measure, args.rounds)
    for row, name in zip(rows, runs, strict=True):
        row["name"], row["build_s"] = name, seconds.get(name)
        row["size_mb"] = round(row["size_mb"], 2)
    peer_row = next((r for r in rows if r["name"] == "peer-ort-int8"), None)
    if peer_row:
        for row in rows:
            row["vs_peer_batch"] = row["throughput"] / peer_row["throughput"]
            row["vs_peer_size"] = row["size_mb"] / peer_row["size_mb"]
    print(f"CPU flags: {cpu_flags()}; threads {args.threads}; "
          f"torch fp32: {rows[0]['throughput']:.1f} texts/s at batch 32, "
          f"{rows[0]['latency_ms_p50']:.2f} ms at batch 1, "
          f"{rows[0]['size_mb']:.1f} MB")
    print_table(rows, ["name", "backend", "accuracy", "drop_points", "speedup_batch", "speedup_latency", "size_ratio",
                       "vs_peer_batch", "vs_peer_size", "throughput", "latency_ms_p50", "latency_ms_p95", "size_mb",
                       "nonzero_parameters", "peak_memory_mb"])
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": {**machine(), "cpu_flags": cpu_flags()},
               "variants": {k: list(map(str, v)) for k, v in variants.items()}, "rows": rows,
               "notes": {r["name"]: runs[r["name"]].metrics.get("compress", {}) for r in rows}}
    print(f"\nwrote {write_json(args.results, payload)}")


if __name__ == "__main__":
    main()
