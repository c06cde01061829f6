"""The base of every recipe section: unknown keys are errors, NaN and infinity are refused."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `epochs: .nan` is a typo, never a setting (it trained to
    # NaN and was marked completed).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
