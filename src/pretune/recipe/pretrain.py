"""recipe.pretrain: continued masked-language-model pretraining before fine-tuning (`pretune
adapt`; in `pipeline`, a stage that runs first when the section is set)."""

from __future__ import annotations

from pydantic import Field

from pretune.recipe.base import _Section


class PretrainConfig(_Section):
    epochs: float = Field(1, gt=0, description="passes over the unlabelled texts")
    max_steps: int | None = Field(None, gt=0, description="stop after this many optimizer steps")
    lr: float = Field(5e-5, gt=0, description="peak learning rate (AdamW, linear warm-up 6% and decay)")
    batch_size: int = Field(32, gt=0, description="texts per forward pass, per device")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="share of tokens masked (BERT: 0.15)")
    whole_word: bool = Field(False, description="mask every sub-word of a chosen word together")
    validation_texts: int = Field(256, ge=1, description="texts held out to measure masked-token loss and "
                                  "perplexity (at most a tenth of them)")
