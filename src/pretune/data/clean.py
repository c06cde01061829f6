"""What real-world label columns hold, settled before a split or a model sees them: missing labels
(refused in one line, or dropped with a count under `data.drop_missing`), class names given as a
mix of JSON types (made strings, with a notice), more classes than rows can teach (refused), and
the duplicate and leaked texts `data.drop_duplicates` / `data.drop_leaked` remove from training.

Each function returns what it changed as notices (strings) for the caller to tell: fit prints
them and keeps them in metrics.json.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from pretune.errors import PretuneError

# More classes than this may be fine (a 100-way topic set), provided each has some rows.
MANY_CLASSES = 50
# Below this many training rows per class on average, a classifier cannot learn the classes: the
# issue's case, 10,000 labels in 20,000 rows (2 per class), is an ID column taken for a label.
# Not higher: few-shot sets (SetFit's 4 or 8 examples of each of 77 intents) must pass.
MIN_ROWS_PER_CLASS = 3
_NOT_WORD = re.compile(r"[\W_]+")


def missing_cells(values: pd.Series, blank: bool = True) -> np.ndarray:
    """Cells holding nothing: NA / null, or (`blank`) a string of only whitespace, such as a
    JSON "" class name. A list cell (tags, multi-label) is never missing here: its task checks it."""
    missing = values.isna().to_numpy(dtype=bool)
    if blank:
        missing = missing | values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    return missing


def settle_missing(frame: pd.DataFrame, columns: dict[str, str], where: str, drop: bool,
                   blank: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list[str]]:
    """Rows with a missing cell in any of `columns` ({column: what it holds}; the `blank` ones also
    missing when only whitespace): refused, naming the count and the first row (the frame's
    index: the row number in the source file), or dropped with a notice when `drop`
    (data.drop_missing)."""
    notices = []
    for column, what in columns.items():
        missing = missing_cells(frame[column], column in blank)
        if not missing.any():
            continue
        count, first = int(missing.sum()), frame.index[int(np.flatnonzero(missing)[0])]
        if not drop:
            raise PretuneError(f"{where}: {count} row(s) have no {what} in '{column}', first at row {first}; "
                               "fill them, or set data.drop_missing: true to drop them")
        frame = frame[~missing]
        notices.append(f"{where}: dropped {count} row(s) with no {what} in '{column}' (data.drop_missing)")
    if drop and len(frame) == 0:
        raise PretuneError(f"{where}: no rows left after dropping those with missing cells")
    return frame, notices


def class_name(value) -> str:
    """One label cell as the class name it stands for. JSON `true` is "true" (its JSON spelling,
    not Python's "True"); an integral float is the integer's spelling, because a JSON column of
    class numbers with a null in it arrives as 1.0, 2.0 and must name the same classes as 1, 2."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def labels_as_text(frame: pd.DataFrame, column: str, where: str) -> tuple[pd.DataFrame, list[str]]:
    """The label column as class-name strings. Numbers and strings mixed in one column (JSON `1`,
    `"1"`, `1.0`, `true`) would break sorting and stratifying (TypeError); they become strings
    (1, "1" and 1.0 one class "1"), and a notice names the kinds found."""
    values = frame[column]
    kinds = sorted({_kind(v) for v in values.dropna()})
    if kinds == ["string"] and values.map(lambda v: isinstance(v, str)).all():
        return frame, []
    names = values.map(class_name)
    notices = []
    if len(kinds) > 1:
        notices.append(f"{where}: '{column}' mixes {' and '.join(kinds)} labels; all are read as text "
                       f"({names.nunique()} classes: {_examples(names)})")
    frame = frame.copy()
    frame[column] = names
    return frame, notices


def _kind(value) -> str:
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _examples(names: pd.Series, shown: int = 5) -> str:
    seen = list(dict.fromkeys(names))
    return ", ".join(seen[:shown]) + (", ..." if len(seen) > shown else "")


def refuse_too_many_classes(labels: pd.Series, where: str, column: str) -> None:
    """More than MANY_CLASSES classes with fewer than MIN_ROWS_PER_CLASS rows each on average: the
    column cannot be learnt (often an ID or a free-text column named as the label). Said before a
    model with one output per class, and an N x N confusion matrix, is built."""
    classes, rows = labels.nunique(), len(labels)
    if classes > MANY_CLASSES and classes * MIN_ROWS_PER_CLASS > rows:
        raise PretuneError(
            f"{where}: {classes:,} distinct labels in {rows:,} rows ({rows / classes:.1f} rows per class): too "
            f"few examples per class to learn (at least {MIN_ROWS_PER_CLASS} on average when over "
            f"{MANY_CLASSES} classes); is '{column}' the label column?")


def text_key(text) -> str:
    """The form near-duplicates share: Unicode-normalised (NFKC), case-folded, punctuation and
    runs of spaces dropped. "Great film!" and "great  film" have one key. A list of words (a
    tagged sentence) is its words joined by spaces."""
    if isinstance(text, list | tuple | np.ndarray):
        text = " ".join(map(str, text))
    return " ".join(_NOT_WORD.sub(" ", unicodedata.normalize("NFKC", str(text)).casefold()).split())


def duplicate_rows(texts: Iterable) -> np.ndarray:
    """True for each text whose key appeared earlier in `texts` (the first stays)."""
    return pd.Series([text_key(t) for t in texts], dtype=object).duplicated().to_numpy()


def leaked_rows(train_texts: Iterable, other_texts: Iterable) -> np.ndarray:
    """True for each training text whose key is also among `other_texts` (validation, test)."""
    others = {text_key(t) for t in other_texts}
    return np.array([text_key(t) in others for t in train_texts], dtype=bool)


def drop_from_train(frames: dict[str, pd.DataFrame], column: str, duplicates: bool, leaked: bool) -> list[str]:
    """Remove from `frames["train"]` (in place) the near-duplicates of earlier training texts
    (`duplicates`) and the texts that also occur in validation or test (`leaked`), so the test
    measures texts the model never saw; returns the counts as notices."""
    notices = []
    train = frames["train"]
    if duplicates:
        repeated = duplicate_rows(train[column])
        if repeated.any():
            train = train[~repeated]
            notices.append(f"train: dropped {int(repeated.sum())} duplicate text(s) (data.drop_duplicates)")
    if leaked:
        others = [t for split in ("validation", "test") if split in frames for t in frames[split][column]]
        shared = leaked_rows(train[column], others)
        if shared.any():
            train = train[~shared]
            notices.append(f"train: dropped {int(shared.sum())} text(s) also in validation or test "
                           "(data.drop_leaked)")
    if len(train) == 0:
        raise PretuneError("train: no rows left after dropping duplicate and leaked texts")
    frames["train"] = train
    return notices
