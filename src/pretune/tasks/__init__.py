"""Tasks by name: what differs between problems, in one object per run (see tasks/base.py).

    sequence-classification   one label per text (alias: classification)
    token-classification      one BIO tag per word (named-entity recognition)
    multi-label               any number of labels per text
    regression                one number per text
    image-classification      one class per image
"""

from __future__ import annotations

from pretune.recipe import DataConfig
from pretune.registry import Registry
from pretune.tasks.base import Task
from pretune.tasks.image import ImageClassification
from pretune.tasks.multilabel import MultiLabel
from pretune.tasks.regression import Regression
from pretune.tasks.sequence import SequenceClassification
from pretune.tasks.token import TokenClassification

tasks: Registry[type[Task]] = Registry("task")
for _cls in (SequenceClassification, TokenClassification, MultiLabel, Regression, ImageClassification):
    tasks.register(_cls.name)(_cls)
tasks.alias("classification", SequenceClassification.name)


def create_task(cfg: DataConfig) -> Task:
    """A fresh task for one run (it will hold that run's labels)."""
    return tasks.get(cfg.task)(cfg)


__all__ = ["Task", "create_task", "tasks"]
