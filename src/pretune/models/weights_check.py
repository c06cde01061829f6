"""Weights that fit their config: a model directory whose weight files are truncated, whose
shapes differ from its config.json, or whose config describes another architecture than its
weights is told in one line, not a traceback or a silently random model.

Around `from_pretrained` rather than inside it: transformers reports a config of another
architecture only as a log line ("newly initialized"), and loads such a model with every layer
random. `check_weights_match` compares the loaded model's parameter names with the names the
weight files hold (their headers only: nothing is read twice).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pretune.errors import PretuneError

SHOWN = 3  # newly initialised weights named in a notice
# Below this share of the body's weights found in the files, the model is not the one its config
# describes: refused. Above it, the missing ones are named in a notice.
REFUSED_BELOW = 0.5


@contextmanager
def loading_weights(where: str | Path) -> Iterator[None]:
    """Turn what a broken weight file raises inside `from_pretrained` into one line naming it."""
    from safetensors import SafetensorError

    try:
        yield
    except PretuneError:
        raise
    except SafetensorError as e:
        raise PretuneError(f"cannot read the weights in {where} (truncated or corrupt?): "
                           f"{str(e).splitlines()[0]}") from None
    except (RuntimeError, ValueError) as e:
        text = str(e)
        if "mismatch" not in text and "size" not in text:
            raise
        raise PretuneError(f"the weights in {where} do not have the shapes its config.json describes "
                           "(a config edited, or the weights of another model?)") from None


def weight_names(model_dir: str | Path) -> set[str] | None:
    """The tensor names a directory's safetensors files hold (None: no safetensors to read)."""
    from safetensors import SafetensorError, safe_open

    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            return set(json.loads(index.read_text())["weight_map"])
        except (ValueError, KeyError) as e:
            raise PretuneError(f"cannot read {index}: {e}") from None
    single = model_dir / "model.safetensors"
    if not single.is_file():
        return None
    try:
        with safe_open(str(single), framework="pt") as f:
            return set(f.keys())
    except SafetensorError as e:
        raise PretuneError(f"cannot read the weights in {single} (truncated or corrupt?): "
                           f"{str(e).splitlines()[0]}") from None


def check_weights_match(model, model_dir: str | Path) -> list[str]:
    """Refuse a model most of whose body found no weight in `model_dir`; name in notices the
    body weights that were newly initialised. The task's head is expected to be new."""
    if not Path(model_dir).is_dir():
        return []  # a hub id: transformers fetched and checked it
    saved = weight_names(model_dir)
    if saved is None:
        return []
    prefix = getattr(model, "base_model_prefix", "") or ""
    body = [k for k in model.state_dict() if prefix and k.startswith(prefix + ".")]
    if not body:
        return []
    missing = [k for k in body if k not in saved and k[len(prefix) + 1:] not in saved]
    if not missing:
        return []
    # transformers 5 converts some checkpoints as it loads them (ViT's `encoder.layer.N.attention.
    # attention.query` becomes `layers.N.attention.q_proj`): names of this model's own body in the
    # files that the loaded model lacks are such renamed weights, not missing ones. Weights of
    # another architecture carry another prefix (`roberta.` under a BERT config) and do not count.
    state = set(model.state_dict())
    inner = {k.split(".", 1)[0] for k in (name[len(prefix) + 1:] for name in body)}
    renamed = [k for k in saved if k not in state and f"{prefix}.{k}" not in state
               and (k.startswith(prefix + ".") or k.split(".", 1)[0] in inner)]
    if len(renamed) >= len(missing):
        return []
    model_type = getattr(getattr(model, "config", None), "model_type", "?")
    if len(missing) > (1 - REFUSED_BELOW) * len(body):
        raise PretuneError(
            f"model.source {model_dir}: {len(missing)} of the {len(body)} weights of the {model_type} model its "
            "config.json describes are not in its weight files (weights of another architecture?); "
            "they would all start random")
    names = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
    return [f"model.source {model_dir}: {len(missing)} pretrained weight(s) not in its files, newly "
            f"initialised: {names}"]
