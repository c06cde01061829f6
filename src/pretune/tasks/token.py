"""Token classification (named-entity recognition): one BIO / IOB2 tag per word.

Words arrive as token lists (CoNLL files, JSONL lists) and are split into sub-words; the first
sub-word of each word carries the word's tag and the others are ignored by the loss (-100),
as in Hugging Face's token-classification guide. Scores are seqeval's entity-level figures
over whole sentences: a word past `max_length` sub-words is not trained on, and in scoring it
counts as tagged O (its gold entity missed), as `predict` tags it. Scoring only the kept words
reported F1 0.271 where seqeval over predict's output gave 0.174 (issue 16).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pretune.data.conll import as_token_list, checked_tag
from pretune.data.encode import ENCODE_CHUNK, FEATURE_TYPES, IGNORE_INDEX, EncodedSplit, lengths_of
from pretune.data.prepare import TextTable
from pretune.data.ragged import RaggedRows
from pretune.data.words import split_words, training_lexicon
from pretune.errors import PretuneError
from pretune.recipe import LossConfig
from pretune.tasks.base import Task, class_weights, softmax, tasks
from pretune.tasks.tagging import (
    align_labels,
    count_scheme_slips,
    decode_entities,
    entity_metrics,
    first_subtoken_values,
)


@tasks.register("token-classification")
class TokenClassification(Task):
    auto_class = "AutoModelForTokenClassification"
    metric_names = ("loss", "f1", "precision", "recall", "f1_macro", "token_accuracy")
    headline = "f1"
    text_column, label_column = "tokens", "tags"
    inferred_from = "token-tags"
    oip_outputs = (("entities", "BYTES"), ("tags", "BYTES"))
    curves = ("f1", "precision", "recall")
    error_view = "differing-tags"
    pipeline_tag = "token-classification"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.scheme_slips = 0  # I- tags with no B- before them, counted in learn_labels
        self.truncated_train = 0  # training sentences longer than max_length, counted in encode
        self.encoded_length = cfg.max_length  # set by encode: the effective one, capped at the model's positions
        # The training file's CJK words, when the tokenizer would cut them apart: raw text is then
        # split into words against them (data/words.py); None: the tokenizer's own words.
        self.lexicon: list[str] | None = None

    def _rows(self, frame: pd.DataFrame, column: str, where: str) -> list[list[str]]:
        """Each cell as a list of strings: a list, a Parquet array or a JSON list in a CSV cell;
        tag cells also checked against the B-/I-/E-/S- scheme, naming the row."""
        tags = column == self.cfg.label_column
        rows = []
        for i, value in zip(frame.index, frame[column], strict=True):
            row = as_token_list(value, column, f"{where}, row {i}")
            rows.append([checked_tag(t, f"{where}, row {i}") for t in row] if tags else row)
        return rows

    def learn_labels(self, train: pd.DataFrame) -> None:
        tags = self._rows(train, self.cfg.label_column, "train")
        self.lexicon = training_lexicon(self._rows(train, self.cfg.text_column, "train"))
        self.scheme_slips = count_scheme_slips(tags)
        names = sorted({t for row in tags for t in row})
        if names == ["O"]:
            raise PretuneError(f"train: no entity in any of its {len(tags)} sentences (every tag is O); "
                               "a tagger needs B-/I- tags to learn from")
        # "O" first, then the entity tags grouped by type (B- before I-): the order people read.
        self.label_names = sorted(names, key=lambda t: (t != "O", t[2:], t[:2]))

    def labels_of(self, frame: pd.DataFrame, where: str) -> list[list[int]]:
        index = {name: i for i, name in enumerate(self.label_names)}
        tags = self._rows(frame, self.cfg.label_column, where)
        tokens = self._rows(frame, self.cfg.text_column, where)
        out = []
        for i, row, words in zip(frame.index, tags, tokens, strict=True):
            if len(row) != len(words):
                raise PretuneError(f"{where}: row {i} has {len(words)} tokens but {len(row)} tags")
            unseen = [t for t in row if t not in index]
            if unseen:
                raise PretuneError(f"{where}: row {i}: tag {unseen[0]!r} never seen in training")
            out.append([index[t] for t in row])
        return out

    def to_table(self, frame: pd.DataFrame, where: str, with_labels: bool = True) -> TextTable:
        words = self._rows(frame, self.cfg.text_column, where)
        return TextTable(words, None, self.labels_of(frame, where) if with_labels else None)

    def configure(self, config) -> None:
        super().configure(config)
        if self.lexicon is not None:
            config.pretune_words = {"split": "lexicon", "lexicon": self.lexicon}

    def restore(self, config) -> None:
        super().restore(config)
        saved = getattr(config, "pretune_words", None)
        self.lexicon = saved.get("lexicon") if isinstance(saved, dict) else None

    def _split_raw(self, texts: list[str]) -> tuple[list[list[str]], list[list[tuple[int, int]]]]:
        """Raw texts as the training file's words (and their character spans)."""
        lexicon = set(self.lexicon)
        longest = max(map(len, lexicon), default=1)
        spans = [split_words(text, lexicon, longest) for text in texts]
        return [[text[a:b] for a, b in row] for text, row in zip(texts, spans, strict=True)], spans

    def encode(self, table: TextTable, tokenizer, max_length: int) -> EncodedSplit:
        if not getattr(tokenizer, "is_fast", False):
            raise PretuneError("token classification needs a fast tokenizer (word_ids to align tags)")
        self.encoded_length = max_length
        raw = bool(table.texts) and isinstance(table.texts[0], str)
        texts, spans = table.texts, None
        if raw and self.lexicon:
            texts, spans = self._split_raw(table.texts)
        parts: dict[str, list[RaggedRows]] = {}
        word_ids, offsets = [], []
        for start in range(0, max(len(texts), 1), ENCODE_CHUNK):  # chunks: see data/encode.py
            enc = tokenizer(texts[start:start + ENCODE_CHUNK], truncation=True, max_length=max_length,
                            padding=False, is_split_into_words=not raw or spans is not None,
                            return_offsets_mapping=raw and spans is None)
            for name, dtype in FEATURE_TYPES.items():
                if name in enc:
                    parts.setdefault(name, []).append(RaggedRows.from_lists(enc[name], dtype))
            word_ids += [enc.word_ids(i) for i in range(len(enc["input_ids"]))]
            if raw and spans is None:
                offsets += enc["offset_mapping"]
        if spans is not None:  # each sub-word spans its whole word: entities cover whole words
            offsets = [[(0, 0) if w is None else row[w] for w in ids] for ids, row in zip(word_ids, spans, strict=True)]
        features = {name: RaggedRows.concat(chunks, FEATURE_TYPES[name]) for name, chunks in parts.items()}
        labels = None
        if table.labels is not None:
            labels = [np.array(align_labels(w, y), dtype=np.int64) for w, y in zip(word_ids, table.labels, strict=True)]
        meta = {"word_ids": word_ids}
        if raw:
            meta["offsets"] = offsets
        else:
            meta["words"] = [len(words) for words in table.texts]
        if table.labels is not None:
            meta["word_labels"] = table.labels  # every word's tag: scores count the cut ones too
        return EncodedSplit(features, labels, lengths_of(features), meta)

    def for_training(self, split: EncodedSplit, seed: int) -> EncodedSplit:
        self.truncated_train = truncated_rows(split)
        return split

    def notices(self) -> list[str]:
        said = []
        if self.scheme_slips:
            said.append(f"train: {self.scheme_slips} I- tag(s) follow no B- or I- of their type (IOB2 slips); "
                        "seqeval reads each as the start of an entity")
        if self.truncated_train:
            said.append(f"train: {self.truncated_train} sentence(s) are longer than data.max_length "
                        f"{self.encoded_length} sub-words; their words past it are not trained on")
        return said

    def sampling_classes(self, split: EncodedSplit) -> list[list[int]]:
        begins = [i for i, name in enumerate(self.label_names) if name.startswith("B-")]
        return [sorted(set(row.tolist()) & set(begins)) or [0] for row in split.labels]

    def loss_weight(self, cfg: LossConfig, train: EncodedSplit) -> torch.Tensor | None:
        if cfg.class_weights is None:
            return None
        every = np.concatenate(train.labels)
        return class_weights(cfg, np.bincount(every[every != IGNORE_INDEX], minlength=self.num_labels))

    def shape_loss(self, loss_fn):
        def token_loss(logits, labels):
            keep = labels != IGNORE_INDEX  # padding and non-first sub-words
            return loss_fn(logits[keep], labels[keep])

        return token_loss

    def _tags(self, outputs: list[np.ndarray], split: EncodedSplit) -> tuple[list[list[str]], list[list[str]]]:
        names = self.label_names
        true, pred = [], []
        word_labels = split.meta.get("word_labels")
        if word_labels is None:  # a split built without its words' tags: the kept words only
            for logits, labels in zip(outputs, split.labels, strict=True):
                keep = labels != IGNORE_INDEX
                true.append([names[i] for i in labels[keep]])
                pred.append([names[i] for i in logits[keep].argmax(-1)])
            return true, pred
        for logits, gold, word_ids in zip(outputs, word_labels, split.meta["word_ids"], strict=True):
            true.append([names[i] for i in gold])
            tokens = [names[i] for i in logits.argmax(-1)]
            pred.append(first_subtoken_values(word_ids, tokens, len(gold), "O"))
        return true, pred

    def metrics(self, outputs: list[np.ndarray], split: EncodedSplit) -> dict:
        return {**entity_metrics(*self._tags(outputs, split)), "sentences_truncated": truncated_rows(split)}

    def decode(self, outputs: list[np.ndarray], split: EncodedSplit, table: TextTable) -> list[dict]:
        offsets = split.meta.get("offsets")
        results = []
        for r, logits in enumerate(outputs):
            probs = softmax(logits)
            ids = probs.argmax(-1)
            word_ids = split.meta["word_ids"][r]
            entities = decode_entities(table.texts[r], offsets[r] if offsets else None, ids, probs,
                                       self.label_names, word_ids)
            # One tag per word, read at its first sub-word; a word the tokenizer dropped or
            # truncation cut gets "O", so the tags line up with the words.
            words = len(table.texts[r]) if isinstance(table.texts[r], list) else 1 + max(
                (w for w in word_ids if w is not None), default=-1)
            tags = first_subtoken_values(word_ids, [self.label_names[int(i)] for i in ids], words, "O")
            results.append({"entities": entities, "tags": tags})
        return results

    def pipeline_answer(self, result: dict, top_k) -> list[dict]:
        """pipeline's entities with `aggregation_strategy="simple"`."""
        return [{"entity_group": e["type"], "score": e["score"], "word": e["text"], "start": e["start"],
                 "end": e["end"]} for e in result["entities"]]

    def report_rows(self, table: TextTable, predicted: list[dict], text_of) -> list[dict]:
        names = self.label_names
        return [{"tokens": [str(w) for w in words], "true": [names[t] for t in gold], "pred": p["tags"]}
                for words, gold, p in zip(table.texts, table.labels, predicted, strict=True)]


def truncated_rows(split: EncodedSplit) -> int:
    """Sentences whose last word got no sub-word: cut by max_length (or dropped by the tokenizer)."""
    counts = split.meta.get("words") or [len(w) for w in split.meta.get("word_labels") or []]
    return sum(1 + max((w for w in ids if w is not None), default=-1) < words
               for ids, words in zip(split.meta["word_ids"], counts, strict=False))
