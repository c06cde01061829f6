"""The full-data example recipe, with the test accuracy of the model at every validation pass.

    python benchmarks/full_recipe.py [--recipe examples/rotten_tomatoes_full.yaml] [--out DIR]

Runs the recipe exactly as `pretune fit` does and, beside each validation evaluation, also
measures the test split. That is for reading the noise of the final figure only: a recipe must
never be chosen by these test figures. The table shows how far test accuracy moves while
validation accuracy stays flat, and what `train.keep_best` (best validation evaluation) would
have scored. Writes results/full_recipe.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


class TestAlongside:
    """A callback: after each validation pass, the same model's accuracy on the test split."""

    def __init__(self, recipe):
        from pretune.data import prepare
        from pretune.models import load_tokenizer
        from pretune.tasks import create_task

        self.task = create_task(recipe.data)
        data, tokenizer = prepare(recipe.data, self.task), load_tokenizer(recipe.model.source)
        self.test = self.task.encode(data.splits["test"], tokenizer, recipe.data.max_length)
        self.batch_size = recipe.train.eval_batch_size
        self.pad_id = tokenizer.pad_token_id or 0
        self.rows: list[dict] = []

    def on_evaluate(self, state) -> None:
        from pretune.evaluate import TorchRunner, evaluate

        runner = TorchRunner(state.accelerator.unwrap_model(state.model), state.accelerator.device,
                             state.accelerator.autocast)
        test = evaluate(runner, self.test, self.task, self.batch_size, self.pad_id)
        self.rows.append({"step": state.step, "epoch": round(state.step / state.steps_per_epoch, 2),
                          "validation_accuracy": state.last_eval["accuracy"], "test_accuracy": test["accuracy"]})


def main() -> None:
    import pretune

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "examples" / "rotten_tomatoes_full.yaml"))
    parser.add_argument("--out", help="keep the run here (default: a temporary directory)")
    args = parser.parse_args()

    recipe = pretune.Recipe.load(args.recipe)
    alongside = TestAlongside(recipe)
    with tempfile.TemporaryDirectory() as tmp:
        run = pretune.fit(recipe, args.out or Path(tmp) / "run", callbacks=[alongside], quiet=True)
        metrics = run.metrics
    rows = alongside.rows
    print_table(rows, ["step", "epoch", "validation_accuracy", "test_accuracy"])
    best = max(rows, key=lambda r: r["validation_accuracy"])  # the first of equals, as keep_best
    late = [r["test_accuracy"] for r in rows if r["epoch"] >= metrics["train"]["epochs"] - 1.5]
    summary = {
        "final_test_accuracy": metrics["test"]["accuracy"],
        "keep_best_step": best["step"], "keep_best_test_accuracy": best["test_accuracy"],
        "last_1.5_epochs_test_range": [min(late), max(late)],
        "train_seconds": metrics["train"]["train_seconds"],
        "train_samples_per_second": metrics["train"]["train_samples_per_second"],
    }
    for key, value in summary.items():
        print(f"{key}: {value}")
    path = write_json("full_recipe", {"machine": machine(), "recipe": Path(args.recipe).name,
                                      "summary": summary, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
