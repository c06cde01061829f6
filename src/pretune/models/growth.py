"""Growing depth (`model.surgery.num_layers` above the model's count): progressive stacking.

Gong et al. 2019 ("Efficient Training of BERT by Progressively Stacking") grow a trained
L-layer encoder to 2L by stacking a copy of its layers on top: attention patterns of a layer
and the one above it are alike, so copied layers start near a good solution, where randomly
initialised ones would first undo what the layers below learned. Here the new layers are
copies of the top ones, in order: 6 -> 8 appends copies of layers 4 and 5; 6 -> 12 is Gong's
doubling; past double, the stack repeats. models/surgery.py appends them and updates the
config's layer count, so the grown model saves and reloads as an ordinary model of that depth.
"""

from __future__ import annotations

import copy

from torch import nn


def stacked_sources(total: int, target: int) -> list[int]:
    """The layer each new layer copies: the last `target - total` entries of the stack repeated."""
    extra = target - total
    repeated = list(range(total)) * (extra // total + 1)
    return repeated[len(repeated) - extra:]


def stacked_copies(layers: nn.ModuleList, target: int) -> tuple[list[nn.Module], list[int]]:
    """Independent copies (own weights) of the layers that go on top, and which each copies."""
    sources = stacked_sources(len(layers), target)
    return [copy.deepcopy(layers[s]) for s in sources], sources


def describe(total: int, target: int, sources: list[int]) -> str:
    return (f"grow to {target} layers: layers {list(range(total, target))} start as copies of layers {sources} "
            "(progressive stacking, Gong et al. 2019)")
