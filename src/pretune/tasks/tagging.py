"""Token classification's pure parts: word labels onto sub-words, entity scores, entity spans.

Labels live on words (a CoNLL token); models see sub-words. The first sub-word of each word
carries the word's label and stands for the word in evaluation and prediction; the rest get
IGNORE_INDEX, which cross-entropy skips. Entities are read from tags by seqeval's rules (its
default mode: an I- tag after O or another type starts an entity, as in conlleval), both when
scoring and when decoding predictions, so a predicted span is exactly what the metric counted.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from seqeval.metrics import accuracy_score, classification_report, f1_score
from seqeval.metrics.sequence_labeling import get_entities

IGNORE_INDEX = -100  # torch.nn.CrossEntropyLoss's default ignore_index


def align_labels(word_ids: Sequence[int | None], word_label_ids: Sequence[int]) -> list[int]:
    """One label id per sub-token, from one per word.

    `word_ids` is a fast tokenizer's `encoding.word_ids(i)` for words given with
    `is_split_into_words=True`: None for special tokens ([CLS], [SEP], padding), else the index of
    the word the sub-token came from. The first sub-token of a word gets the word's label; later
    ones get IGNORE_INDEX (evaluation and decoding read first sub-tokens only, so training the
    others would teach what is never asked).

    A word the tokenizer drops entirely (a zero-width space, a control character, an empty
    string) or that truncation cuts off has no sub-token, so it appears nowhere in the result:
    its label is simply not trained on. `first_subtoken_values` gives it a fill value on the way back.
    """
    labels = []
    previous = None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
        elif word >= len(word_label_ids):
            raise ValueError(f"word id {word} but only {len(word_label_ids)} word labels")
        elif word != previous:
            labels.append(int(word_label_ids[word]))
        else:
            labels.append(IGNORE_INDEX)
        previous = word
    return labels


def first_subtoken_values(word_ids: Sequence[int | None], token_values: Sequence, num_words: int, fill) -> list:
    """Per word, the value (a predicted id, a score) at its first sub-token; `fill` for a word
    with no sub-token (dropped by the tokenizer or cut by truncation), so that predicted tags line
    up with the gold ones word for word."""
    values = [fill] * num_words
    seen = set()
    for position, word in enumerate(word_ids):
        if word is not None and word not in seen and word < num_words:
            seen.add(word)
            values[word] = token_values[position]
    return values


def entity_metrics(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level scores by seqeval's definition (an entity counts when type and span both match).

    Flat keys for the overall figures (micro `precision`, `recall`, `f1`; `f1_macro` over entity
    types; `token_accuracy` over all tags, O included) so they log like any other metric, and
    `per_type: {TYPE: {precision, recall, f1, support}}`. An undefined ratio (no predicted or no
    true entity) is 0, as seqeval reports it, without its warning; `f1_macro` with no entity type
    at all (neither gold nor predicted) is None, not the NaN of a mean of nothing.
    """
    true_tags, pred_tags = [list(t) for t in true_tags], [list(p) for p in pred_tags]
    if len(true_tags) != len(pred_tags):
        raise ValueError(f"{len(true_tags)} true sequences but {len(pred_tags)} predicted")
    for i, (t, p) in enumerate(zip(true_tags, pred_tags, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sequence {i}: {len(t)} true tags but {len(p)} predicted")
    with warnings.catch_warnings():  # the mean of no entity type: numpy's warning, not the user's
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(true_tags, pred_tags, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    per_type = {
        name: {"precision": float(row["precision"]), "recall": float(row["recall"]),
               "f1": float(row["f1-score"]), "support": int(row["support"])}
        for name, row in report.items() if not name.endswith(" avg")
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "f1_macro": float(f1_score(true_tags, pred_tags, average="macro", zero_division=0)) if per_type else None,
        "token_accuracy": float(accuracy_score(true_tags, pred_tags)),
        "per_type": per_type,
    }


def count_scheme_slips(tags_list: Sequence[Sequence[str]]) -> int:
    """I- tags not preceded by B- or I- of the same type (a slip of the IOB2 scheme).

    Real data sets have them; seqeval reads such a tag as the start of an entity, so they are
    counted for a warning, never refused.
    """
    slips = 0
    for tags in tags_list:
        previous = "O"
        for tag in tags:
            continues = previous[:2] in ("B-", "I-") and previous[2:] == tag[2:]
            if tag.startswith("I-") and not continues:
                slips += 1
            previous = tag
    return slips


def decode_entities(
    words_or_text: str | Sequence[str],
    offsets: Sequence[tuple[int, int]] | None,
    token_pred_ids: Sequence[int],
    token_scores: np.ndarray | Sequence[float],
    id2label: Mapping[int, str] | Sequence[str],
    word_ids: Sequence[int | None],
) -> list[dict]:
    """Entity spans `{"text", "type", "start", "end", "score"}` from one sequence's sub-token predictions.

    Each word is read at its first sub-token (`word_ids` as in `align_labels`); tags become
    entities by seqeval's rules. `score` is the mean probability of the span's words.
    `token_scores` holds, per sub-token, the probability of its predicted label (n_tokens,) or
    the probabilities of all labels (n_tokens, n_labels).

    Input as raw text (what `pretune predict --text` gives): `offsets` is the tokenizer's
    `offset_mapping`, and `start` / `end` index that text. Input as words (a CoNLL sentence):
    `offsets` is not needed, and `start` / `end` index the words joined by single spaces.
    A word with no sub-token inside an entity stays inside its text.
    """
    pred_ids = np.asarray(token_pred_ids)
    scores = np.asarray(token_scores, dtype=float)
    if scores.ndim == 2:
        scores = scores[np.arange(len(pred_ids)), pred_ids]
    text, spans = _word_spans(words_or_text, offsets, word_ids)
    first: dict[int, int] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            first.setdefault(word, position)
    words = sorted(first)
    tags = [id2label[int(pred_ids[first[w]])] for w in words]
    entities = []
    for kind, i, j in get_entities(tags):
        start, end = spans[words[i]][0], spans[words[j]][1]
        entities.append({
            "text": text[start:end], "type": kind, "start": int(start), "end": int(end),
            "score": float(np.mean([scores[first[w]] for w in words[i:j + 1]])),
        })
    return entities


def _word_spans(words_or_text, offsets, word_ids) -> tuple[str, dict[int, tuple[int, int]]]:
    """The text entities index into, and each word's (start, end) character span in it."""
    if isinstance(words_or_text, str):
        if offsets is None:
            raise ValueError("raw text needs the tokenizer's offset_mapping")
        spans: dict[int, tuple[int, int]] = {}
        for (start, end), word in zip(offsets, word_ids, strict=True):
            if word is not None:
                old = spans.get(word, (start, end))
                spans[word] = (min(old[0], start), max(old[1], end))
        return words_or_text, spans
    words = list(words_or_text)
    spans, position = {}, 0
    for index, word in enumerate(words):
        spans[index] = (position, position + len(word))
        position += len(word) + 1
    return " ".join(words), spans
