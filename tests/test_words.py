"""A tagger cuts raw text into words the way its training file did (issue 31, item 8): a Japanese
run trained on `日本` tags `日本`, not `日` and `本` as two entities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer, BertConfig

from pretune.data.prepare import TextTable
from pretune.data.words import split_words, training_lexicon
from pretune.recipe import DataConfig
from pretune.tasks import create_task

JAPANESE = pd.DataFrame({
    "tokens": [["日本", "に", "行っ", "た"], ["東京", "は", "大きい"], ["山田", "さん", "が", "来", "た"]],
    "tags": [["B-LOC", "O", "O", "O"], ["B-LOC", "O", "O"], ["B-PER", "O", "O", "O", "O"]],
})


def test_words_follow_the_lexicon_and_keep_unknown_runs_whole():
    lexicon = {"日本", "に", "行っ", "た", "東京"}
    text = "日本に行った名古屋と東京、Tokyo-Tower! コンピュータ"
    words = [text[a:b] for a, b in split_words(text, lexicon, 2)]
    assert words == ["日本", "に", "行っ", "た", "名古屋", "と", "東京", "、", "Tokyo", "-", "Tower", "!",
                     "コンピュータ"]


def test_no_lexicon_for_space_separated_or_single_character_words():
    assert training_lexicon([["Paris", "is", "big"]]) is None
    assert training_lexicon([["日", "本"]]) is None  # the tokenizer's own cut is the file's
    lexicon = training_lexicon(JAPANESE["tokens"])
    assert lexicon[0] == "た"  # the most frequent first: a capped lexicon keeps the common words
    assert sorted(lexicon) == sorted(["日本", "に", "行っ", "た", "東京", "は", "大きい", "山田", "さん", "が", "来"])


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return AutoTokenizer.from_pretrained(minilm_dir)


def saved_and_restored_task():
    cfg = DataConfig(task="token-classification")
    trained = create_task(cfg)
    trained.learn_labels(JAPANESE)
    config = BertConfig()
    trained.configure(config)
    config = BertConfig.from_dict(config.to_dict())  # what config.json keeps
    task = create_task(cfg)
    task.restore(config)
    return task


def test_raw_text_is_tagged_by_the_training_words(tokenizer):
    task = saved_and_restored_task()
    assert "日本" in task.lexicon
    text = "日本に行った"
    table = TextTable([text], None, None)
    split = task.encode(table, tokenizer, 32)
    word_ids = split.meta["word_ids"][0]
    assert max(w for w in word_ids if w is not None) == 3  # 日本 / に / 行っ / た: four words, not six
    # The model says B-LOC at every sub-word: read at each word's first, one entity, 日本.
    labels = task.label_names
    logits = np.zeros((len(word_ids), len(labels)), dtype=np.float32)
    logits[:, labels.index("O")] = 1.0
    logits[1, labels.index("B-LOC")] = 5.0  # 日
    logits[2, labels.index("B-LOC")] = 5.0  # 本: a second entity if it were a word of its own
    result = task.decode([logits], split, table)[0]
    assert [(e["text"], e["type"], e["start"], e["end"]) for e in result["entities"]] == [("日本", "LOC", 0, 2)]
    assert result["tags"] == ["B-LOC", "O", "O", "O"]


def test_a_space_separated_run_keeps_the_tokenizers_words(tokenizer):
    cfg = DataConfig(task="token-classification")
    task = create_task(cfg)
    task.learn_labels(pd.DataFrame({"tokens": [["Paris", "is", "big"]], "tags": [["B-LOC", "O", "O"]]}))
    assert task.lexicon is None
    config = BertConfig()
    task.configure(config)
    assert not hasattr(config, "pretune_words")
    split = task.encode(TextTable(["Paris, again"], None, None), tokenizer, 32)
    assert split.meta["offsets"][0][1:4] == [(0, 5), (5, 6), (7, 12)]


def test_a_japanese_tagger_predicts_on_its_training_words(tmp_path, tiny_model_dir):
    import pretune

    sentences = [JAPANESE.iloc[i % 3] for i in range(24)]
    conll = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s["tokens"], s["tags"], strict=True))
                        for s in sentences)
    (tmp_path / "ja.conll").write_text(conll + "\n")
    run = pretune.fit({"seed": 1, "model": {"source": str(tiny_model_dir)},
                       "data": {"task": "token-classification", "source": str(tmp_path / "ja.conll"), "max_length": 32},
                       "train": {"max_steps": 2, "batch_size": 8, "checkpoint_every_steps": None}},
                      tmp_path / "run", quiet=True, report=False, test=False)
    assert "日本" in json.loads((run.model_path / "config.json").read_text())["pretune_words"]["lexicon"]
    [result] = pretune.load_run(run.path).predict(["日本に行った"])
    assert len(result["tags"]) == 4  # 日本 / に / 行っ / た, whatever the untrained model says of each
    assert all(e["text"] != "本" for e in result["entities"])
