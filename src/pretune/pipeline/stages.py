"""The stages, each through the verb that does the job (check, search, fit, compress, report) and
each resumable from what its directory holds:

- check: redone whole (it only reads the data);
- search: the same study again is a rejoin (completed trials kept, a killed one retried);
- fit: a finished run is kept, a killed one resumes from its newest checkpoint (or starts over
  when it died before the first);
- compress: finished nodes are reused when the compress verb reuses them (the compression tree);
  today's linear chain cannot continue a half-written directory, so it starts that one over;
- report: rewritten whole (it only reads directories);
- release: copied whole into place (atomic), then pipeline.json.

A stage returns its record for pipeline.json: what it made (`path`, `made`) and its figures.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pretune import runs
from pretune.errors import PretuneError
from pretune.pipeline.plan import Plan
from pretune.predictor import Run
from pretune.recipe import Recipe, parse_overrides

COMPRESSION = runs.COMPRESSION


@dataclass
class Verbs:
    """The verbs the stages call. `pretune.pipeline` (api.py) passes the public ones, which add what
    sits above their own layer (a fit's plots, model card and page; a compression's cards);
    `report` is None where no report verb exists, and the report stage then says so."""

    fit: Callable
    search: Callable
    compress: Callable
    report: Callable | None = None


def plain_verbs() -> Verbs:
    """The verbs from where they live, for a caller below api (no plots, cards or pages)."""
    from pretune.compress.tree import compress
    from pretune.search.study import search
    from pretune.train.fit import fit

    return Verbs(fit, search, compress)


@dataclass
class Context:
    """What the stages made so far (read back from disk for stages finished before a resume)."""

    plan: Plan
    verbs: Verbs
    quiet: bool = True
    study: object | None = None  # pretune.search.Study
    run: Run | None = None  # the fine-tuned model
    compression: dict | None = None  # compression.json as written
    report: Path | None = None
    records: dict = field(default_factory=dict)
    seconds_left: Callable[[str], float] | None = None  # until a stage's end under a time limit


def check_stage(ctx: Context) -> dict:
    """The data check (data/check.py) of the recipe's data, before anything trains: its counts on
    the terminal and in DIR/check.json, which the pipeline's page shows. It refuses and drops
    nothing: the recipe's data.drop_duplicates / drop_leaked / drop_missing say what a fit drops."""
    from pretune import atomic
    from pretune.data.check import check, summary
    from pretune.tasks import create_task

    out = ctx.plan.output("check")
    result = check(ctx.plan.recipe, create_task(ctx.plan.recipe.data))
    atomic.write_json(out, result)
    if not ctx.quiet:
        for line in summary(result, shown=2):
            print(f"check: {line}")
    return {"path": str(out), "made": check_made(result)}


def check_made(result: dict) -> str:
    """The check in one line: rows, repeats, leakage, imbalance."""
    parts = [f"train {result['rows']['train']:,} rows"]
    if result.get("duplicates"):
        parts.append(f"{result['duplicates']['train']['exact']:,} repeated texts in train")
        parts.append(f"{sum(v['exact'] + v['near'] for v in result['leaked'].values()):,} texts also in train")
    if result.get("classes"):
        parts.append(f"largest / smallest class {result['classes']['imbalance']:.1f}x")
    return "; ".join(parts)


def pretrain_stage(ctx: Context) -> dict:
    """Continued masked-LM pretraining (train/pretrain.py) when the recipe has a `pretrain:`
    section; search and fit then start from its model. A finished run is kept, a killed one
    resumes from its newest checkpoint (or starts over when it died before the first)."""
    from pretune.train.checkpoints import latest_checkpoint
    from pretune.train.pretrain import adapt

    out = ctx.plan.output("pretrain")
    done = runs.RunDir(out) if (out / runs.RECIPE).is_file() else None
    if done is None or done.status != "completed":
        if done is not None and latest_checkpoint(out / runs.CHECKPOINTS) is not None:
            adapt(resume=out, quiet=ctx.quiet)
        else:
            shutil.rmtree(out, ignore_errors=True)
            adapt(ctx.plan.recipe, out, quiet=ctx.quiet)
    run = runs.RunDir(out)
    if run.status != "completed":
        raise PretuneError(f"the pretraining in {out} ended {run.status}: {run.metrics['train'].get('stop_reason')}")
    _start_from_pretrained(ctx, run)
    v = run.metrics.get("validation", {})
    return {"path": str(out), "made": f"{run.metrics['train']['steps']} masked-LM steps; validation perplexity "
            f"{v.get('perplexity', float('nan')):.2f}", "train_seconds": run.metrics["train"]["train_seconds"]}


def _start_from_pretrained(ctx: Context, run) -> None:
    ctx.plan.recipe = ctx.plan.recipe.updated({"model.source": str(run.model_path)})


def search_stage(ctx: Context) -> dict:
    study = ctx.verbs.search(ctx.plan.recipe, ctx.plan.output("search"))
    ctx.study = study
    return _search_record(study)


def _search_record(study) -> dict:
    best = study.best_trial
    if best is None:
        raise PretuneError(f"the study in {study.path} has no completed trial to fit: see its trials.csv")
    counts = ", ".join(f"{n} {state}" for state, n in study.summary["trials"].items() if n)
    values = ", ".join(f"{k} {v:.4f}" for k, v in best["values"].items())
    return {"path": str(study.path), "made": f"{counts}; best trial {best['number']} ({values})",
            "best_trial": best["number"], "best_values": best["values"]}


def fit_recipe(ctx: Context) -> Recipe:
    """The recipe the final fit trains: the best trial's when searched, with the fit overrides."""
    recipe = ctx.study.best_recipe if ctx.study is not None else ctx.plan.recipe
    recipe = recipe.updated(parse_overrides(ctx.plan.fit_overrides)) if ctx.plan.fit_overrides else recipe
    # The model a pipeline releases states probabilities a user can trust: temperature scaling on,
    # unless the recipe says otherwise (a plain `pretune fit` leaves it off).
    if "calibrate" not in recipe.train.model_fields_set:
        recipe = recipe.updated({"train.calibrate": True})
    return recipe


def fit_stage(ctx: Context) -> dict:
    from pretune.pipeline.remedy import remedied

    run = fit_into(ctx, ctx.plan.output("fit"), lambda: fit_recipe(ctx))
    ctx.run, remedy = remedied(ctx, run, fit_into)
    return {**_fit_record(ctx.run), **remedy}


def fit_into(ctx: Context, out: Path, recipe: Callable[[], Recipe]) -> Run:
    """A completed fit in `out`: kept when finished, resumed from its newest checkpoint when
    killed (started over when it died before the first), else trained from `recipe()`."""
    from pretune.train.checkpoints import latest_checkpoint

    fit = ctx.verbs.fit
    run = None
    if (out / runs.RECIPE).is_file():
        done = Run(out)
        if done.status == "completed":
            run = done
        elif done.finished:
            raise PretuneError(f"the fit in {out} ended {done.status}: {_stop_reason(done)}")
        elif latest_checkpoint(out / runs.CHECKPOINTS) is not None:
            run = fit(resume=out, quiet=ctx.quiet)
        else:
            shutil.rmtree(out)  # killed before its first checkpoint: nothing to continue from
    if run is None:
        run = fit(recipe(), out, quiet=ctx.quiet)
    if run.status != "completed":
        raise PretuneError(f"the fit in {out} ended {run.status}: {_stop_reason(run)}")
    return run


def _stop_reason(run: Run) -> str | None:
    return (run.metrics.get("train") or {}).get("stop_reason")


def _fit_record(run: Run) -> dict:
    m = run.metrics
    train = m.get("train") or {}  # checked by runs.read_metrics; absent in a file not from a fit
    headline = _headline(m)
    shown = ", ".join(f"{split} {headline} {m[split][headline]:.4f}" for split in ("validation", "test")
                      if isinstance((m.get(split) or {}).get(headline), (int, float)))
    return {"path": str(run.path), "made": f"{train.get('steps', 0)} steps; {shown}",
            "train_seconds": train.get("train_seconds")}


def _headline(metrics: dict) -> str:
    from pretune.recipe import DataConfig
    from pretune.tasks import create_task

    return create_task(DataConfig(task=metrics["task"])).headline


def compress_stage(ctx: Context) -> dict:
    """The fitted run's compression tree, as its recipe's `compress:` section says; a rerun into the
    same directory reuses every finished node (a killed stage continues). The budget is the
    pipeline recipe's: a compression chosen under another one (a new compress.max_drop on a
    finished pipeline, plan.rerun; or such a rerun killed before it wrote) chooses again."""
    out = ctx.plan.output("compress")
    budget = ctx.plan.recipe.compress.max_drop
    saved = read_compression(out) if (out / COMPRESSION).is_file() else None
    if saved is None or saved.get("max_drop") != budget:
        ctx.verbs.compress(ctx.run, out=out, quiet=True, max_drop=budget)
        saved = read_compression(out)
    ctx.compression = saved
    return _compress_record(ctx.compression)


def read_compression(path: Path) -> dict:
    """compression.json, checked (any version's), with the chosen node resolved to a run directory
    inside `path` (`chosen_run`, None when nothing qualified): runs.read_compression."""
    return runs.read_compression(path)


def _compress_record(c: dict) -> dict:
    made = f"{len(c.get('rows', [])) - 1} variants; " + (
        f"chosen {c['chosen_name']}" if c["chosen_run"] else "none chosen: the fine-tuned model is kept")
    return {"path": c["path"], "made": made, "chosen": c["chosen_name"], "message": c.get("message")}


def report_stage(ctx: Context) -> dict:
    """A page for each directory the pipeline made (study, fit, compression), where it lives, then
    the pipeline's own page over all of them (DIR/report.html: the stages, the fine-tuned model
    against the chosen one, the variants)."""
    if ctx.verbs.report is None:
        return {"status": "not available", "made": "not available (no report verb installed)"}
    dirs = [d for d in (ctx.study and ctx.study.path, ctx.run.path, ctx.compression and ctx.compression["path"])
            if d]
    pages = [str(ctx.verbs.report([Path(d)])) for d in [*dirs, ctx.plan.path]]  # the pipeline's own page last
    ctx.report = Path(pages[-1])
    return {"path": pages[-1], "pages": pages, "made": f"{len(pages)} pages; {pages[-1]}"}


def resumed(ctx: Context, stage: str) -> None:
    """Rebuild a finished stage's part of the context from its directory (it is not rerun)."""
    record = ctx.records[stage]
    if stage == "pretrain":
        _start_from_pretrained(ctx, runs.RunDir(record["path"]))
    elif stage == "search":
        from pretune.search.study import Study

        # None: stopped at the time limit before any trial finished (the fit took the recipe).
        ctx.study = Study(record["path"]) if record.get("best_trial", -1) is not None else None
    elif stage == "fit":
        ctx.run = Run(record["path"])
    elif stage == "compress":
        ctx.compression = read_compression(Path(record["path"]))
    elif stage == "report" and record.get("path"):
        ctx.report = Path(record["path"])


def finished(ctx: Context, stage: str) -> bool:
    """Whether a stage's record says completed and its output is still there."""
    record = ctx.records.get(stage, {})
    if record.get("status") not in ("completed", "not available", "stopped-at-limit"):
        return False
    return not record.get("path") or Path(record["path"]).exists()
