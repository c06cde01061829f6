"""Text-pair classification: one label per pair of texts (premise / hypothesis, question /
answer, two sentences that may or may not paraphrase each other), encoded with the tokenizer's
pair encoding (BERT: `[CLS] text [SEP] text_pair [SEP]`, the second segment marked by
token_type_ids), softmax over the classes.

Labels, loss, metrics, decoding and answers are sequence classification's; what this task adds
is that the second text is part of every input: its column defaults to `text_pair` (set
`data.text_pair_column`, e.g. `hypothesis`), `predict` and serving refuse an input without it
(serving takes `text` and `text_pair`, as `transformers.pipeline` does), and the card's example
passes pairs. Added as this one file: it registers itself like every task.
"""

from __future__ import annotations

from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.tasks.base import tasks
from pretune.tasks.sequence import SequenceClassification


@tasks.register("text-pair-classification")
class TextPairClassification(SequenceClassification):
    text_pair_column = "text_pair"
    inferred_from = None  # a second text column is the user's to name
    card_example = ((), '["A man plays a guitar on stage."], ["Someone is making music."]')

    def unlabelled(self, texts: list, pairs: list | None = None) -> TextTable:
        if pairs is None:
            raise PretuneError(f"a {self.name} model reads pairs of texts: give the second texts too "
                               f"(predict(texts, pairs), or a table with columns '{self.cfg.text_column}' and "
                               f"'{self.cfg.text_pair_column}')")
        if len(pairs) != len(texts):
            raise PretuneError(f"{len(texts)} texts but {len(pairs)} second texts: give one pair per input")
        return super().unlabelled(texts, pairs)
