"""recipe.tracking: TensorBoard and MLflow."""

from __future__ import annotations

from pydantic import Field, model_validator

from pretune.recipe.base import _Section


class MlflowConfig(_Section):
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (null: sqlite:///mlflow.db beside the runs)")
    experiment: str = Field("pretune", description="MLflow experiment the runs go into")


class TrackingConfig(_Section):
    """Experiment tracking, off by default; each backend is imported only when it is on."""

    tensorboard: bool = Field(False, description="TensorBoard event files under the run (tb/)")
    mlflow: MlflowConfig | bool = Field(
        False, description="one MLflow run per fit (true, or {tracking_uri, experiment}); false: off")

    @model_validator(mode="after")
    def _mlflow_settings(self) -> TrackingConfig:
        if self.mlflow is True:  # `mlflow: true` means the defaults
            object.__setattr__(self, "mlflow", MlflowConfig())
        return self
