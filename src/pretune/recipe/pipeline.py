"""recipe.pipeline: how `pretune pipeline` spends its time (the wall-clock limit, the preset)."""

from __future__ import annotations

from pydantic import Field

from pretune.recipe.base import _Section


class PipelineConfig(_Section):
    time_limit: str | float | None = Field(
        None, description="wall clock for the whole pipeline, start to released model and report: 90s, 15m, 2h, "
        "or seconds (null: no limit); each stage stops at its share and keeps the best it has")
    preset: str | None = Field(None, description="the preset (fast, balanced, best) this recipe was resolved from; "
                               "informative: its settings are already in the recipe")
    shares: dict[str, float] | None = Field(
        None, description="for each stage (search, fit, compress), the share of the time limit by which it must end "
        "(null: search 0.35, fit 0.7, compress the rest; the plan writes what it measured)")
    max_epochs: float | None = Field(
        None, gt=0, description="with a time limit and no search, the fit's epochs grow into the time the plan "
        "leaves unused, whole epochs up to this many (null: the recipe's epochs stay); needs train.keep_best, so "
        "a longer fit ends with its best validation weights")
    planned: bool = Field(False, description="the time plan's choices (trials, epochs, chains) are already in this "
                          "recipe: the pipeline measures nothing and plans again nothing, it only keeps the limit")
