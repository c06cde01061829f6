"""Tasks by name: what differs between problems, in one object per run (see tasks/base.py).

    sequence-classification   one label per text (alias: classification)
    text-pair-classification  one label per pair of texts (premise / hypothesis, question / answer)
    token-classification      one BIO tag per word (named-entity recognition)
    multi-label               any number of labels per text
    regression                one number per text
    image-classification      one class per image

Each module here registers its own task (`@tasks.register(name)`) and is imported below, so a
new task is one new file. A task of your own registers the same way from your own module and
then works through every verb (fit, eval, predict, serve, report, the card, compress). For the
`pretune` command line, which imports nothing of yours, an installed package names its task in
the `pretune.tasks` entry-point group (`name = "package.module:TaskClass"`): it is loaded here,
and registered under the entry point's name unless its module registered it already.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from importlib.metadata import entry_points

from pretune.tasks.base import Task, TaskRegistry, create_task, task_type, tasks

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


def load_task_plugins() -> None:
    """The tasks installed packages declare (entry-point group `pretune.tasks`); one that fails
    to load is told in one line and left out, never the end of every other verb."""
    for point in entry_points(group="pretune.tasks"):
        try:
            loaded = point.load()
            registered = isinstance(loaded, type) and loaded.__dict__.get("name") in tasks  # by its module
            if isinstance(loaded, type) and issubclass(loaded, Task) and not registered and point.name not in tasks:
                tasks.register(point.name)(loaded)
        except Exception as e:  # noqa: BLE001 - someone else's package: say so, keep pretune working
            print(f"pretune: warning: task '{point.name}' from {point.value} not loaded: {e}", file=sys.stderr)


load_task_plugins()

__all__ = ["Task", "TaskRegistry", "create_task", "load_task_plugins", "task_type", "tasks"]
