"""Outside src/pretune/tasks/, no code compares a task's name: what differs by task is asked of the
task object (tasks/base.py), so a new task is one file and a user's task works everywhere.

Every module is parsed and each string equal to a registered task name (or alias) is flagged
where it decides something: compared (`==`, `!=`, `in`, also inside a tuple, list or set being
compared), a key of a dict literal (a table by task name), or a `case` pattern."""

from __future__ import annotations

import ast
from pathlib import Path

import pretune
from pretune.tasks import tasks

SRC = Path(pretune.__file__).parent
NAMES = set(tasks.available()) | set(tasks._aliases)


def name_uses(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, name, how) for each task name that decides something in this module."""
    found = []

    def strings(node: ast.AST):
        if isinstance(node, ast.Constant) and node.value in NAMES:
            yield node
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            for item in node.elts:
                yield from strings(item)

    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                found += [(s.lineno, s.value, "compared") for s in strings(side)]
        elif isinstance(node, ast.Dict):
            found += [(k.lineno, k.value, "a dict key") for k in node.keys if k is not None for k in strings(k)]
        elif isinstance(node, ast.MatchValue):
            found += [(s.lineno, s.value, "a case") for s in strings(node.value)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            found += [(s.lineno, s.value, "looked up") for arg in node.args[:1] for s in strings(arg)]
    return found


def test_the_check_finds_each_way_of_branching_on_a_name():
    code = ('if task.name == "regression": pass\n'
            'if cfg.task in ("multi-label", "other"): pass\n'
            'TABLE = {"token-classification": 1}\n'
            'x = TABLE.get("image-classification")\n'
            'match task:\n    case "sequence-classification": pass\n'
            'Field("sequence-classification", description="regression too")\n')
    assert sorted(how for _, _, how in name_uses(ast.parse(code))) == [
        "a case", "a dict key", "compared", "compared", "looked up"]


def test_no_code_outside_tasks_compares_a_task_name():
    assert {"sequence-classification", "regression", "text-pair-classification", "classification"} <= NAMES
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path.relative_to(SRC).parts[0] == "tasks":
            continue
        offenders += [f"{path.relative_to(SRC)}:{line}: {name!r} {how}"
                      for line, name, how in name_uses(ast.parse(path.read_text(), str(path)))]
    assert not offenders, "ask the task instead (a ClassVar or method on tasks/base.py's Task):\n" + \
        "\n".join(offenders)


def test_every_task_names_what_the_report_and_serving_read():
    """Each registered task's facts point at things that exist: curves and headline among its
    metrics, its error view among the report's, a budget metric it reports."""
    from pretune.report.errors_section import VIEWS

    for name in tasks.available():
        task = tasks.get(name)
        assert task.name == name
        assert task.headline in task.metric_names and set(task.curves) <= set(task.metric_names), name
        assert task.error_view is None or task.error_view in VIEWS, name
        assert task.budget_metric is None or task.budget_metric in task.metric_names, name
        assert task.oip_outputs and all(kind in ("BYTES", "FP32") for _, kind in task.oip_outputs), name


def test_inference_asks_the_tasks_which_one_reads_each_kind_of_labels():
    """data/infer.py names no task: each built-in claims the labels it reads (Task.inferred_from),
    the text-pair task claims none (its second column is the user's to name)."""
    from pretune.recipe import LABEL_KINDS, TASK_FACTS, Recipe, task_inferred_from

    assert {kind: task_inferred_from(kind) for kind in LABEL_KINDS} == {
        "classes": "sequence-classification", "label-lists": "multi-label", "quantities": "regression",
        "token-tags": "token-classification", "image-folders": "image-classification"}
    assert TASK_FACTS["text-pair-classification"].inferred_from is None
    # Beyond the claims (the recipe's default task too is the one claiming classes), nothing
    # outside tasks/ spells a task's name; only the serving protocol's Triton parameter
    # "classification" shares the alias's spelling.
    spelled = {(str(path.relative_to(SRC)), node.value) for path in sorted(SRC.rglob("*.py"))
               if path.relative_to(SRC).parts[0] != "tasks"
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Constant) and node.value in NAMES}
    assert spelled == {("serve/answers.py", "classification")}, spelled
    assert Recipe().data.task == task_inferred_from("classes") == "sequence-classification"
