"""Every recipe key, its type, default and meaning, read from the pydantic sections themselves:
the reference page (docs/recipe-reference.md) is this module's output, so a field added to a
section is documented by its own `description`, and a test fails while the page is stale.

    python -m pretune.recipe.reference > docs/recipe-reference.md
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from pretune.recipe.root import Recipe

HEADER = """# Recipe reference

Every key of the recipe, with its type, default and meaning, generated from the recipe's own
sections (`python -m pretune.recipe.reference > docs/recipe-reference.md`; a test fails while this
page differs). [The recipe](recipe.md) shows how they combine; a task's own defaults (its columns,
its loss) fill what a recipe leaves unset, and `--set section.key=value` overrides any of them.
"""


def _section_of(annotation) -> type[BaseModel] | None:
    """The section class an annotation holds (`X` or `X | None`), else None."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    found = [a for a in options if isinstance(a, type) and issubclass(a, BaseModel)]
    return found[0] if len(found) == 1 and len(options) - len(found) <= 1 else None


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def type_text(annotation) -> str:
    """A reader's spelling of a type: `int or null`, `"linear" | "cosine"`, `list of float`."""
    if annotation is type(None):
        return "null"
    if _is_union(annotation):
        return " or ".join(dict.fromkeys(type_text(a) for a in typing.get_args(annotation)))
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (list, tuple, set):
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {type_text(args[0])} to {type_text(args[1])}" if args else "map"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


def default_text(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "(section)" if isinstance(value, BaseModel) else f"`{json.dumps(value)}`"
    if field.default is PydanticUndefined:
        return "(required)"
    if isinstance(field.default, BaseModel):
        return "(section)"
    return f"`{json.dumps(field.default, default=str)}`"


def _item_section(annotation) -> tuple[str, type[BaseModel]] | None:
    """A list or map of sections: the path suffix of one item ([] or .KEY) and its class."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and args and _section_of(args[0]):
        return "[]", _section_of(args[0])
    if origin is dict and len(args) == 2 and _section_of(args[1]):
        return ".KEY", _section_of(args[1])
    return None


def sections(model: type[BaseModel] = Recipe, path: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """(dotted path, section class) for the recipe and every section below it, depth first; an
    item of a list of sections is `path[]`, of a map `path.KEY`."""
    yield path, model
    for name, field in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        inner, item = _section_of(field.annotation), _item_section(field.annotation)
        if inner is not None:
            yield from sections(inner, here)
        elif item is not None:
            yield from sections(item[1], here + item[0])


def rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for each field of one section."""
    out = []
    for name, field in model.model_fields.items():
        inner = _section_of(field.annotation)
        kind = type_text(field.annotation)
        if inner is not None and _is_union(field.annotation):
            others = [a for a in typing.get_args(field.annotation) if a is not inner]
            kind = " or ".join(["section", *(type_text(a) for a in others)])
        described = field.description or (_summary(inner) or "its keys below" if inner is not None else "")
        described = described.replace("|", "\\|").replace("\n", " ")
        out.append((field.alias or name, kind, default_text(field), described))
    return out


def _summary(model: type[BaseModel]) -> str:
    """A section's docstring, first paragraph."""
    return " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())


def page() -> str:
    parts = [HEADER]
    for path, model in sections():
        parts.append(f"\n## `{path or 'recipe'}`\n")
        parts.append("\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n")
        for name, kind, default, described in rows(model):
            key = f"{path}.{name}" if path else name
            parts.append(f"| `{key}` | {kind} | {default} | {described} |\n")
    return "".join(parts)


if __name__ == "__main__":
    print(page(), end="")
