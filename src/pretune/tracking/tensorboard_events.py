"""TensorBoard: event files under the run (`tb/`), through torch's SummaryWriter.

Every scalar of metrics.jsonl at its step (`train/loss`, `train/lr`, `validation/accuracy`, ...),
the recipe as text, and at the end `add_hparams` with the final metrics, so TensorBoard's HParams
tab puts a search's trials (each `trial-NNNN/tb`) side by side: `tensorboard --logdir runs`.
"""

from __future__ import annotations

from pathlib import Path

from pretune.errors import MissingExtraError
from pretune.tracking.records import final_scalars, flatten, record_scalars

TB_DIR = "tb"
# Recipe sections that describe the trained model; search / compress / tracking settings do not.
HPARAM_SECTIONS = ("seed", "model", "data", "train", "strategy")


def summary_writer(log_dir: Path | None = None):
    """torch's SummaryWriter on `log_dir` (None: only check that TensorBoard is installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise MissingExtraError("tensorboard", "tracking") from None
    return None if log_dir is None else SummaryWriter(log_dir=str(log_dir))


class TensorBoardCallback:
    """Writes each new metrics.jsonl record's scalars as the loop appends them."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.writer, self.logged = run_dir, None, 0
        summary_writer()  # a missing package fails before training, not after it

    def on_fit_start(self, state) -> None:
        if not state.accelerator.is_main_process:
            return
        from pretune.runs import RECIPE

        self.writer = summary_writer(self.run_dir / TB_DIR)
        # A resumed fit: the killed process logged the history its checkpoint holds.
        self.logged = len(state.history)
        if not state.history:
            recipe = (self.run_dir / RECIPE).read_text() if (self.run_dir / RECIPE).is_file() else ""
            # Indented four spaces: TensorBoard renders text as markdown, this keeps the YAML as code.
            self.writer.add_text("recipe", "".join(f"    {line}\n" for line in recipe.splitlines()))

    def _write(self, state) -> None:
        if self.writer is None:
            return
        for record in state.history[self.logged:]:
            for tag, value in record_scalars(record):
                self.writer.add_scalar(tag, value, global_step=record.get("step", 0))
        self.logged = len(state.history)

    on_batch_end = on_evaluate = on_epoch_end = _write

    def on_fit_end(self, state) -> None:
        self._write(state)
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def write_hparams(run, measured: dict | None = None) -> None:
    """`add_hparams`: the recipe's model / data / train / strategy settings against the final
    metrics (and a compression's measured figures) in the run's own `tb/`."""
    dump = run.recipe.model_dump(mode="json")
    hparams = flatten({k: dump[k] for k in HPARAM_SECTIONS})
    metrics = {f"final/{k}": v for k, v in final_scalars(run.metrics).items()}
    metrics.update({f"measured/{k}": float(v) for k, v in (measured or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if not metrics:
        return
    writer = summary_writer(run.path / TB_DIR)
    try:
        # run_name ".": the hparams sit in the run's own event directory, beside its curves.
        writer.add_hparams(hparams, metrics, run_name=".", global_step=run.metrics.get("train", {}).get("steps"))
    finally:
        writer.close()
