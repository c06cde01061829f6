"""Pretrained models: where they come from and how they are loaded."""

from pretune.models.load import aliases, load_classifier, load_tokenizer, resolve_source

__all__ = ["aliases", "load_classifier", "load_tokenizer", "resolve_source"]
