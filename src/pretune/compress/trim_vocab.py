"""`trim-vocab` (text runs): keep only the tokens the training texts use, every special token,
and (`keep_characters`, on by default) every single-character piece and its `##` form.

The word-embedding matrix keeps those rows, in their old order, and the tokenizer's WordPiece
vocabulary keeps the same tokens with the same new ids, so the model still loads with
`from_pretrained`. WordPiece matches greedily longest-first, so a text whose original pieces are
all kept is cut into the same pieces: its logits are unchanged. A word needing a dropped piece
is cut into the longest kept pieces instead; with every single character kept, any word made of
characters the vocabulary knows is spelled in pieces rather than becoming [UNK] (for MiniLM the
word embeddings are half of all parameters; the characters add about a thousand rows). The notes
give the validation [UNK] rate (share of tokens) before and after.

With `max_unk_rate`, fewer tokens are kept: the training texts' tokens by frequency, the most
frequent first, as few as leave at most that share of the validation texts' tokens outside the
vocabulary (each of those becomes [UNK], or is spelled in smaller pieces when the characters are
kept). Every piece seen once kept about half of MiniLM's vocabulary on a whole training split;
most of them are rare. The notes give the share reached (`validation_missing_rate`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pretune.compress import base
from pretune.compress.loaded import LoadedRun
from pretune.compress.variant import write_variant
from pretune.errors import PretuneError
from pretune.recipe import CompressConfig


@base.register("trim-vocab", "text", settings=lambda cfg: cfg.trim_vocab)
def trim_vocab_step(parent: LoadedRun, cfg: CompressConfig, out: Path) -> LoadedRun:
    tokenizer = parent.preprocessor
    _check_wordpiece(parent.model_path)
    model = parent.model("trim-vocab")
    train = parent.data.splits["train"]
    keep = used_token_ids(tokenizer, train.texts, train.pairs, cfg.trim_vocab.min_count)
    missing = None
    if cfg.trim_vocab.max_unk_rate is not None:
        validation = parent.data.splits["validation"]
        keep, missing = needed_token_ids(tokenizer, train, validation, cfg.trim_vocab.min_count,
                                         cfg.trim_vocab.max_unk_rate)
    if cfg.trim_vocab.keep_characters:
        keep = sorted(set(keep) | set(character_ids(tokenizer)))
    before = model.get_input_embeddings().num_embeddings
    trim_model(model, keep)

    def save(model_dir: Path) -> None:
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        trim_tokenizer_files(model_dir, keep)

    notes = {"vocabulary": {"before": before, "after": len(keep)}, "keep_characters": cfg.trim_vocab.keep_characters,
             **({"validation_missing_rate": missing} if missing is not None else {})}
    return write_variant(out, parent, "trim-vocab", cfg.trim_vocab.model_dump(), save, notes=notes,
                         noted=lambda node: {"validation_unk_rate": {"before": unk_rate(parent),
                                                                     "after": unk_rate(node)}})


def _check_wordpiece(model_dir: Path) -> None:
    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise PretuneError("trim-vocab needs a fast tokenizer (tokenizer.json)")
    kind = json.loads(path.read_text(encoding="utf-8"))["model"].get("type")
    if kind != "WordPiece":
        raise PretuneError(f"trim-vocab supports WordPiece vocabularies, not {kind}")


def used_token_ids(tokenizer, texts: list[str], pairs: list[str] | None, min_count: int = 1) -> list[int]:
    """Sorted ids of tokens seen at least `min_count` times, plus all special tokens."""
    counts = token_counts(tokenizer, texts, pairs)
    special = set(tokenizer.all_special_ids) | {int(i) for i in tokenizer.added_tokens_decoder}
    return sorted({i for i, c in counts.items() if c >= min_count} | special)


def token_counts(tokenizer, texts: list[str], pairs: list[str] | None) -> Counter:
    counts: Counter = Counter()
    for start in range(0, len(texts), 1000):
        chunk = tokenizer(texts[start:start + 1000], pairs[start:start + 1000] if pairs else None,
                          truncation=False)["input_ids"]
        for ids in chunk:
            counts.update(ids)
    return counts


def needed_token_ids(tokenizer, train, validation, min_count: int, max_rate: float) -> tuple[list[int], float]:
    """The most frequent training tokens (seen `min_count` times or more), as few as leave at most
    `max_rate` of the validation tokens out, plus every special token; and the share left out."""
    special = set(tokenizer.all_special_ids) | {int(i) for i in tokenizer.added_tokens_decoder}
    ranked = [i for i, c in token_counts(tokenizer, train.texts, train.pairs).most_common()
              if c >= min_count and i not in special]
    needed = token_counts(tokenizer, validation.texts, validation.pairs)
    for i in special:
        needed.pop(i, None)
    total = sum(needed.values()) or 1
    covered, kept = 0, 0
    while kept < len(ranked) and (total - covered) / total > max_rate:
        covered += needed.get(ranked[kept], 0)
        kept += 1
    return sorted(set(ranked[:kept]) | special), round((total - covered) / total, 6)


def character_ids(tokenizer) -> list[int]:
    """Ids of every one-character piece and its continuation form (`a`, `##a`)."""
    prefix = "##"
    return sorted(i for token, i in tokenizer.get_vocab().items()
                  if len(token) == 1 or (token.startswith(prefix) and len(token) == len(prefix) + 1))


def unk_rate(node: LoadedRun) -> float:
    """Share of the validation split's tokens that are [UNK] under the run's tokenizer."""
    unk = node.preprocessor.unk_token_id
    ids = node.encoded("validation").features["input_ids"]
    total = sum(len(row) for row in ids)
    if not total or unk is None:
        return 0.0
    return round(sum(int((np.asarray(row) == unk).sum()) for row in ids) / total, 6)


@torch.no_grad()
def trim_model(model: nn.Module, keep: list[int]) -> None:
    """Keep embedding rows `keep` (old ids, sorted); row k is the token with new id k."""
    old = model.get_input_embeddings()
    index = torch.tensor(keep, dtype=torch.long)
    mapping = {old_id: new_id for new_id, old_id in enumerate(keep)}
    pad = model.config.pad_token_id
    new = nn.Embedding(len(keep), old.embedding_dim, padding_idx=mapping.get(pad))
    new.weight.copy_(old.weight[index])
    new.to(old.weight.device)
    model.set_input_embeddings(new)
    model.config.vocab_size = len(keep)
    if pad is not None:
        model.config.pad_token_id = mapping.get(pad, 0)


def trim_tokenizer_files(model_dir: Path, keep: list[int]) -> None:
    """Rewrite a saved fast tokenizer (tokenizer.json, vocab.txt) to the kept tokens' new ids."""
    path = Path(model_dir) / "tokenizer.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    by_id = {i: token for token, i in spec["model"]["vocab"].items()}
    mapping = {old: new for new, old in enumerate(keep)}
    spec["model"]["vocab"] = {by_id[old]: new for old, new in mapping.items()}
    for added in spec.get("added_tokens", []):
        added["id"] = mapping[added["id"]]
    for special in (spec.get("post_processor") or {}).get("special_tokens", {}).values():
        special["ids"] = [mapping[i] for i in special["ids"]]
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    vocab = path.with_name("vocab.txt")
    if vocab.is_file():
        vocab.write_text("".join(by_id[old] + "\n" for old in keep), encoding="utf-8")
