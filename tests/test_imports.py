"""No import cycle inside src/pretune: every import, at module level or inside a function (a lazy
import still ties the two modules together), read from the source with ast."""

import ast
from pathlib import Path

import pretune

ROOT = Path(pretune.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ["pretune", *path.relative_to(ROOT).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                targets += [base] + [f"{base}.{a.name}" for a in node.names]
        edges = {resolve(t) for t in targets if t.startswith("pretune")}
        # A module importing its own package's __init__ runs nothing the package does not already run.
        graph[name] = {e for e in edges if e and e != name and not name.startswith(e + ".")}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph[name]
    return seen


def test_no_import_cycle_inside_pretune():
    graph = import_graph()
    assert len(graph) > 100 and "pretune.compress.steps" in graph["pretune.compress.tree"]  # the graph is real
    reach = {name: reachable(graph, name) for name in graph}
    cycles = sorted({" <-> ".join(sorted(m for m in reach[name] if name in reach[m] or m == name))
                     for name in graph if name in reach[name]})
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)
