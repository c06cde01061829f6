"""Reading a recipe's YAML as data of bounded size."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pretune.errors import PretuneError

# A recipe is data of bounded size. YAML aliases let 451 bytes name a billion-node tree (the
# "billion laughs"): the size is counted with every alias expanded, before anything is built.
MAX_RECIPE_BYTES = 1 << 20
MAX_EXPANDED_SIZE = 1_000_000  # nodes plus scalar characters, aliases expanded
BOOL = "tag:yaml.org,2002:bool"


class RecipeLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's booleans: only true / false. YAML 1.1 also reads yes / no /
    on / off as booleans, so `mixed_precision: no` arrived as False and was refused; as strings,
    a Literal field takes them as written and a bool field still reads them (pydantic's lax
    bool takes yes / no / on / off). One place, for every field, from a file and from --set."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


RecipeLoader.add_implicit_resolver(BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PretuneError(f"recipe file not found: {path}")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise PretuneError(f"{path} is {path.stat().st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    except UnicodeDecodeError:
        raise PretuneError(f"{path} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        raise PretuneError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise PretuneError(f"{path} must hold a mapping of sections, not {type(raw).__name__}")
    return raw


def load_yaml(text: str, where: str) -> Any:
    """yaml.safe_load, refusing a document whose aliases expand past MAX_EXPANDED_SIZE."""
    if len(text) > MAX_RECIPE_BYTES:
        raise PretuneError(f"{where} is {len(text):,} characters; a recipe is at most {MAX_RECIPE_BYTES:,}")
    loader = RecipeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set())
        except RecursionError:
            size = None
        if size is None or size > MAX_EXPANDED_SIZE:
            raise PretuneError(f"{where}: YAML aliases expand it past {MAX_EXPANDED_SIZE:,} nodes and characters "
                               f"(or refer to themselves); write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node, sizes: dict, open_: set) -> int | None:
    """Nodes plus scalar characters with aliases expanded (a shared node counted each time it is
    used); None for a node that contains itself."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        return None
    if isinstance(node, yaml.ScalarNode):
        size = 1 + len(node.value)
    else:
        open_.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        size = 1
        for child in children:
            inner = _expanded_size(child, sizes, open_)
            if inner is None:
                return None
            size += inner
            if size > MAX_EXPANDED_SIZE:
                break  # far enough: the count no longer matters
        open_.discard(key)
    sizes[key] = size
    return size
