"""Everything pretune keeps on disk, at the bottom of the layers: the file names (names.py), the
Run directory and its atomic writes (run_dir.py), the shape of each file (schemas.py) and one
reader per file kind that checks it (readers.py). See names.py for the layout of a run, a
compression, a study and a pipeline directory."""

from pretune.runs import schemas
from pretune.runs.names import (
    BEST,
    CHECK,
    CHECKPOINT_STATE,
    CHECKPOINTS,
    COMPRESSION,
    ENVIRONMENT,
    HISTORY,
    MEASUREMENT,
    METRICS,
    MODEL,
    NODE,
    ORIGINAL,
    PARETO,
    PIPELINE,
    PLOTS,
    PREDICTIONS,
    RECIPE,
    REPORT,
    STUDY,
    TRIALS,
)
from pretune.runs.readers import (
    check_checkpoint_state,
    checked_table,
    inside,
    read_cached,
    read_check,
    read_compression,
    read_environment,
    read_history,
    read_metrics,
    read_pipeline,
    read_predictions,
    read_study,
    read_trials,
)
from pretune.runs.run_dir import RunDir, prepare_output

__all__ = [
    "BEST", "CHECK", "CHECKPOINTS", "CHECKPOINT_STATE", "COMPRESSION", "ENVIRONMENT", "HISTORY", "MEASUREMENT",
    "METRICS", "MODEL", "NODE", "ORIGINAL", "PARETO", "PIPELINE", "PLOTS", "PREDICTIONS", "RECIPE", "REPORT", "STUDY",
    "TRIALS", "RunDir", "check_checkpoint_state", "checked_table", "inside", "prepare_output", "read_cached",
    "read_check", "read_compression", "read_environment", "read_history", "read_metrics", "read_pipeline",
    "read_predictions", "read_study", "read_trials", "schemas",
]
