"""pretune compress on image runs: EfficientNet-Lite0 fine-tuned on a Fashion-MNIST slice, then
exported, int8-quantized (static by ONNX Runtime and by NNCF on OpenVINO, and dynamic for
comparison), channel-pruned (30 % + recovery) and distilled from a fine-tuned EfficientNet-Lite2;
every variant measured the same way (pretune's measure, each in a fresh process, fixed threads)
into the compression table, with ratios against the torch fp32 Lite0.

    python benchmarks/vision_compress.py [--samples 320] [--eval-samples 160] [--image-size 64]
                                         [--epochs 3] [--threads 2] [--timed 400] [--repeats 10]
                                         [--rounds 3] [--no-distill] [--work DIR (kept; reused)]

Fine-tuning is feature extraction (freeze + feature cache: on so few images it beats full
fine-tuning, see benchmarks/vision.py); pruning's recovery trains the whole pruned network for
`--recovery-epochs`; the distilled Lite0 trains like its teacher (head on the cached teacher
logits). Accuracy is on the test slice; timing on its first `--timed` images. Without
/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist) it uses mnist-5k.
Writes results/vision_compress.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of_rounds, cpu_flags_line, machine, print_table, write_json  # noqa: E402

# name: (parent name, step, --set overrides)
VARIANTS = {
    "onnx-fp32": ("lite0", "export", []),
    "int8-static": ("lite0", "quantize", ["compress.quantize.calibration=minmax"]),
    "int8-static-percentile": ("lite0", "quantize", ["compress.quantize.calibration=percentile"]),
    "int8-static-entropy": ("lite0", "quantize", ["compress.quantize.calibration=entropy"]),
    "int8-dynamic": ("lite0", "quantize", ["compress.quantize.mode=dynamic"]),
    "pruned-30": ("lite0", "prune", ["compress.prune.channels=0.3"]),
    "pruned-30-onnx": ("pruned-30", "export", []),
    "pruned-30-int8": ("pruned-30", "quantize", ["compress.quantize.calibration=minmax"]),
    "pruned-30-int8-percentile": ("pruned-30", "quantize", ["compress.quantize.calibration=percentile"]),
    "distilled-lite2": ("lite2", "distill", ["compress.distill.student=efficientnet-lite0"]),
    # Static int8 by NNCF on OpenVINO, and the faster of it and ONNX Runtime's inside 1 point.
    "openvino-fp32": ("lite0", "export", ["compress.export.format=openvino"]),
    "openvino-int8-static": ("lite0", "quantize", ["compress.quantize.backend=openvino"]),
    "auto-int8-static": ("lite0", "quantize", ["compress.quantize.backend=auto", "compress.quantize.max_drop=1.0"]),
    "pruned-30-openvino-int8": ("pruned-30", "quantize", ["compress.quantize.backend=openvino"]),
}
COLUMNS = ["name", "backend", "accuracy", "size_mb", "parameters", "latency_ms_p50", "latency_ms_p95", "throughput",
           "peak_memory_mb", "speedup_batch", "speedup_latency", "size_ratio", "drop_points", "seconds"]


def recipe(args, model: str) -> dict:
    source = "fashion-mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "mnist-5k"
    return {"seed": 0, "model": {"source": model}, "strategy": {"name": "freeze"},
            "data": {"task": "image-classification", "source": source, "image_size": args.image_size,
                     "max_train_samples": args.samples, "max_eval_samples": args.eval_samples},
            "train": {"epochs": args.epochs, "batch_size": 32, "eval_batch_size": 32, "optimizer": {"lr": 3e-3},
                      "checkpoint_every_steps": None, "mixed_precision": "no"},
            "compress": {"prune": {"recovery_epochs": args.recovery_epochs, "lr": 1e-3},
                         "distill": {"epochs": args.epochs},
                         "measure": {"threads": args.threads, "samples": args.timed, "repeats": args.repeats}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=320)
    parser.add_argument("--eval-samples", type=int, default=160)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--recovery-epochs", type=float, default=1)
    parser.add_argument("--threads", type=int, default=2)
    # An ONNX Lite0 at 64 px runs ~2,500 images/s: 128 images is a 50 ms pass, too short to time.
    parser.add_argument("--timed", type=int, default=400, help="test images timed per variant")
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per variant (the median is kept)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds interleaved across the variants; "
                                                              "each keeps its best")
    parser.add_argument("--no-distill", action="store_true", help="skip the Lite2 teacher and its student")
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()

    import pretune
    from pretune.compress.tree import measure_table, resolve_config, run_step

    work = args.work or Path(tempfile.mkdtemp(prefix="vision-compress-"))
    runs, seconds = {}, {}
    try:
        for name, model in (("lite0", "efficientnet-lite0"), ("lite2", "efficientnet-lite2")):
            if name == "lite2" and args.no_distill:
                continue
            start = time.perf_counter()
            if (work / name / "metrics.json").is_file():  # built by an earlier run with the same --work
                runs[name] = pretune.load_run(work / name)
            else:
                runs[name] = pretune.fit(recipe(args, model), work / name, quiet=True)
            seconds[name] = time.perf_counter() - start
            print(f"{name}: test accuracy {runs[name].metrics['test']['accuracy']:.3f} ({seconds[name]:.0f} s)",
                  flush=True)
        for name, (parent, step, overrides) in VARIANTS.items():
            if parent not in runs:
                continue
            start = time.perf_counter()
            cfg = resolve_config(runs[parent], [step], overrides=overrides)
            built = (work / name / "metrics.json").is_file()
            runs[name] = pretune.load_run(work / name) if built else run_step(runs[parent], step, work / name, cfg)
            seconds[name] = time.perf_counter() - start
            print(f"{name}: test accuracy {runs[name].metrics['test']['accuracy']:.3f} ({seconds[name]:.0f} s)",
                  flush=True)
        cfg = resolve_config(runs["lite0"], ["export"])
        rows = measure_table(runs, cfg, work / ".measure-work")  # the first (torch fp32 Lite0) is the reference
        best_of_rounds(rows, [runs[n] for n in runs], cfg.measure, args.rounds)
        for row in rows:
            row["seconds"] = seconds[row["name"]]
        print(f"# EfficientNet-Lite0 on {runs['lite0'].recipe.data.source}: {args.samples} train / "
              f"{args.eval_samples} test images at {args.image_size} px; measured with {args.threads} threads; "
              f"{cpu_flags_line()}")
        print_table(rows, COLUMNS)
        payload = {"machine": machine(), "args": {**vars(args), "work": str(work)}, "rows": rows,
                   "notes": {n: r.metrics.get("compress", {}) for n, r in runs.items()}}
        print(f"results: {write_json('vision_compress', payload)}")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
