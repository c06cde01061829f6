"""The worker loop: run trials until the budget is used or the deadline passes, in this process
or in N local processes sharing the cores.

The budget accounting lives here and only here. `search.trials` counts trials run to an end
(complete, pruned, or failed by their own error) plus those running or queued; a trial whose
worker died does not count, its retry does. Each worker checks it before every trial (and the
objective once more as the trial starts, through `over_budget`), so N workers on M machines stop
at the same total.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from pretune.recipe import Recipe
from pretune.search import results
from pretune.search.objective import Objective, SurplusTrial, objective_began
from pretune.search.plan import SearchPlan, plan_search
from pretune.search.pruners import create_pruner
from pretune.search.samplers import create_sampler
from pretune.search.storage import open_storage, open_study


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """Trials that use the budget: ended by themselves, running, or queued (a retry)."""
    return [t for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
            or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs
                and not t.user_attrs["fail_reason"].startswith(SurplusTrial.__name__))]


def over_budget(trial: optuna.Trial, budget: int) -> bool:
    """Whether this starting trial is past the budget: two workers started the last one at once."""
    numbers = sorted(t.number for t in counted(trial.study.get_trials(deepcopy=False)))
    return trial.number in numbers and numbers.index(trial.number) >= budget


def work(plan: SearchPlan, index: int, deadline: float | None, sampler=None, pruner=None, storage=None,
         callbacks: list | None = None, loss=None) -> None:
    """One worker: run trials until the budget is used or the deadline passes."""
    storage = storage or open_storage(plan.url, plan.cfg)
    probe = optuna.load_study(study_name=plan.name, storage=storage)
    # A different stream per worker and per start, so neither parallel workers nor a resumed
    # study draw the points already drawn.
    seed = plan.cfg.seed + 1000 * index + len(probe.get_trials(deepcopy=False))
    study = open_study(storage, plan.name, plan.directions,
                       create_sampler(sampler or plan.cfg.sampler, seed, plan.cfg),
                       create_pruner(pruner or plan.cfg.pruner, plan.cfg))
    objective = Objective(plan.recipe, plan.space, plan.metrics, plan.path, plan.cfg.keep, plan.cfg.evaluations,
                          lambda trial: over_budget(trial, plan.budget), callbacks or [], loss)
    info = plan.info()
    while deadline is None or time.time() < deadline:
        if not _through_outages(lambda: _one_round(plan, study, objective, info), plan):
            break


def _one_round(plan: SearchPlan, study: optuna.Study, objective: Objective, info) -> bool:
    """One trial, or one wait for trials running elsewhere; False when the budget is used."""
    trials = study.get_trials(deepcopy=False)
    used = counted(trials)
    running = [t for t in used if t.state == TrialState.RUNNING]
    waiting = [t for t in used if t.state == TrialState.WAITING]
    if len(used) - len(running) - len(waiting) >= plan.budget:
        return False
    if len(used) >= plan.budget and not waiting:
        # The rest run elsewhere: wait for them, or for their heartbeat to lapse (a retry).
        time.sleep(min(2.0, plan.cfg.heartbeat_seconds))
        optuna.storages.fail_stale_trials(study)
        _fail_unstarted(study, running, plan)
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
    results.write_results(info, study, plan.cfg.keep)
    return True


def _fail_unstarted(study: optuna.Study, running: list[FrozenTrial], plan: SearchPlan) -> None:
    """A worker killed between taking its trial (a new one, or a queued retry) and its objective's
    first heartbeat leaves a RUNNING trial that optuna's stale check never sees (it looks at
    heartbeats only): without this, the others wait for it forever. Failed and retried like a
    heartbeat-stale one once the grace has passed. Started means the objective's own mark
    (objective.started): a retry inherits the mark of the trial it repeats."""
    from datetime import datetime

    from optuna.storages import RetryHeartbeatStaleTrialCallback

    grace = plan.cfg.grace_seconds or 3 * plan.cfg.heartbeat_seconds
    now = datetime.now()  # optuna stamps trials in local time
    for t in running:
        # The objective marks its trial first thing: a trial without its own mark never started.
        started = t.datetime_start
        if objective_began(t) or started is None or (now - started).total_seconds() < grace:
            continue
        try:  # optuna offers no public call for this: the storage's own, as fail_stale_trials uses
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except RuntimeError:  # UpdateFinishedTrialError: it ended meanwhile
            continue
        RetryHeartbeatStaleTrialCallback(max_retry=plan.cfg.retries)(study, study._storage.get_trial(t._trial_id))


def _through_outages(step, plan: SearchPlan):
    """`step()`, retried while the study's database is briefly unreachable (a server restart drops
    every connection; pool_pre_ping reconnects at the next checkout). Past about a minute: one line;
    completed trials stay in the study and the same command rejoins it."""
    import sqlalchemy

    from pretune.errors import PretuneError
    from pretune.search.storage import reason_of, shown

    for attempt in range(30):
        try:
            return step()
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError,
                sqlalchemy.exc.InterfaceError) as e:
            last = e
            time.sleep(min(2.0, 0.25 * (attempt + 1)))
    raise PretuneError(f"lost the study storage {shown(plan.url)} ({reason_of(last)}); completed trials are kept "
                       f"there: run the same command to rejoin")


def _worker_main(recipe_yaml: str, path: str, index: int, threads: int, deadline: float | None) -> None:
    import torch

    torch.set_num_threads(threads)
    work(plan_search(Recipe.from_dict(yaml.safe_load(recipe_yaml)), Path(path)), index, deadline)


def spawn_workers(plan: SearchPlan, deadline: float | None) -> None:
    """N local processes, the cores split between them (torch threads), so they do not fight."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // plan.cfg.workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(plan.recipe.to_yaml(), str(plan.path), i, threads, deadline),
                         name=f"pretune-search-worker-{i}") for i in range(plan.cfg.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    dead = [p for p in procs if p.exitcode]
    if dead:
        warnings.warn(f"{len(dead)} search worker(s) ended abnormally (exit codes "
                      f"{', '.join(str(p.exitcode) for p in dead)}); their trials were retried by the others",
                      stacklevel=2)
