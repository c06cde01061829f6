"""`pipeline`: check -> search -> fit -> compress -> report -> release from one recipe, into one directory.

    DIR/recipe.yaml     the recipe as written (its sections say which stages run)
    DIR/pipeline.json   each stage's status, seconds, output and figures; the chosen model and its
                        headline figures against the fine-tuned model's
    DIR/search/  DIR/fit/  DIR/compress/  DIR/report.html  DIR/model/

pipeline.json is rewritten (atomically) when a stage starts and when it ends, so a pipeline
killed at any moment continues with the same command: a stage recorded as completed whose output
is still there is not redone; the one in progress continues from its own directory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from pretune.errors import PretuneError
from pretune.pipeline import fromdata, stages
from pretune.pipeline import plan as planning
from pretune.pipeline.clock import STOPPED, Clock, parse_limit
from pretune.pipeline.release import release_stage
from pretune.predictor import Run
from pretune.recipe import Recipe, RecipeLike

RUNNERS = {"check": stages.check_stage, "pretrain": stages.pretrain_stage,
           "search": stages.search_stage, "fit": stages.fit_stage, "compress": stages.compress_stage,
           "report": stages.report_stage, "release": release_stage}


@dataclass
class Pipeline:
    """What a pipeline made: the fit run, the study and compression (None when not run), the
    chosen model (a Run; `model` is its released copy), the report and pipeline.json's content."""

    path: Path
    run: Run
    study: object | None
    compression: dict | None
    chosen: Run
    model: Path
    report: Path | None
    summary: dict

    @property
    def figures(self) -> dict:
        return self.summary["figures"]


def pipeline(recipe: RecipeLike | None = None, out: str | Path | None = None, *, resume: str | Path | None = None,
             overrides: list[str] | None = None, fit_overrides: list[str] | None = None,
             quiet: bool = False, verbs: stages.Verbs | None = None, label: str | None = None,
             text: str | None = None, preset: str | None = None, time_limit: str | float | None = None,
             dry_run: bool = False) -> Pipeline | None:
    """Run (or continue) every stage the recipe's sections ask for; see the module docstring.

    `recipe` may also be a data file or folder (`label`, `text` name its columns where inference
    cannot tell): what is inferred is written into the pipeline's recipe (pipeline/fromdata.py).
    `preset` (fast, balanced, best) lies beneath the recipe; `time_limit` (15m, or seconds) bounds
    the whole pipeline, as the plan measured and decided (pipeline/autoplan.py, pipeline/clock.py).
    `dry_run`: print what was inferred and the plan, then stop (returns None).
    `fit_overrides` (`section.key=value`) apply to the final fit only, on top of the best trial's
    recipe: e.g. the whole training split after a search on a slice. `verbs`: the fit, search,
    compress and report the stages call (default: those below api, see `stages.Verbs`)."""
    say = (lambda _line: None) if quiet else print
    began = time.time()
    timing: dict = {}
    if resume is not None and (label or text or preset or time_limit is not None):
        raise PretuneError("--resume continues the pipeline as its directory's recipe says; give no --label, "
                           "--text, --preset or --time-limit")
    if resume is None:
        written = fromdata.request(recipe, label=label, text=text, preset=preset, time_limit=time_limit,
                                   overrides=overrides, say=say)
        if written is not None:
            out = Path(out) if out else fromdata.default_out(recipe)
            recipe, overrides = written, None
            if _same_request(out, written):
                say(f"pipeline: continuing {out} (the same request; its plan and the time left are kept)")
                recipe, resume, fit_overrides = None, out, None
            elif _needs_plan(written):
                recipe, timing = _timed(written, out, fit_overrides, began, say, quiet)
                timing["request"] = written
    p = planning.plan(recipe, out, resume=resume, overrides=overrides, fit_overrides=fit_overrides)
    if dry_run:
        say(f"pipeline: dry run: would run {' -> '.join(p.stages)} into {p.path}; nothing was written")
        return None
    state = _load_state(p)
    state.update(timing)
    if p.rerun:
        say(f"pipeline: a new compress.max_drop: {', '.join(p.rerun)} run again (finished variants are reused)")
        for stage in p.rerun:
            state["stages"].pop(stage, None)
    clock = _clock(p, state, began)
    base_verbs = verbs or stages.plain_verbs()
    ctx = stages.Context(p, base_verbs, quiet=quiet, records=state["stages"],
                         seconds_left=clock and (lambda stage: clock.deadline(stage) - time.time()))
    if clock is not None:
        state["time"] = clock.state()
        clock.on_tick = lambda: (state.update(time=clock.state()), planning.save(p, state))
    planning.save(p, state)
    for stage in planning.STAGES:
        if stage not in p.stages:
            state["stages"][stage] = {"status": "skipped", "made": f"no {stage}: section absent"}
            say(f"pipeline: {stage}: skipped (the recipe has no {stage} section)")
            continue
        if stages.finished(ctx, stage):
            stages.resumed(ctx, stage)
            say(f"pipeline: {stage}: already {state['stages'][stage]['status']} ({state['stages'][stage]['path']})"
                if state["stages"][stage].get("path") else f"pipeline: {stage}: {state['stages'][stage]['made']}")
            continue
        say(f"pipeline: {stage}: started")
        started = time.time()
        attempts = state["stages"].get(stage, {}).get("attempts", 0) + 1
        state["stages"][stage] = {"status": "running", "attempts": attempts}
        if clock is not None:
            state["time"] = clock.state()
            ctx.verbs = clock.bound(base_verbs, stage)
        planning.save(p, state)
        record = (_search_within(ctx) if clock is not None and stage == "search" else RUNNERS[stage](ctx))
        # This attempt's seconds: a killed attempt's time is lost with it (its work is not).
        seconds = time.time() - started
        status = record.pop("status", "completed")
        if clock is not None and clock.stopped(stage, ctx):
            status = STOPPED
        state["stages"][stage] = {"status": status, "seconds": round(seconds, 2), "attempts": attempts, **record}
        if clock is not None:
            state["time"] = clock.state()
        if stage == "release":
            state.update(chosen=record["run"], model=record["path"], load=record["load"], figures=record["figures"])
        planning.save(p, state)
        say(f"pipeline: {stage}: {record['made']} in {seconds:.0f}s" + (" (stopped at the time limit)"
                                                                        if status == STOPPED else ""))
        if stage == "release" and ctx.report is not None and ctx.verbs.report is not None:
            # The report stage wrote the pipeline's page before the release existed (its own row
            # said "running"): once more, now that every stage has its record.
            ctx.verbs.report([p.path])
    if clock is not None:
        say(f"pipeline: {clock.spent:.0f}s of the {clock.limit:.0f}s limit spent")
    return _result(ctx, state)


def _search_within(ctx: stages.Context) -> dict:
    """The search stage under a time limit: a study whose share ran out before any trial finished
    is not a failure; the fit then takes the recipe as written."""
    study = ctx.verbs.search(ctx.plan.recipe, ctx.plan.output("search"))
    if study.best_trial is None:
        return {"status": STOPPED, "path": str(study.path), "best_trial": None,
                "made": "no trial finished within the search's share of the time: the fit takes the recipe"}
    ctx.study = study
    return stages._search_record(study)


def _needs_plan(written: dict) -> bool:
    timed = written.get("pipeline", {})
    return timed.get("time_limit") is not None and not timed.get("planned")


def _same_request(out: Path, written: dict) -> bool:
    """Whether `out` holds a pipeline started from this very request (the same command again): it
    then continues with its own plan and the time it has left, instead of planning anew."""
    import json

    path = out / planning.STATE
    if not path.is_file() or not (out / "recipe.yaml").is_file():
        return False
    try:
        return json.loads(path.read_text()).get("request") == json.loads(json.dumps(written))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _timed(written: dict, out: Path, fit_overrides, began: float, say, quiet: bool) -> tuple[dict, dict]:
    """Measure, decide and print how the time limit is spent; the recipe with the decisions in it
    and what pipeline.json keeps of the plan (each stage's mark, the step estimates)."""
    from pretune.pipeline import autoplan

    limit = parse_limit(written["pipeline"]["time_limit"])
    stages_of = planning.plan(written, out, fit_overrides=fit_overrides).stages  # checked before measuring
    recipe = Recipe.from_dict(written)
    say(f"pipeline: measuring a few training steps and inference batches here for the {limit:.0f}s plan")
    measured = autoplan.measure(recipe, quiet=True)
    elapsed = time.time() - began
    decision = autoplan.decide(recipe, measured, limit - elapsed, stages_of)
    for line in decision.lines:
        say(line)
    # Shares of the limit, in the recipe: its saved copy runs again with the same stage ends.
    shares = {stage: round((mark + elapsed) / limit, 4) for stage, mark in decision.marks.items()}
    changes = {**decision.changes, "pipeline.shares": shares}
    return autoplan.applied(written, changes), {"plan": {"estimates": decision.estimates, "lines": decision.lines}}


def _clock(p: planning.Plan, state: dict, began: float) -> Clock | None:
    limit = parse_limit(p.recipe.pipeline.time_limit)
    if limit is None:
        return None
    shares = p.recipe.pipeline.shares or {}
    spent = float((state.get("time") or {}).get("spent", 0.0))
    return Clock(limit, spent, {stage: share * limit for stage, share in shares.items()},
                 (state.get("plan") or {}).get("estimates") or {}, started=began)


def _load_state(p: planning.Plan) -> dict:
    from pretune import runs

    state = runs.read_pipeline(p.path) if (p.path / planning.STATE).is_file() else {}
    state.setdefault("stages", {})
    state["fit_overrides"] = p.fit_overrides
    state["order"] = list(p.stages)
    return state


def _result(ctx: stages.Context, state: dict) -> Pipeline:
    return Pipeline(ctx.plan.path, ctx.run, ctx.study, ctx.compression, Run(state["chosen"]), Path(state["model"]),
                    ctx.report, state)
