"""Continued pretraining (train/pretrain.py): masked-LM training on unlabelled text, whole-word
masking, the fine-tune from its output, and the pipeline's pretrain stage."""

from __future__ import annotations

import pytest
import torch

import pretune
from pretune import PretuneError
from pretune.recipe import PretrainConfig
from pretune.train.pretrain import Masking
from tests.conftest import close, fit_killed_at, sentiment_frame, timeless, tiny_recipe


def adapt_recipe(model_dir, data, **pretrain) -> dict:
    recipe = tiny_recipe(model_dir, data, checkpoint_every_steps=None)
    recipe["pretrain"] = {"epochs": 4, "batch_size": 16, "lr": 5e-3, "validation_texts": 24, **pretrain}
    return recipe


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("adapt")
    sentiment_frame(200, seed=3).to_csv(root / "data.csv", index=False)
    run = pretune.adapt(adapt_recipe(tiny_model_dir, root / "data.csv"), root / "run", quiet=True)
    return root, run


def test_adapt_learns_the_texts_and_writes_a_masked_lm(adapted):
    from transformers import AutoModelForMaskedLM

    _, run = adapted
    m = run.metrics
    assert m["status"] == "completed" and m["task"] == "masked-lm"
    # The training split's texts (200 rows less validation and test), a tenth held out for validation.
    assert (m["train"]["texts"], m["validation"]["texts"]) == (144, 16)
    evals = [r for r in run.history if r["split"] == "validation"]
    assert len(evals) == 4 and evals[-1]["masked_tokens"] > 0
    # From a random body: the masked-token loss falls well below the first evaluation's.
    assert evals[-1]["loss"] < evals[0]["loss"] - 1.0 and evals[-1]["perplexity"] < evals[0]["perplexity"]
    # The tiny model was saved as a bare BertModel: the head is new, and the run says so.
    assert any("without a masked-LM head" in n for n in m["notices"])
    model = AutoModelForMaskedLM.from_pretrained(run.model_path)
    assert type(model).__name__ == "BertForMaskedLM"
    assert not list(run.path.glob("checkpoints/step-*"))  # a finished run keeps no optimizer state


def test_a_fit_starts_from_the_adapted_encoder(adapted, tiny_model_dir):
    from safetensors.torch import load_file

    root, run = adapted
    recipe = tiny_recipe(tiny_model_dir, root / "data.csv", epochs=1)
    recipe["model"]["source"] = str(run.model_path)
    fitted = pretune.fit(recipe, root / "fit", quiet=True, report=False)
    assert fitted.metrics["status"] == "completed"
    adapted_weights = load_file(run.model_path / "model.safetensors")
    before = [v for k, v in adapted_weights.items() if k.endswith("word_embeddings.weight")][0]
    assert not torch.equal(before, load_file(tiny_model_dir / "model.safetensors")["embeddings.word_embeddings.weight"])


def test_whole_word_masking_masks_every_piece_of_a_chosen_word(tiny_model_dir):
    from transformers import AutoTokenizer

    from pretune.data.encode import collate
    from pretune.train.pretrain import encode_unlabelled

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["unbelievably overcomplicated tokenization of extraordinarily unpronounceable words"] * 8
    masking = Masking(tokenizer, PretrainConfig(whole_word=True, mlm_probability=0.5), seed=1)
    split = encode_unlabelled(texts, tokenizer, 64, masking)
    batch = collate(split, list(range(8)), tokenizer.pad_token_id, key=(0, 0))
    enc = tokenizer(texts[0])
    words = enc.word_ids()
    chosen = batch["labels"] != -100
    assert chosen.any() and (batch["mlm_labels"] == batch["labels"]).all()
    pieces = {w: [i for i, x in enumerate(words) if x == w] for w in set(words) if w is not None}
    assert any(len(p) > 1 for p in pieces.values())  # the test needs words split into sub-words
    for row in chosen:
        for positions in pieces.values():
            assert len({bool(row[i]) for i in positions}) == 1  # all pieces of a word, or none
    again = collate(split, list(range(8)), tokenizer.pad_token_id, key=(0, 0))
    assert torch.equal(again["input_ids"], batch["input_ids"])  # keyed: a resume masks alike
    other = collate(split, list(range(8)), tokenizer.pad_token_id, key=(1, 0))
    assert not torch.equal(other["labels"], batch["labels"])


def test_a_killed_adapt_resumes_like_an_uninterrupted_one(tmp_path, tiny_model_dir, adapted):
    root, _ = adapted
    recipe = adapt_recipe(tiny_model_dir, root / "data.csv", epochs=2)
    recipe["train"]["checkpoint_every_steps"] = 4
    out = tmp_path / "killed"
    fit_killed_at(recipe, out, step=6, call="adapt")  # mid-epoch, after the step-4 checkpoint
    assert not (out / "metrics.json").exists() and (out / "checkpoints").is_dir()
    resumed = pretune.adapt(resume=out, quiet=True)
    whole = pretune.adapt(recipe, tmp_path / "whole", quiet=True)
    assert resumed.metrics["train"]["steps"] == whole.metrics["train"]["steps"] == 18
    # Same batches, same masks (keyed by epoch and batch), same optimizer state: the same curve.
    assert close(timeless(resumed), timeless(whole))
    assert close(resumed.metrics["validation"], whole.metrics["validation"])
    with pytest.raises(PretuneError, match="keeps no checkpoint"):
        pretune.adapt(resume=whole.path, quiet=True)


def test_unlabelled_file_and_bad_inputs(tmp_path, tiny_model_dir, adapted):
    root, _ = adapted
    (tmp_path / "texts.txt").write_text("\n".join(sentiment_frame(40).text) + "\n\n")
    recipe = adapt_recipe(tiny_model_dir, root / "data.csv", max_steps=2)
    recipe["data"]["unlabeled"] = str(tmp_path / "texts.txt")
    run = pretune.adapt(recipe, tmp_path / "run", quiet=True)
    assert run.metrics["train"]["texts"] == 36 and run.recipe.data.unlabeled == str(tmp_path / "texts.txt")
    recipe["data"]["unlabeled"] = str(tmp_path / "missing.txt")
    with pytest.raises(PretuneError, match="data.unlabeled: no such file"):
        pretune.adapt(recipe, tmp_path / "other", quiet=True)


def test_the_pipeline_pretrains_first_and_fine_tunes_from_it(tmp_path, tiny_model_dir, adapted):
    root, _ = adapted
    recipe = adapt_recipe(tiny_model_dir, root / "data.csv", max_steps=2)
    recipe["train"]["epochs"] = 1
    result = pretune.pipeline(recipe, tmp_path / "p", quiet=True)
    assert result.run.recipe.model.source == str(tmp_path / "p" / "pretrain" / "model")
    assert (tmp_path / "p" / "pretrain" / "model" / "model.safetensors").is_file()
    assert result.summary["stages"]["pretrain"]["status"] == "completed"
    assert result.summary["order"][:3] == ["check", "pretrain", "fit"]
