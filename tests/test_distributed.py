"""Data-parallel training through accelerate: two CPU processes (gloo) launched by torchrun."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pretune
from tests.conftest import tiny_recipe


def test_two_process_ddp_fit_shards_batches_and_writes_one_run(tmp_path, tiny_model_dir, sentiment_csv):
    # The schedule in epochs converts with the steps per epoch of both ranks together.
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=6,
                         schedule={"name": "step", "step_size_epochs": 3, "gamma": 0.5, "warmup_ratio": 0})
    out = tmp_path / "ddp"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import pretune
        pretune.fit({recipe!r}, {str(out)!r}, quiet=True)
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # 192 training rows, batch 16: 12 batches an epoch, 6 on each rank -> 6 steps an epoch.
    assert metrics["train"]["steps"] == 36
    rates = {r["step"]: r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "train"}
    assert rates[16] == 5e-3 and rates[18] == 2.5e-3 and rates[36] == 1.25e-3  # halved every 18 steps
    assert metrics["test"]["accuracy"] >= 0.7
    assert not list(out.rglob("*.tmp"))
    # Each rank ran half of the validation batches; the gathered figures are the whole split's.
    single = pretune.load_run(out).evaluate(split="validation")
    assert metrics["validation"]["samples"] == single["samples"]
    assert abs(metrics["validation"]["accuracy"] - single["accuracy"]) <= 0.02


def test_the_cli_under_torchrun_agrees_on_one_run_directory(tmp_path, tiny_model_dir, sentiment_csv):
    """No --out: both processes must pick the main process's timestamped directory; only the
    main process writes and prints, and the other exits 0 without reading a half-written run."""
    import yaml

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tiny_model_dir, sentiment_csv, epochs=2)))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pretune", "fit",
         str(recipe), "--quiet"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert proc.stdout.split() == [str(Path("runs") / run_dir.name)]  # printed once, by the main process
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["train"]["steps"] == 12
    assert (run_dir / "model" / "model.safetensors").is_file()


def test_two_process_adapt_shards_the_texts_and_writes_one_masked_lm(tmp_path, tiny_model_dir, sentiment_csv):
    """`pretune adapt` under torchrun, as fit: one run directory, the batches shared by the ranks."""
    import yaml

    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    recipe["pretrain"] = {"epochs": 2, "batch_size": 16, "lr": 5e-3, "validation_texts": 24}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    single = pretune.adapt(recipe, tmp_path / "single", quiet=True)
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "pretune", "adapt",
         str(tmp_path / "recipe.yaml"), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(out)]  # printed once, by the main process
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["task"] == "masked-lm"
    assert metrics["train"]["texts"] == single.metrics["train"]["texts"]
    # 173 texts, batch 16: 11 batches an epoch; each rank takes 5 (the odd batch is left out, as
    # in fit) -> 10 steps in 2 epochs, against one process's 22.
    assert (metrics["train"]["steps"], single.metrics["train"]["steps"]) == (10, 22)
    # Each rank evaluated half of the held-out texts; the gathered count is all of them.
    assert metrics["validation"]["masked_tokens"] == single.metrics["validation"]["masked_tokens"]
    assert (out / "model" / "model.safetensors").is_file() and not list(out.rglob("*.tmp"))
