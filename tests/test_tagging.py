"""Token classification's pure parts, on hand-made examples and the real MiniLM tokenizer."""

import numpy as np
import pytest
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

from pretune.tasks.tagging import (
    IGNORE_INDEX,
    align_labels,
    count_scheme_slips,
    decode_entities,
    entity_metrics,
    first_subtoken_values,
)

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-geo-loc", "I-geo-loc"]
ID = {name: i for i, name in enumerate(LABELS)}
X = IGNORE_INDEX


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir)
    assert tok.is_fast  # word_ids and offset_mapping need a fast tokenizer
    return tok


def test_first_subtoken_carries_the_label_and_dropped_words_have_no_position(tokenizer):
    # "\u200b" (zero-width space), "\x07" (a control character) and "" yield no sub-token.
    words = ["Anna", "\u200b", "antidisestablishmentarianism", "\x07", "visited", "", "Paris"]
    tags = ["B-PER", "B-LOC", "O", "I-LOC", "O", "O", "B-LOC"]
    word_ids = tokenizer(words, is_split_into_words=True).word_ids(0)
    assert set(w for w in word_ids if w is not None) == {0, 2, 4, 6}
    assert word_ids.count(2) >= 5  # a word split into many pieces
    labels = align_labels(word_ids, [ID[t] for t in tags])
    assert len(labels) == len(word_ids)
    assert labels[0] == labels[-1] == X  # [CLS], [SEP]
    kept = [label for label in labels if label != X]
    assert kept == [ID["B-PER"], ID["O"], ID["O"], ID["B-LOC"]]  # the dropped words' labels vanish
    pieces = [labels[i] for i, w in enumerate(word_ids) if w == 2]
    assert pieces == [ID["O"]] + [X] * (len(pieces) - 1)


def test_hand_made_alignment():
    word_ids = [None, 0, 1, 1, 1, 2, None, None]  # [CLS] w0 w1 ## ## w2 [SEP] [PAD]
    word_labels = [ID["O"], ID["B-PER"], ID["I-PER"]]
    assert align_labels(word_ids, word_labels) == [X, 0, 3, X, X, 4, X, X]
    with pytest.raises(ValueError, match="word id 2 but only 2 word labels"):
        align_labels(word_ids, word_labels[:2])


def test_first_subtoken_values_fill_words_without_a_position():
    word_ids = [None, 0, 0, 2, 2, 2, None]  # word 1 dropped, word 3 truncated away
    preds = [9, 5, 6, 7, 8, 8, 9]
    assert first_subtoken_values(word_ids, preds, num_words=4, fill=0) == [5, 0, 7, 0]


TRUE = [
    ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"],
    ["O", "B-geo-loc", "I-geo-loc", "O", "B-PER"],
    ["I-LOC", "O", "O"],  # a scheme slip: seqeval reads it as an entity
    ["O", "O"],
]
PRED = [
    ["B-PER", "I-PER", "O", "B-LOC", "O", "O"],  # LOC span too short: wrong
    ["O", "B-geo-loc", "I-geo-loc", "O", "B-LOC"],  # PER as LOC: wrong type
    ["B-LOC", "O", "O"],  # same span and type as the slip
    ["B-PER", "O"],  # spurious
]


def test_entity_metrics_match_seqeval_and_hand_counts():
    m = entity_metrics(TRUE, PRED)
    # 5 true entities, 6 predicted, 3 right: PER (s1), geo-loc, LOC (s3).
    assert (m["precision"], m["recall"]) == pytest.approx((3 / 6, 3 / 5))
    assert m["f1"] == pytest.approx(2 * 0.5 * 0.6 / 1.1)
    assert m["precision"] == precision_score(TRUE, PRED)
    assert m["recall"] == recall_score(TRUE, PRED)
    assert m["f1"] == f1_score(TRUE, PRED)
    assert m["f1_macro"] == f1_score(TRUE, PRED, average="macro")
    assert m["token_accuracy"] == accuracy_score(TRUE, PRED) == pytest.approx(12 / 16)
    report = classification_report(TRUE, PRED, output_dict=True)
    assert set(m["per_type"]) == {"LOC", "PER", "geo-loc"}
    for name, row in m["per_type"].items():
        assert row == {"precision": report[name]["precision"], "recall": report[name]["recall"],
                       "f1": report[name]["f1-score"], "support": report[name]["support"]}
    assert m["per_type"]["geo-loc"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["per_type"]["PER"]["support"] == 2 and m["per_type"]["PER"]["precision"] == pytest.approx(1 / 2)
    assert all(type(v) is float for k, v in m.items() if k != "per_type")  # JSON-ready


def test_entity_metrics_without_predictions_is_zero_and_rejects_ragged_input():
    m = entity_metrics([["B-PER", "O"]], [["O", "O"]])
    assert m["f1"] == m["precision"] == m["recall"] == 0.0 and m["token_accuracy"] == 0.5
    with pytest.raises(ValueError, match="sequence 0: 2 true tags but 1 predicted"):
        entity_metrics([["B-PER", "O"]], [["O"]])


def test_count_scheme_slips():
    assert count_scheme_slips(TRUE) == 1
    tags = [["O", "I-PER", "I-PER", "B-LOC", "I-PER", "I-LOC"], ["I-geo-loc"], ["B-geo-loc", "I-geo-loc"]]
    assert count_scheme_slips(tags) == 4  # after O, after B- and I- of another type, at the start


def test_decode_entities_from_raw_text_with_offsets(tokenizer):
    text = "Visit  New York\u200bCity with Anna-Maria, tschüss!"
    enc = tokenizer(text, return_offsets_mapping=True)
    word_ids = enc.word_ids()
    # The pre-tokenizer's words: Visit / New / York\u200bCity / with / Anna / - / Maria / , / tschüss / !
    word_tags = ["O", "B-LOC", "I-LOC", "O", "B-PER", "I-PER", "I-PER", "O", "B-geo-loc", "O"]
    assert max(w for w in word_ids if w is not None) == len(word_tags) - 1
    rng = np.random.default_rng(0)
    preds, probs, seen = [], np.full((len(word_ids), len(LABELS)), 0.01), set()
    for position, word in enumerate(word_ids):
        if word is None or word in seen:
            preds.append(int(rng.integers(len(LABELS))))  # never read: special or later sub-token
        else:
            preds.append(ID[word_tags[word]])
            probs[position, preds[-1]] = 0.5 + 0.05 * word
        seen.add(word)
    entities = decode_entities(text, enc["offset_mapping"], preds, probs, LABELS, word_ids)
    assert [(e["text"], e["type"], e["start"], e["end"]) for e in entities] == [
        ("New York\u200bCity", "LOC", 7, 20), ("Anna-Maria", "PER", 26, 36), ("tschüss", "geo-loc", 38, 45),
    ]
    assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)
    assert entities[0]["score"] == pytest.approx(np.mean([0.55, 0.60]))
    assert entities[1]["score"] == pytest.approx(np.mean([0.70, 0.75, 0.80]))
    # The same with 1-D scores (probability of the predicted label only).
    chosen = probs[np.arange(len(preds)), preds]
    assert decode_entities(text, enc["offset_mapping"], preds, chosen, dict(enumerate(LABELS)), word_ids) == entities


def test_decode_entities_from_words_indexes_the_space_joined_text(tokenizer):
    words = ["RT", "@anna", ":", "Empire", "\u200b", "State", "Building", "rocks"]
    tags = ["O", "B-PER", "O", "B-LOC", "O", "I-LOC", "I-LOC", "O"]
    enc = tokenizer(words, is_split_into_words=True)
    word_ids = enc.word_ids(0)
    first = {w: i for i, w in reversed(list(enumerate(word_ids))) if w is not None}
    preds = [ID[tags[w]] if w is not None and first[w] == i else 0 for i, w in enumerate(word_ids)]
    entities = decode_entities(words, None, preds, np.ones(len(preds)), LABELS, word_ids)
    joined = " ".join(words)
    assert [(e["text"], e["type"]) for e in entities] == [
        ("@anna", "PER"), ("Empire \u200b State Building", "LOC"),  # the dropped word stays inside
    ]
    assert all(joined[e["start"]:e["end"]] == e["text"] and e["score"] == 1.0 for e in entities)
    with pytest.raises(ValueError, match="offset_mapping"):
        decode_entities(joined, None, preds, np.ones(len(preds)), LABELS, word_ids)
