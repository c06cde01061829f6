"""recipe.model: where the pretrained weights come from, the head, and structure changes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pretune.recipe.base import _Section


class HeadConfig(_Section):
    hidden_size: int | None = Field(None, gt=0, description="MLP head hidden width (null: keep the linear head)")
    dropout: float = Field(0.1, ge=0, lt=1, description="MLP head dropout")
    activation: Literal["gelu", "relu", "tanh"] = Field("gelu", description="MLP head activation")


class SurgeryConfig(_Section):
    keep_layers: list[int] | None = Field(None, description="encoder layers to keep, e.g. [0, 2, 4]")
    num_layers: int | None = Field(
        None, gt=0, description="fewer than the model has: keep this many, evenly spaced; more: add layers "
        "that start as copies of the top ones (progressive stacking)")
    reinit_top_layers: int = Field(0, ge=0, description="re-initialise the top k encoder layers")
    share_layers: int | None = Field(
        None, gt=1, description="ALBERT-style: each run of this many layers shares one set of weights")
    head: HeadConfig = Field(default_factory=HeadConfig)


class ModelConfig(_Section):
    source: str = Field("minilm-l6", description="bundled alias, local Hugging Face model dir, or hub id")
    dropout: float | None = Field(None, ge=0, lt=1, description="override hidden dropout")
    attention_dropout: float | None = Field(None, ge=0, lt=1, description="override attention dropout")
    layer_prefixes: list[str] | None = Field(
        None, description="for architectures pretune does not know: module-name prefixes of the layer "
        "groups, bottom (embeddings) to top; parameters under none of them are the head")
    surgery: SurgeryConfig = Field(default_factory=SurgeryConfig)
    allow_pickle: bool = Field(
        False, description="load pickled weights (pytorch_model.bin) when a model directory has no "
        "safetensors (still weights_only: tensors, never code)")
