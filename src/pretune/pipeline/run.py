"""`pipeline`: search -> fit -> compress -> report -> release from one recipe, into one directory.

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

from pretune.pipeline import plan as planning
from pretune.pipeline import stages
from pretune.pipeline.release import release_stage
from pretune.predictor import Run
from pretune.recipe import RecipeLike

RUNNERS = {"search": stages.search_stage, "fit": stages.fit_stage, "compress": stages.compress_stage,
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
             quiet: bool = False, verbs: stages.Verbs | None = None) -> Pipeline:
    """Run (or continue) every stage the recipe's sections ask for; see the module docstring.

    `fit_overrides` (`section.key=value`) apply to the final fit only, on top of the best trial's
    recipe: e.g. the whole training split after a search on a slice. `verbs`: the fit, search,
    compress and report the stages call (default: those below api, see `stages.Verbs`)."""
    p = planning.plan(recipe, out, resume=resume, overrides=overrides, fit_overrides=fit_overrides)
    state = _load_state(p)
    ctx = stages.Context(p, verbs or stages.plain_verbs(), quiet=quiet, records=state["stages"])
    say = (lambda _line: None) if quiet else print
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
        planning.save(p, state)
        record = RUNNERS[stage](ctx)
        # This attempt's seconds: a killed attempt's time is lost with it (its work is not).
        seconds = time.time() - started
        state["stages"][stage] = {"status": record.pop("status", "completed"), "seconds": round(seconds, 2),
                                  "attempts": attempts, **record}
        if stage == "release":
            state.update(chosen=record["run"], model=record["path"], load=record["load"], figures=record["figures"])
        planning.save(p, state)
        say(f"pipeline: {stage}: {record['made']} in {seconds:.0f}s")
    return _result(ctx, state)


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
