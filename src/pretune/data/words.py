"""How raw text becomes words for a tagger, the way its training file formed them.

A tagger learns one tag per *word of its training file*. Given raw text (`pretune predict
--text`, serve), words must be cut the same way, or the tags land on the wrong units. For
space-separated languages the tokenizer's own pre-tokenization (whitespace and punctuation) cuts
as CoNLL files do. For Chinese and Japanese it does not: BERT's tokenizer isolates every CJK
ideograph, so a run trained on the word `日本` tagged `日` LOC and `本` LOC as two entities
(issue 31). Such runs keep their training words as a lexicon (in the model's config,
`pretune_words`), and raw text is cut by forward maximum matching against it (the classic
dictionary method of Chinese word segmentation): at each position the longest
lexicon word; where none starts, an unknown run of ideographs (or of katakana) stays one word up
to the next known word, so an unseen name such as `名古屋` is tagged as one word, not three.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

# Han ideographs (unified, extension A, compatibility), the iteration mark 々, kana, and the
# prolonged sound mark: the scripts written without spaces between words.
_CJK = "\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
CJK = re.compile(f"[{_CJK}]")
_IDEOGRAPH = re.compile("[\u3005\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KATAKANA = re.compile("[\u30a0-\u30ff\uff66-\uff9f]")
# Outside CJK: a run of word characters, or one other character (punctuation), as BERT's
# pre-tokenizer cuts.
_OTHER = re.compile(f"[^\\W{_CJK}]+|[^\\s{_CJK}]")
MAX_LEXICON = 200_000  # words kept, the most frequent first: a config.json of a few MB at most


def training_lexicon(sentences: Iterable[list[str]]) -> list[str] | None:
    """The CJK words of a training file when some hold two or more ideographs (which the
    tokenizer would cut apart); None when the tokenizer's own words match the file's."""
    counts = Counter(word for words in sentences for word in words if CJK.search(word))
    if not any(len(_IDEOGRAPH.findall(word)) >= 2 for word in counts):
        return None
    return [word for word, _ in counts.most_common(MAX_LEXICON)]


def split_words(text: str, lexicon: set[str], longest: int) -> list[tuple[int, int]]:
    """The (start, end) character span of each word of `text`: whitespace separates; within a
    chunk, CJK runs are matched against `lexicon` (its longest word has `longest` characters)
    and other characters are cut into word runs and single punctuation marks."""
    spans: list[tuple[int, int]] = []
    for chunk in re.finditer(r"\S+", text):
        i, end = chunk.start(), chunk.end()
        while i < end:
            if not CJK.match(text, i):
                match = _OTHER.match(text, i)
                spans.append(match.span())
                i = match.end()
                continue
            n = _known_at(text, i, end, lexicon, longest)
            if n == 0:  # unknown: the run of its script, up to the next known word
                same = _KATAKANA if _KATAKANA.match(text, i) else _IDEOGRAPH if _IDEOGRAPH.match(text, i) else None
                n = 1
                while (same is not None and i + n < end and same.match(text, i + n)
                       and _known_at(text, i + n, end, lexicon, longest) < 2):
                    n += 1
            spans.append((i, i + n))
            i += n
    return spans


def _known_at(text: str, i: int, end: int, lexicon: set[str], longest: int) -> int:
    """The length of the longest lexicon word starting at `i` (0: none)."""
    for n in range(min(longest, end - i), 0, -1):
        if text[i:i + n] in lexicon:
            return n
    return 0
