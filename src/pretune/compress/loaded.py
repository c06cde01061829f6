"""A run loaded once for every step that starts from it: recipe, task, the data splits (read from
disk once per `pretune compress` command, by `Frames`), the preprocessor (a text run's tokenizer,
an image run's ImageSettings), encoded splits, the saved model and its evaluations. Measurements
encode their inputs from the same object."""

from __future__ import annotations

import copy
from pathlib import Path

from pretune import runs
from pretune.data import PreparedData, prepare
from pretune.data.encode import EncodedSplit, collate
from pretune.data.prepare import TextTable, load_frames
from pretune.errors import PretuneError
from pretune.evaluate import TorchRunner, evaluate
from pretune.predictor import HoldsInputs, Run, RunInputs
from pretune.recipe import DataConfig
from pretune.tasks import Task, create_task

# The DataConfig fields that decide what is read from disk (the rest shape rows after reading).
READ_FIELDS = {"source", "train", "validation", "test", "task", "text_column", "text_pair_column", "label_column",
               "label_separator", "encoding", "validation_fraction", "test_fraction", "split_seed", "drop_missing"}
SHOWN = ("accuracy", "f1_macro", "mse")
STATIC = "static"  # a static-embedding model (models/static.py): no step takes it further


class Frames:
    """The data tables of one command, read from disk once per data source: every run of a
    compression tree (and every fit inside it, through `fit(data=...)`) gets them from here."""

    def __init__(self):
        self._tables: dict[str, dict] = {}
        self.reads = 0

    def of(self, cfg: DataConfig, task: Task) -> dict:
        key = f"{cfg.model_dump_json(include=READ_FIELDS)}|{task.stratify}"
        if key not in self._tables:
            self.reads += 1
            self._tables[key] = load_frames(cfg, task.stratify)
        return self._tables[key]


def task_of(run: runs.RunDir) -> Task:
    """The run's task with the labels its saved model carries."""
    from pretune.models.load import load_saved_config

    task = create_task(run.recipe.data)
    task.restore(load_saved_config(run.model_path))
    return task


def backend_of(model_dir: Path) -> str:
    """torch-fp32, torch-int8, onnx-fp32, onnx-int8, openvino-fp32, openvino-int8 or static: what
    a model directory holds."""
    from pretune.models.onnx_runner import ONNX_FILE
    from pretune.models.openvino_runner import is_int8 as openvino_int8
    from pretune.models.openvino_runner import is_openvino
    from pretune.models.static import is_static

    model_dir = Path(model_dir)
    if is_static(model_dir):
        return STATIC
    if is_openvino(model_dir):
        return "openvino-int8" if openvino_int8(model_dir) else "openvino-fp32"
    if (model_dir / ONNX_FILE).is_file():
        import onnx

        graph = onnx.load(str(model_dir / ONNX_FILE), load_external_data=False).graph
        int8 = any(init.data_type in (2, 3) and len(init.dims) >= 1 for init in graph.initializer)
        return "onnx-int8" if int8 else "onnx-fp32"
    from pretune.models.quantized import quantization_of

    return "torch-int8" if quantization_of(model_dir) else "torch-fp32"


def load_runner(model_dir: str | Path, task: Task, threads: int | None = None):
    """The run's runner (ONNX, torch int8 or torch) on CPU, with `threads` intra-op threads."""
    import torch

    from pretune.models.onnx_runner import OnnxRunner
    from pretune.models.runners import load_runner as runner_of

    if threads:
        torch.set_num_threads(threads)
    runner = runner_of(model_dir, task, device="cpu")
    if threads and isinstance(runner, OnnxRunner):
        runner = OnnxRunner(runner.path, threads)
    if threads and type(runner).__name__ == "OpenVinoRunner":
        from pretune.models.openvino_runner import OpenVinoRunner

        runner = OpenVinoRunner(runner.path, threads)
    return runner


def head(table: TextTable, n: int | None) -> TextTable:
    if n is None or n >= len(table):
        return table
    return TextTable(table.texts[:n], table.pairs[:n] if table.pairs else None,
                     None if table.labels is None else table.labels[:n])


def input_batches(split: EncodedSplit, size: int, pad_id: int) -> list[dict]:
    """Model inputs of `size` rows each, in row order, collated (padded or normalised), no labels."""
    batches = []
    for start in range(0, len(split), size):
        batch = collate(split, list(range(start, min(start + size, len(split)))), pad_id)
        batch.pop("labels", None)
        batches.append(batch)
    return batches


class LoadedRun(HoldsInputs):
    """A finished run, loaded once; see the module docstring. `work`: the command's folder for
    temporary files (under its output directory, removed when the command starts and ends)."""

    def __init__(self, run: Run | str | Path, frames: Frames | None = None, work: Path | None = None,
                 loss=None):
        self.run = run if isinstance(run, Run) else Run(run)
        self.loss = loss  # a loss given in Python (`compress(loss=...)`): every fit of the tree trains on it
        self.path = self.run.path
        self.frames = frames or Frames()
        self.work = Path(work) if work else self.path.parent / ".pretune-work"
        self.recipe = self.run.recipe
        self.model_path = self.run.model_path
        self.inputs = RunInputs.load(self.model_path, self.recipe.data)  # what fit saved with the model
        self.kind = self.task.inputs
        self.backend = backend_of(self.model_path)
        self.data: PreparedData = prepare(self.recipe.data, self.task, label_names=self.task.label_names,
                                          frames=self.frames.of(self.recipe.data, self.task))
        self._encoded: dict[tuple, EncodedSplit] = {}
        self._model = None
        self._scores: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"LoadedRun({str(self.path)!r})"

    @property
    def tables(self) -> dict:
        """The command's data tables for this run's recipe: `fit(data=...)` takes them."""
        return self.frames.of(self.recipe.data, self.task)

    def encoded(self, split: str, n: int | None = None) -> EncodedSplit:
        """The split (its first `n` rows) encoded as this run's model takes it; once each."""
        key = (split, n if n is not None and n < len(self.data.splits[split]) else None)
        if key not in self._encoded:
            self._encoded[key] = self.inputs.encode(head(self.data.splits[split], key[1]))
        return self._encoded[key]

    def batches(self, split: str, n: int, size: int) -> list[dict]:
        return input_batches(self.encoded(split, n), size, self.pad_id)

    def model(self, step: str):
        """A fresh copy of the saved fp32 torch model (steps change it in place)."""
        if self.backend != "torch-fp32":
            raise PretuneError(f"step '{step}' needs a torch fp32 model but {self.path} holds {self.backend}; "
                               f"put quantize and export last")
        return copy.deepcopy(self._torch_model())

    def _torch_model(self):
        if self._model is None:
            from pretune.models.load import load_saved_model

            self._model = load_saved_model(self.model_path, self.task).eval()
        return self._model

    def runner(self, threads: int | None = None):
        """The saved model's runner, on CPU (an fp32 torch model loaded once, shared with `model`)."""
        if self.backend == "torch-fp32":
            if threads:
                import torch

                torch.set_num_threads(threads)
            return TorchRunner(self._torch_model())
        return load_runner(self.model_path, self.task, threads)

    def score(self, split: str, runner=None) -> dict:
        """Metrics of the saved model (or `runner`) on a split, through the one evaluation path."""
        if runner is not None:
            return {"samples": len(self.encoded(split)), **evaluate(runner, self.encoded(split), self.task, 64,
                                                                     self.pad_id)}
        if split not in self._scores:
            self._scores[split] = self.score(split, self.runner())
        return self._scores[split]

    def child(self, path: Path) -> LoadedRun:
        """A run made from this one, loaded sharing the command's tables and work folder."""
        return LoadedRun(path, self.frames, self.work, self.loss)
