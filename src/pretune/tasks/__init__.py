"""Tasks by name: what differs between problems, in one object per run (see tasks/base.py).

    sequence-classification   one label per text (alias: classification)
    text-pair-classification  one label per pair of texts (premise / hypothesis, question / answer)
    token-classification      one BIO tag per word (named-entity recognition)
    multi-label               any number of labels per text
    regression                one number per text
    image-classification      one class per image

Each module here registers its own task (`@tasks.register(name)`) and is imported below, so a
new task is one new file. A task of your own registers the same way from your own module and
then works through every verb (fit, eval, predict, serve, report, the card, compress).
"""

from __future__ import annotations

import importlib
import pkgutil

from pretune.tasks.base import Task, TaskRegistry, create_task, task_type, tasks

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Task", "TaskRegistry", "create_task", "task_type", "tasks"]
