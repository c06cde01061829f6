"""Pretrained models: where they come from and how they are loaded."""

from pretune.models.load import (
    aliases,
    load_model,
    load_preprocessor,
    load_saved_model,
    load_tokenizer,
    position_limit,
    resolve_source,
)

__all__ = ["aliases", "load_model", "load_preprocessor", "load_saved_model", "load_tokenizer", "position_limit",
           "resolve_source"]
