"""What a study leaves in its directory, rewritten (atomically) after every trial from the
storage's state, so any worker on any machine may write them and a reader never sees half:

    study.json   settings, counts, the best trial (or the Pareto front), edge warnings
    trials.csv   one row per trial: number, state, metric(s), searched values, seconds, reason,
                 run, model_parameters (the size of the trial's model)
    best.yaml    the best trial's full recipe, ready for `pretune fit`
    plots/       optimisation history, each parameter against the metric, importances,
                 the Pareto front (optuna's own matplotlib visualisation), at the end
"""

from __future__ import annotations

import csv
import io
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from pretune import atomic, runs
from pretune.recipe import Recipe
from pretune.search.objective import MODEL_PARAMETERS, TRAIN_SECONDS, trial_dir
from pretune.search.space import Space

STUDY, TRIALS, BEST, PLOTS = runs.STUDY, runs.TRIALS, runs.BEST, runs.PLOTS
# A best value in the outer tenth of its range may be better still outside it (tuning playbook).
EDGE = 0.1


@dataclass
class StudyInfo:
    """What results need besides the optuna study: the base recipe and what was asked."""

    path: Path
    base: Recipe  # the recipe with its search section at the defaults: each trial's recipe edits it
    space: Space
    metrics: list[str]
    directions: list[str]
    settings: dict  # sampler, pruner, trials, storage (shown), ...


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial (one metric) or the Pareto front (several); empty before any completes."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    return study.best_trials if len(study.directions) > 1 else [study.best_trial]


def trial_recipe(info: StudyInfo, trial: FrozenTrial) -> Recipe:
    overrides = trial.user_attrs.get("overrides") or info.space.decode(trial.params)
    return info.base.updated(overrides)


def edge_warnings(info: StudyInfo, trial: FrozenTrial) -> list[str]:
    found = []
    for path, stored in trial.params.items():
        param = next((p for p in info.space.params if p.path == path), None)
        position = param.position(stored) if param else None
        if position is None or EDGE <= position <= 1 - EDGE:
            continue
        side = "low" if position < EDGE else "high"
        found.append(f"the best {path} = {stored:g} sits at the {side} edge of its range "
                     f"[{param.low:g}, {param.high:g}]: widen the range {'down' if side == 'low' else 'up'}")
    return found


def write_results(info: StudyInfo, study: optuna.Study, keep: str) -> dict:
    trials = study.get_trials(deepcopy=False)
    best = best_trials(study)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    summary = {
        "study": study.study_name, **info.settings, "metrics": info.metrics, "directions": info.directions,
        "trials": counts, "space": {p.path: p.describe() for p in info.space.params},
    }
    if len(info.metrics) == 1:
        summary["best"] = _trial_summary(info, best[0]) if best else None
        summary["warnings"] = edge_warnings(info, best[0]) if best else []
        if best:
            atomic.write_text(info.path / BEST, trial_recipe(info, best[0]).to_yaml())
    else:
        summary["pareto_front"] = [_trial_summary(info, t) for t in best]
        summary["warnings"] = []
    atomic.write_text(info.path / TRIALS, _trials_csv(info, trials))
    atomic.write_json(info.path / STUDY, summary)
    if keep == "best":
        _drop_models(info, trials, {t.number for t in best})
    return summary


def _trial_summary(info: StudyInfo, t: FrozenTrial) -> dict:
    return {"number": t.number, "values": dict(zip(info.metrics, t.values, strict=True)),
            "params": info.space.decode(t.params), "run": str(trial_dir(info.path, t.number)),
            TRAIN_SECONDS: t.user_attrs.get(TRAIN_SECONDS)}


def _trials_csv(info: StudyInfo, trials: list[FrozenTrial]) -> str:
    params = [p.path for p in info.space.params]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "state", *info.metrics, *params, "seconds", TRAIN_SECONDS, "steps",
                     "pruned_at", "retry_of", "reason", "run", MODEL_PARAMETERS])
    for t in trials:
        values = t.values if t.values is not None and len(t.values) == len(info.metrics) else [None] * len(info.metrics)
        ended = t.datetime_complete and t.datetime_start
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if ended else None
        decoded = info.space.decode(t.params)
        writer.writerow([
            t.number, t.state.name, *values, *[decoded.get(p) for p in params],
            None if seconds is None else round(seconds, 2), t.user_attrs.get(TRAIN_SECONDS),
            t.user_attrs.get("steps"), t.user_attrs.get("pruned_at"), t.system_attrs.get("failed_trial"),
            t.user_attrs.get("fail_reason"), trial_dir(info.path, t.number).name,
            t.user_attrs.get(MODEL_PARAMETERS)])
    return out.getvalue()


def _drop_models(info: StudyInfo, trials: list[FrozenTrial], best: set[int]) -> None:
    """Only the best trials keep their weights: disk stays bounded however long the study runs."""
    for t in trials:
        if t.state == TrialState.COMPLETE and t.number not in best:
            model = trial_dir(info.path, t.number) / runs.MODEL
            if model.exists():
                shutil.rmtree(model, ignore_errors=True)


def write_plots(info: StudyInfo, study: optuna.Study) -> list[Path]:
    """Optuna's own matplotlib plots; one that cannot be drawn yet (too few trials) is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    target = {} if len(info.metrics) == 1 else {"target": lambda t: t.values[0]}
    name = {"target_name": info.metrics[0]}
    plots = {
        "history.png": lambda: ovm.plot_optimization_history(study, **target, **name),
        "slice.png": lambda: ovm.plot_slice(study, **target, **name),
        "importances.png": lambda: ovm.plot_param_importances(study, **target, **name),
    }
    if len(info.metrics) > 1:
        plots["pareto_front.png"] = lambda: ovm.plot_pareto_front(study, target_names=info.metrics)
    written = []
    for filename, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError):
            continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        target_path = info.path / PLOTS / filename
        with atomic.atomic_path(target_path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(target_path)
    return written
