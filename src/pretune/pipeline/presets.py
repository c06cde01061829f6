"""Presets: recipe fragments shipped in the package (pipeline/presets/*.yaml), one per input kind,
that a user can read (`pretune preset show best`) and copy. A preset is not a second configuration
system: it is merged under what was inferred from the data and what the user set, and the result is
one Recipe, saved in the pipeline directory.

- fast: fit, then int8.
- balanced: examples/demo.yaml's chain (distill -> trim-vocab -> int8), with int8 alone beside it.
- best: a search, then the compression tree with distillation.

Each has an accuracy budget (`compress.max_drop`), so a pipeline that compresses always chooses.
"""

from __future__ import annotations

import copy
from pathlib import Path

from pretune.errors import PretuneError
from pretune.recipe import load_yaml

FOLDER = Path(__file__).parent / "presets"
NAMES = ("fast", "balanced", "best")
DEFAULT = "balanced"


def preset_path(name: str, inputs: str = "text") -> Path:
    if name not in NAMES:
        raise PretuneError(f"unknown preset '{name}'; the presets are: {', '.join(NAMES)}")
    return FOLDER / (f"{name}.yaml" if inputs == "text" else f"{inputs}/{name}.yaml")


def preset_text(name: str, inputs: str = "text") -> str:
    """The preset's YAML as shipped, comments included (what `pretune preset show` prints)."""
    return preset_path(name, inputs).read_text(encoding="utf-8")


def load_preset(name: str, inputs: str = "text") -> dict:
    return load_yaml(preset_text(name, inputs), f"preset {name}")


def describe(name: str) -> str:
    """The first sentence of the preset's header comment, without its name (`pretune preset list`)."""
    header = []
    for line in preset_text(name).splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").strip())
    sentence = " ".join(header).split(": ", 1)[-1]
    return sentence.split(". ")[0].rstrip(".")


def merged(base: dict, top: dict) -> dict:
    """`top` over `base`, section by section (a value in `top` wins; nested sections merge)."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
