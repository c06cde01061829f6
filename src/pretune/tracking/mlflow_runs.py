"""MLflow: one run per fit, its flattened recipe as parameters, every metrics.jsonl scalar at its
step; at the end the final metrics, metrics.json, the model card and the report as artefacts.

A search's trials and a compression's variants are nested under one parent run: the parent's
directory holds `mlflow-run.json` (its tracking URI, experiment and run id), and a fit whose run
directory sits inside such a directory makes its own run a child of that one. This works across
worker processes, which share nothing but the directory. A run's own `mlflow-run.json` lets a
resumed fit continue the same MLflow run.

The default store is a SQLite file beside the runs (`sqlite:///<dir>/mlflow.db`, artefacts in
`<dir>/mlartifacts/`): MLflow's plain file store is deprecated and newer MLflow refuses it.
Only MlflowClient is used (no fluent `mlflow.start_run`): no process-wide active run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pretune import atomic, runs
from pretune.errors import MissingExtraError, PretuneError
from pretune.recipe import MlflowConfig
from pretune.tracking.records import final_scalars, flatten, is_number, record_scalars

RUN_FILE = "mlflow-run.json"
STATUS = {"completed": "FINISHED", "cancelled": "KILLED"}
MAX_PARAM = 6000  # MLflow's limit on a parameter value's length


def client_for(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MissingExtraError("mlflow", "tracking") from None
    return MlflowClient(tracking_uri=uri)


def default_uri(directory: Path) -> str:
    return f"sqlite:///{(Path(directory) / 'mlflow.db').resolve()}"


def read_record(directory: Path) -> dict | None:
    try:
        return json.loads((Path(directory) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None


def _artifact_root(uri: str, directory: Path) -> str:
    """Artefacts beside a SQLite store's file, else beside the runs."""
    where = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else Path(directory)
    return (where / "mlartifacts").resolve().as_uri()


def _experiment_id(client, name: str, uri: str, directory: Path) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_root(uri, directory))
    except MlflowException:  # another worker created it in the meantime
        return client.get_experiment_by_name(name).experiment_id


def open_run(directory: Path, cfg: MlflowConfig, kind: str, params: dict | None = None) -> tuple[dict, bool]:
    """The MLflow run of `directory` (from its record) or a new one, nested under the run of the
    directory above where there is one; returns (record, created)."""
    directory = Path(directory)
    record = read_record(directory)
    if record is not None:
        return record, False
    parent = read_record(directory.parent)
    uri = parent["tracking_uri"] if parent else (cfg.tracking_uri or default_uri(directory.parent))
    client = client_for(uri)
    try:
        experiment = parent["experiment_id"] if parent else _experiment_id(client, cfg.experiment, uri,
                                                                            directory.parent)
        tags = {"pretune.kind": kind, "pretune.directory": str(directory.resolve())}
        if parent:
            tags["mlflow.parentRunId"] = parent["run_id"]
        run = client.create_run(experiment, run_name=directory.name, tags=tags)
    except Exception as e:  # a bad URI or an unreachable server: one line, not MLflow's traceback
        if isinstance(e, PretuneError):
            raise
        raise PretuneError(f"tracking.mlflow: cannot start a run at {uri}: {str(e).splitlines()[0]}") from None
    record = {"tracking_uri": uri, "experiment_id": experiment, "run_id": run.info.run_id}
    if params:
        log_params(client, record["run_id"], params)
    atomic.write_json(directory / RUN_FILE, record)
    return record, True


def log_params(client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:MAX_PARAM]) for k, v in params.items()]
    for start in range(0, len(items), 100):  # log_batch takes at most 100 parameters
        client.log_batch(run_id, params=items[start:start + 100], synchronous=True)


def log_metrics(client, run_id: str, values: list[tuple[str, float, int]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, value, now, step) for key, value, step in values]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start:start + 1000], synchronous=True)


def log_files(client, run_id: str, files: list[tuple[Path, str | None]]) -> None:
    for path, where in files:
        if Path(path).is_file():
            client.log_artifact(run_id, str(path), artifact_path=where)


class MlflowCallback:
    """Opens (or on resume reopens) the fit's MLflow run and logs each new metrics.jsonl record."""

    def __init__(self, cfg: MlflowConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        self.client = self.record = None
        self.logged = 0
        try:
            import mlflow  # noqa: F401  a missing package fails before training, not after it
        except ImportError:
            raise MissingExtraError("mlflow", "tracking") from None

    def on_fit_start(self, state) -> None:
        if not state.accelerator.is_main_process:
            return
        from pretune.recipe import Recipe
        from pretune.runs import RECIPE

        params = flatten(Recipe.load(self.run_dir / RECIPE).model_dump(mode="json"))
        self.record, created = open_run(self.run_dir, self.cfg, "fit", params)
        self.client = client_for(self.record["tracking_uri"])
        if not created:
            self.client.update_run(self.record["run_id"], status="RUNNING")
        self.logged = len(state.history)  # a resumed fit: what its checkpoint holds was logged

    def _write(self, state) -> None:
        if self.client is None or len(state.history) == self.logged:
            return
        values = [(tag, value, int(record.get("step", 0))) for record in state.history[self.logged:]
                  for tag, value in record_scalars(record)]
        log_metrics(self.client, self.record["run_id"], values)
        self.logged = len(state.history)

    on_batch_end = on_evaluate = on_epoch_end = _write

    def on_fit_end(self, state) -> None:
        if self.client is None:
            return
        self._write(state)
        self.client.set_terminated(self.record["run_id"], status=STATUS.get(state.status, "FAILED"))


def finish_run(run, cfg: MlflowConfig, measured: dict | None = None, kind: str = "fit") -> dict:
    """Final metrics (`final/test/accuracy`, ...), a compression's measured figures
    (`measured/latency_ms_p50`, ...) and the run's files as artefacts; opens a run first for a
    directory no fit logged (a quantized or exported variant)."""
    record, _ = open_run(run.path, cfg, kind, flatten(run.recipe.model_dump(mode="json")))
    client = client_for(record["tracking_uri"])
    metrics = run.metrics if run.finished else {}
    step = int((metrics.get("train") or {}).get("steps") or 0)
    values = [(f"final/{k}", v, step) for k, v in final_scalars(metrics).items()]
    values += [(f"measured/{k}", float(v), step) for k, v in (measured or {}).items() if is_number(v)]
    if values:
        log_metrics(client, record["run_id"], values)
    log_files(client, record["run_id"], [(run.path / runs.METRICS, None), (run.path / runs.REPORT, None),
                                         (run.path / "model" / "README.md", "model_card")])
    return record


def start_parent(directory: Path, cfg: MlflowConfig, kind: str, params: dict | None = None) -> dict:
    """The parent run of a search or a compression, recorded in its directory for the children."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    record, created = open_run(directory, cfg, kind, params)
    if not created:  # a search joined again, or a compression rerun: the same parent goes on
        client_for(record["tracking_uri"]).update_run(record["run_id"], status="RUNNING")
    return record


def end_parent(directory: Path, files: list[str], metrics: dict | None = None, failed: bool = False) -> None:
    record = read_record(directory)
    if record is None:
        return
    client = client_for(record["tracking_uri"])
    if metrics:
        log_metrics(client, record["run_id"], [(k, float(v), 0) for k, v in metrics.items() if is_number(v)])
    log_files(client, record["run_id"], [(Path(directory) / name, None) for name in files])
    client.set_terminated(record["run_id"], status="FAILED" if failed else "FINISHED")
