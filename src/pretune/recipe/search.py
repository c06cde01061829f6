"""recipe.search: the study, its space, sampler, pruner and workers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_serializer

from pretune.recipe.base import _Section


class SpaceEntry(_Section):
    """One searched key: exactly one of int / uniform / loguniform / choice, optionally `when`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    int_: list[int] | None = Field(None, alias="int", description="integers in [low, high]")
    uniform: list[float] | None = Field(None, description="floats in [low, high]")
    loguniform: list[float] | None = Field(None, description="floats in [low, high], sampled on a log scale")
    choice: list[Any] | None = Field(None, description="one of these values")
    step: float | None = Field(None, gt=0, description="int / uniform: spacing of the values (grid points)")
    when: dict[str, Any] | None = Field(
        None, description="searched only when these searched keys take these values (a value or a list)")

    @model_serializer(mode="wrap")
    def _as_written(self, handler) -> dict:
        # Saved as a user writes it: `int`, not the attribute name, and no unset kinds.
        return {("int" if k == "int_" else k): v for k, v in handler(self).items() if v is not None}


class SearchConfig(_Section):
    """`pretune search`: which keys to search, how to sample and prune, where the study lives."""

    metric: str | list[str] = Field(
        "auto", description="validation metric to optimise (auto: the task's headline: accuracy, mse, f1, ...); "
        "a list (e.g. [accuracy, train_seconds]) makes a multi-objective study with a Pareto front")
    direction: Literal["auto", "maximize", "minimize"] | list[Literal["auto", "maximize", "minimize"]] = Field(
        "auto", description="auto: minimize loss, mse, mae, train_seconds; maximize the rest")
    trials: int = Field(20, gt=0, description="trials run to an end (complete, pruned or failed), all workers together")
    timeout: str | float | None = Field(
        None, description="start no trial after this long: 90s, 30m, 2h, or seconds")
    sampler: str = Field("tpe", description="grid, random, qmc, tpe, gp, cmaes, nsga2")
    pruner: str = Field("asha", description="none, median, asha, hyperband (single metric only)")
    evaluations: int = Field(4, gt=0, description="validation passes per trial, the steps pruners compare "
                             "(sets train.evaluations)")
    prune_from: int = Field(2, ge=1, description="the first evaluation at which a trial may be stopped early "
                            "(median, asha, hyperband; past the last, none is); at the first, a fine-tune often "
                            "still predicts the majority class (docs/search.md)")
    startup_trials: int = Field(5, ge=0, description="trials before tpe / gp / median pruning use the history")
    seed: int | None = Field(None, ge=0, lt=2**32, description="sampler seed (null: the recipe's seed)")
    space: dict[str, SpaceEntry] = Field(default_factory=dict, description="dotted recipe key -> its range")
    keep: Literal["none", "best", "all"] = Field(
        "best", description="trials that keep model weights (all: also checkpoints, plots and test metrics)")
    storage: str | None = Field(None, description="optuna storage URL (null: SQLite in the study directory; "
                                "postgresql://... to share one study between machines)")
    study: str | None = Field(None, description="study name (null: the study directory's name)")
    workers: int = Field(1, gt=0, description="local worker processes; the cores are split between them")
    heartbeat_seconds: int = Field(20, gt=0, description="a running trial's heartbeat interval")
    grace_seconds: int | None = Field(None, gt=0, description="a trial silent this long is failed and "
                                      "retried (null: 3 heartbeats)")
    retries: int = Field(2, ge=0, description="times a trial whose worker died is retried")
