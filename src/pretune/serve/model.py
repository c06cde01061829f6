"""The served model: a run's Predictor (its runner, tokenizer, task and decoding, exactly what
`pretune predict` uses) made safe to call from several inference threads at once.

Encoding holds a lock: a fast tokenizer's Rust object is mutated by each call that sets
truncation or padding, and two threads in it at once raise "Already borrowed". The forward
pass and decoding run unlocked (torch and ONNX Runtime release the GIL and are thread-safe
for inference).
"""

from __future__ import annotations

import threading
from pathlib import Path

from pretune.evaluate import run_split
from pretune.predictor import Predictor, Run


class ServedModel:
    """One run ready to answer: `predict(inputs, pairs)` gives `pretune predict`'s results."""

    def __init__(self, run: Run | str | Path, name: str | None = None, batch_size: int = 32):
        run = run if isinstance(run, Run) else Run(run)
        self.run = run
        self.name = name or run.path.resolve().name
        # The batcher hands over at most max_batch inputs: with this batch size they are one forward.
        self.predictor = Predictor(run.model_path, run.recipe.data, batch_size=batch_size)
        self.task = self.predictor.task
        self.pairs = bool(run.recipe.data.text_pair_column)  # the model reads (text, text_pair)
        self.backend = "onnxruntime" if (Path(run.model_path) / "model.onnx").is_file() else \
            "numpy" if (Path(run.model_path) / "static.json").is_file() else "torch"
        self._encoding = threading.Lock()

    @property
    def input_kind(self) -> str:
        return self.task.inputs  # "text" or "image"

    @property
    def input_names(self) -> tuple[str, ...]:
        return ("text", "text_pair") if self.pairs else (self.input_kind,)

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        return self.task.oip_outputs  # the task's: (name, datatype) in the order they are sent

    @property
    def label_names(self) -> list[str] | None:
        return self.task.label_names

    def predict(self, inputs: list, pairs: list[str] | None = None) -> list[dict]:
        """Predictor.predict_table's three steps, with the tokenizer under the lock."""
        p = self.predictor
        table = p.task.unlabelled(inputs, pairs)
        with self._encoding:
            split = p.encode(table)
        outputs, _ = run_split(p.runner, split, p.batch_size, p.pad_id)
        return p.task.decode(outputs, split, table)

    def metadata(self) -> dict:
        """The Open Inference Protocol's model metadata, with the task and its labels."""
        shape = [-1]
        return {
            "name": self.name, "versions": ["1"], "platform": f"pretune-{self.backend}",
            "inputs": [{"name": n, "datatype": "BYTES", "shape": shape} for n in self.input_names],
            "outputs": [{"name": n, "datatype": d, "shape": [-1, len(self.label_names or ())] if n == "scores"
                         else shape} for n, d in self.outputs],
            "parameters": {"task": self.task.name, "labels": self.label_names, "backend": self.backend},
        }
