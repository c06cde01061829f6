"""What every tracking backend logs, in one form: scalars of history records, final metrics and
the recipe, flattened to dotted names."""

from __future__ import annotations

import json

# Fields of a metrics.jsonl record that place it rather than measure it.
PLACING = {"split", "step", "epoch"}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def record_scalars(record: dict) -> list[tuple[str, float]]:
    """`split/name` and value of each numeric field of one metrics.jsonl record."""
    split = record.get("split", "train")
    return [(f"{split}/{k}", float(v)) for k, v in record.items() if k not in PLACING and is_number(v)]


def final_scalars(metrics: dict) -> dict[str, float]:
    """`split/name` -> value of metrics.json's numeric figures per split (train, validation, test)."""
    return {f"{split}/{k}": float(v) for split in ("train", "validation", "test")
            for k, v in (metrics.get(split) or {}).items() if is_number(v)}


def flatten(tree: dict, prefix: str = "") -> dict[str, str | float | int | bool]:
    """A nested recipe dump as dotted keys; lists and None become their JSON text."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (str, int, float, bool)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat
