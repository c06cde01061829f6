"""Data-parallel training through accelerate: two CPU processes (gloo) launched by torchrun."""

import json
import subprocess
import sys
import textwrap

from tests.conftest import tiny_recipe


def test_two_process_ddp_fit_shards_batches_and_writes_one_run(tmp_path, tiny_model_dir, sentiment_csv):
    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=6)
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
    assert metrics["test"]["accuracy"] >= 0.7
    assert not list(out.rglob("*.tmp"))
