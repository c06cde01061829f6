"""One reader per file kind: each file pretune reads back from a directory a user may have been
given is parsed, checked against the shape pretune writes (schemas.py), and refused in one line
naming the file and the field when it does not match. Paths recorded inside a state file
(pipeline.json's stage outputs, a compression's chosen node) are resolved and refused when they
leave the directory the file describes.

Every reader returns plain dicts and lists, as the file holds them once checked (old
compression.json keys are translated to today's), so callers index them as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pretune import atomic
from pretune.errors import PretuneError
from pretune.runs import names, schemas

MAX_STATE_BYTES = 64 << 20  # a state file larger than this is not one pretune wrote


def field_path(loc: tuple) -> str:
    """('rows', 2, 'throughput') -> 'rows[2].throughput'."""
    shown = ""
    for part in loc:
        if isinstance(part, int):
            shown += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "nullable[", "union[")) and part not in (
                "list[str]", "str", "int", "float", "bool", "dict[str,any]"):
            shown += ("." if shown else "") + str(part)
    return shown


def mismatch(path: Path | str, e: ValidationError, where: str = "") -> PretuneError:
    """One line: the file, the first field that does not match, and what was expected."""
    err = e.errors()[0]
    field = field_path(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    if not field:  # a check across fields: its message names them
        return PretuneError(f"{path}{where}: {message}; it is not what pretune writes")
    if err["type"] == "missing":  # its input is the whole record: not worth showing
        return PretuneError(f"{path}{where}: {field}: {message}; it is not what pretune writes")
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return PretuneError(f"{path}{where}: {field}: {message} (got {got}); it is not what pretune writes")


def check(model: type[BaseModel], value: Any, path: Path | str, where: str = "") -> Any:
    """`value` if it has `model`'s shape, else one PretuneError naming `path` and the field."""
    try:
        model.model_validate(value)
    except ValidationError as e:
        raise mismatch(path, e, where) from None
    except RecursionError:
        raise PretuneError(f"{path}{where}: nested too deeply; it is not what pretune writes") from None
    return value


def read_json(path: Path, model: type[BaseModel]) -> dict:
    """A JSON object file checked against `model` (missing, truncated, not an object: one line)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_STATE_BYTES:
        raise PretuneError(f"{path} is {path.stat().st_size:,} bytes; not a file pretune wrote")
    try:
        value = atomic.read_json(path)
    except RecursionError:
        raise PretuneError(f"{path} is nested too deeply; it is not what pretune writes") from None
    if not isinstance(value, dict):
        raise PretuneError(f"{path} holds a JSON {type(value).__name__}, not the object pretune writes")
    return check(model, value, path)


def read_jsonl(path: Path, model: type[BaseModel] | None) -> list[dict]:
    """The records of a JSON-lines file, each checked against `model` (one line naming the row)."""
    path = Path(path)
    try:
        records = atomic.read_jsonl(path)
    except RecursionError:
        raise PretuneError(f"{path} is nested too deeply; it is not what pretune writes") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise PretuneError(f"{path}, line {number}: a JSON {type(record).__name__}, not an object")
        if model is not None:
            check(model, record, path, f", line {number}")
    return records


# a run directory ----------------------------------------------------------------------------------

def read_metrics(run_path: Path) -> dict:
    return read_json(Path(run_path) / names.METRICS, schemas.MetricsFile)


def read_history(run_path: Path) -> list[dict]:
    path = Path(run_path) / names.HISTORY
    return read_jsonl(path, schemas.HistoryRecord) if path.is_file() else []


PREDICTION_ROWS = {"tokens": schemas.TaggedRow, "scores": schemas.LabelSetRow, "score": schemas.ScoredRow}


def read_predictions(run_path: Path) -> list[dict]:
    """predictions/test.jsonl ([] when absent): every row of the one shape the first row has."""
    path = Path(run_path) / names.PREDICTIONS
    if not path.is_file():
        return []
    rows = read_jsonl(path, None)
    if rows:
        first = rows[0]
        model = next((m for key, m in PREDICTION_ROWS.items() if key in first), schemas.ValueRow)
        for number, row in enumerate(rows, 1):
            check(model, row, path, f", line {number}")
    return rows


def read_environment(directory: Path) -> dict | None:
    path = Path(directory) / names.ENVIRONMENT
    return read_json(path, schemas.Environment) if path.is_file() else None


# compression.json ---------------------------------------------------------------------------------

def upgrade_compression(saved: dict) -> dict:
    """Today's shape from any version's compression.json: the choice from `choice` (a dict), or
    `chosen` (a name, or a dict with `name` / `node`) with `message`, or `choice` given as the
    reason; the chains from `variants` or the one chain `steps`; the tree from {node: parent} or a
    list of {name, parent}; a row without a name named after its run directory."""
    choice, chosen, message = saved.get("choice"), saved.get("chosen"), saved.get("message")
    if not isinstance(choice, dict):
        if isinstance(chosen, dict):
            chosen = chosen.get("name") or chosen.get("node")
        reason = choice if isinstance(choice, str) else message
        choice = {"name": chosen, **({"reason": reason} if reason is not None else {})}
    variants = saved.get("variants")
    if variants is None and isinstance(saved.get("steps"), list):
        variants = [saved["steps"]] if saved["steps"] else []
    tree = saved.get("tree")
    if isinstance(tree, list):
        tree = {str(n.get("name")): {"parent": str(n.get("parent") or "")} for n in tree if isinstance(n, dict)}
    elif isinstance(tree, dict):
        tree = {k: (v if isinstance(v, dict) else {"parent": str(v or "")}) for k, v in tree.items()}
    rows = saved.get("rows")
    if isinstance(rows, list):
        rows = [{**r, "name": r.get("name") or Path(str(r.get("run") or r.get("path") or "?")).name}
                if isinstance(r, dict) else r for r in rows]
        rows = [{k: v for k, v in r.items() if k != "chosen"} if isinstance(r, dict) else r for r in rows]
    upgraded = {k: v for k, v in saved.items() if k not in ("chosen", "message", "steps", "chosen_on",
                                                              "original_validation")}
    upgraded.update(choice=choice, **({"variants": variants} if variants is not None else {}),
                    **({"tree": tree} if tree is not None else {}), **({"rows": rows} if rows is not None else {}))
    return upgraded


def checked_table(table: dict, path: Path) -> dict:
    """What the compression tree writes, checked against the shape read back (a drift is a bug)."""
    schemas.CompressionTable.model_validate(table)
    return table


def read_compression(directory: Path) -> dict:
    """compression.json in today's shape, checked, with what the readers derive: `steps` (each
    step once, in chain order), each row's `chosen` flag, and `chosen_run`: the chosen variant's
    run directory (None when nothing was chosen or the original was), refused outside `directory`."""
    directory = Path(directory)
    path = directory / names.COMPRESSION
    raw = atomic.read_json(path) if path.is_file() else None
    if raw is None:
        raise PretuneError(f"{path}: no such file")
    if not isinstance(raw, dict):
        raise PretuneError(f"{path} holds a JSON {type(raw).__name__}, not the object pretune writes")
    table = check(schemas.CompressionTable, upgrade_compression(raw), path)
    table = {"variants": [], "rows": [], "tree": {}, **table}  # absent: empty, as the shape's defaults
    name = table["choice"].get("name")
    rows = table["rows"]
    row = next((r for r in rows if r["name"] == name), None) if name else None
    for r in rows:
        r["chosen"] = r is row
    chosen_run = None
    if row is not None and row is not rows[0]:  # the first row is the original: nothing to release
        where = row.get("node") or row["name"]
        chosen_run = str(inside(directory, where, path, f"choice.name {name!r}"))
    steps = list(dict.fromkeys(step for chain in table.get("variants", []) for step in chain))
    return {**table, "steps": steps, "path": str(directory), "chosen_name": name, "chosen_row": row,
            "chosen_run": chosen_run, "message": table["choice"].get("reason", "")}


def read_cached(path: Path, model: type[BaseModel]) -> dict | None:
    """A cache file (node.json, measurement.json): its content when whole and of `model`'s shape,
    else None (the work it records is done again)."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        model.model_validate(value)
    except (OSError, ValueError, RecursionError):  # ValidationError is a ValueError
        return None
    return value


# pipeline.json ------------------------------------------------------------------------------------

def read_check(path: Path) -> dict:
    """A data check's result (check.json), checked: what the report's section reads."""
    return read_json(path, schemas.DataCheck)


def read_pipeline(directory: Path) -> dict:
    """pipeline.json, checked, with every recorded path resolved inside `directory` (a path that
    leaves it is refused: a pipeline releases only what it made)."""
    directory = Path(directory)
    path = directory / names.PIPELINE
    state = read_json(path, schemas.PipelineState)
    for stage, record in state.get("stages", {}).items():
        for key in ("path", "run"):
            if record.get(key):
                record[key] = str(inside(directory, record[key], path, f"stages.{stage}.{key}"))
    for key in ("chosen", "model"):
        if state.get(key):
            state[key] = str(inside(directory, state[key], path, key))
    return state


def inside(root: Path, value: str, file: Path | str, field: str) -> Path:
    """`value` (a path a state file records) as a path under `root`, or one PretuneError.

    A relative path is taken from `root`, or, as pipelines before this one wrote it, from the
    working directory; a path that resolves outside `root` (`..`, an absolute path elsewhere, a
    link out) is refused."""
    root = Path(root)
    given = Path(value)
    candidates = [given] if given.is_absolute() else [root / given, given]
    target = next((c for c in candidates if c.exists()), candidates[0])
    try:
        target.resolve().relative_to(root.resolve())
    except ValueError:
        raise PretuneError(f"{file}: {field}: {value} is outside {root}; pretune reads only what it made "
                           f"there") from None
    if given.is_absolute():
        return target
    return target if target is given else root / given


# checkpoints/step-N/state.json --------------------------------------------------------------------

def check_checkpoint_state(path: Path, state: Any, step: int, total_steps: int, epochs: int) -> dict:
    """A checkpoint's loop state, checked against the run it resumes: its counters within the
    run's (the step its directory is named after, at most `total_steps`, an epoch below `epochs`),
    its history no further than its step. A state edited to claim more (its checksums recomputed)
    is refused here, before the loop trusts it."""
    if not isinstance(state, dict):
        raise PretuneError(f"{path} holds a JSON {type(state).__name__}, not the object pretune writes")
    check(schemas.CheckpointState, state, path)
    loop = state["loop"]
    problems = []
    if loop["step"] != step:
        problems.append(f"loop.step {loop['step']} is not the checkpoint's step {step}")
    if loop["step"] > total_steps:
        problems.append(f"loop.step {loop['step']} exceeds the run's {total_steps} steps")
    if loop["epoch"] > epochs:
        problems.append(f"loop.epoch {loop['epoch']} exceeds the run's {epochs} epochs")
    late = [r["step"] for r in loop["history"] if r["step"] > loop["step"]]
    if late:
        problems.append(f"loop.history holds step {late[0]}, after the checkpoint's step")
    if problems:
        raise PretuneError(f"{path}: {problems[0]}; it does not belong to this run")
    return state


# a study: study.json and trials.csv ---------------------------------------------------------------

def read_study(directory: Path) -> dict:
    return read_json(Path(directory) / names.STUDY, schemas.StudySummary)


def read_trials(directory: Path, metrics: list[str]):
    """trials.csv as a DataFrame: `number` and `state` columns and one numeric column per metric
    (a study's own summary names them), or one line naming the file and the column."""
    import pandas as pd

    path = Path(directory) / names.TRIALS
    if not path.is_file():
        raise PretuneError(f"{directory} holds no {names.TRIALS}: not a finished pretune study")
    try:
        trials = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
        raise PretuneError(f"{path} is not a table pretune wrote: {str(e).splitlines()[0]}") from None
    for column in ("number", "state", *metrics):
        if column not in trials.columns:
            raise PretuneError(f"{path}: no column {column!r}; it is not what pretune writes")
    for column in ("number", *metrics):
        if not pd.api.types.is_numeric_dtype(trials[column]) or trials[column].dtype == bool:
            raise PretuneError(f"{path}: column {column!r} holds something other than numbers")
    if trials["number"].isna().any():
        raise PretuneError(f"{path}: column 'number' has an empty cell")
    return trials
