"""The Recipe: one typed, validated description of a run.

Precedence is defaults < YAML < `--set section.key=value`. Unknown keys and wrong types are
errors that name the key path. The resolved recipe is saved with every run and checkpoint.
Each section lives in its own module; everything is importable from `pretune.recipe`.
"""

from pretune.recipe.compress import (
    CompressConfig,
    DistillConfig,
    ExportConfig,
    MeasureConfig,
    PruneConfig,
    QuantizeConfig,
    TrimVocabConfig,
)
from pretune.recipe.data import DEFAULT_COLUMNS, TASK_COLUMNS, TASK_DEFAULTS, AugmentConfig, DataConfig
from pretune.recipe.model import HeadConfig, ModelConfig, SurgeryConfig
from pretune.recipe.pretrain import PretrainConfig
from pretune.recipe.root import Recipe, RecipeLike, apply_override, as_recipe, validated
from pretune.recipe.search import SearchConfig, SpaceEntry
from pretune.recipe.strategy import GroupOverride, LoraConfig, StrategyConfig
from pretune.recipe.tracking import MlflowConfig, TrackingConfig
from pretune.recipe.train import EarlyStoppingConfig, LossConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from pretune.recipe.yaml_io import MAX_EXPANDED_SIZE, MAX_RECIPE_BYTES, load_yaml, read_yaml

__all__ = [
    "AugmentConfig",
    "CompressConfig",
    "DEFAULT_COLUMNS",
    "DataConfig",
    "DistillConfig",
    "EarlyStoppingConfig",
    "ExportConfig",
    "GroupOverride",
    "HeadConfig",
    "LoraConfig",
    "LossConfig",
    "MAX_EXPANDED_SIZE",
    "MAX_RECIPE_BYTES",
    "MeasureConfig",
    "PretrainConfig",
    "MlflowConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PruneConfig",
    "QuantizeConfig",
    "Recipe",
    "RecipeLike",
    "ScheduleConfig",
    "SearchConfig",
    "SpaceEntry",
    "StrategyConfig",
    "SurgeryConfig",
    "TASK_COLUMNS",
    "TASK_DEFAULTS",
    "TrackingConfig",
    "TrainConfig",
    "TrimVocabConfig",
    "apply_override",
    "as_recipe",
    "load_yaml",
    "read_yaml",
    "validated",
]
