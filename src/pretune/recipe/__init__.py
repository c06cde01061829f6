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
    StaticConfig,
    TrimVocabConfig,
)
from pretune.recipe.data import (
    LABEL_KINDS,
    TASK_FACTS,
    AugmentConfig,
    DataConfig,
    TaskFacts,
    task_facts,
    task_inferred_from,
)
from pretune.recipe.model import HeadConfig, ModelConfig, SurgeryConfig
from pretune.recipe.pipeline import PipelineConfig
from pretune.recipe.pretrain import PretrainConfig
from pretune.recipe.root import (
    Recipe,
    RecipeLike,
    as_recipe,
    check_path,
    edit,
    flatten,
    parse_overrides,
    validated,
)
from pretune.recipe.search import SearchConfig, SpaceEntry
from pretune.recipe.strategy import GroupOverride, LoraConfig, StrategyConfig
from pretune.recipe.tracking import MlflowConfig, TrackingConfig
from pretune.recipe.train import EarlyStoppingConfig, LossConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from pretune.recipe.yaml_io import MAX_EXPANDED_SIZE, MAX_RECIPE_BYTES, load_yaml, read_yaml

__all__ = [
    "AugmentConfig",
    "CompressConfig",
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
    "PipelineConfig",
    "PruneConfig",
    "QuantizeConfig",
    "Recipe",
    "RecipeLike",
    "ScheduleConfig",
    "SearchConfig",
    "StaticConfig",
    "SpaceEntry",
    "StrategyConfig",
    "SurgeryConfig",
    "LABEL_KINDS",
    "TASK_FACTS",
    "TaskFacts",
    "TrackingConfig",
    "TrainConfig",
    "TrimVocabConfig",
    "as_recipe",
    "check_path",
    "edit",
    "flatten",
    "load_yaml",
    "parse_overrides",
    "read_yaml",
    "task_facts",
    "task_inferred_from",
    "validated",
]
