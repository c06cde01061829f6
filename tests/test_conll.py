"""CoNLL-style and JSONL token-tag readers: formats, and bad input told in one line."""

import json

import pandas as pd
import pytest

from pretune import PretuneError
from pretune.data.conll import read_conll
from pretune.data.tables import read_table
from pretune.recipe import DataConfig
from pretune.tasks import create_task


def write(tmp_path, text, name="data.conll", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_tab_separated_sentences_with_blank_and_tab_only_separators(tmp_path):
    # WNUT-16's file separates sentences with a line holding one tab; a token may hold U+2028.
    text = "Empire\tB-facility\r\nState\tI-facility\t\n\t\nhi\u2028there\tO\n\u00a0\tO\n.\tO\n\n\n"
    frame = read_conll(write(tmp_path, text))
    assert frame["tokens"].tolist() == [["Empire", "State"], ["hi\u2028there", "\u00a0", "."]]
    assert frame["tags"].tolist() == [["B-facility", "I-facility"], ["O", "O", "O"]]


def test_conll2003_columns_and_docstart(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
        "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER"  # no final newline
    )
    frame = read_conll(write(tmp_path, text))
    assert frame["tokens"].tolist() == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert frame["tags"].tolist() == [["B-ORG", "O"], ["B-PER", "I-PER"]]


def test_whitespace_separated_and_a_byte_order_mark(tmp_path):
    frame = read_conll(write(tmp_path, "\ufeffParis B-LOC\nis O\n", encoding="utf-8"))
    assert frame["tokens"].tolist() == [["Paris", "is"]]


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("a\tO\nb\tO\n\nlonely\nc\tO\n", 4, "one field"),
        ("EU NNP B-ORG\nNew York NNP B-LOC\n", 2, "4 columns where line 1 has 3"),  # a space inside a token
        ("a\tO\nb\tO\tX\n", 2, "columns"),
        ("a\tO\nb\tPERSON\n", 2, "is not a tag"),
        ("a\tO\n\tB-X\n", 2, "empty token"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, text, line, what):
    path = write(tmp_path, text)
    with pytest.raises(PretuneError, match=f"data.conll, line {line}: .*{what}") as e:
        read_conll(path)
    assert "\n" not in str(e.value)


def test_decode_error_names_the_encoding_option_and_line(tmp_path):
    path = write(tmp_path, "a\tO\n\ncaf\u00e9\tB-LOC\n", encoding="latin-1")
    with pytest.raises(PretuneError, match="line 3 is not valid utf-8; set data.encoding"):
        read_conll(path)
    assert read_conll(path, encoding="latin-1")["tokens"].tolist() == [["a"], ["caf\u00e9"]]
    with pytest.raises(PretuneError, match="unknown text encoding 'klingon'"):
        read_conll(path, encoding="klingon")


def test_empty_or_missing_file(tmp_path):
    with pytest.raises(PretuneError, match="no sentences"):
        read_conll(write(tmp_path, "\n\t\n-DOCSTART- O\n"))
    with pytest.raises(PretuneError, match="not found"):
        read_conll(tmp_path / "absent.conll")


def token_task(frame):
    task = create_task(DataConfig(source="x.jsonl", task="token-classification"))
    task.learn_labels(frame)
    return task


def test_token_task_reads_lists_parquet_arrays_and_json_cells(tmp_path):
    rows = [{"tokens": ["Paris", "rocks"], "tags": ["B-LOC", "O"]}, {"tokens": ["no", 1999], "tags": ["O", "O"]}]
    path = write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n\n", name="t.jsonl")
    frame = read_table(path)
    table = token_task(frame).to_table(frame, "train")
    assert table.texts == [["Paris", "rocks"], ["no", "1999"]]
    assert token_task(frame).label_names == ["O", "B-LOC"]
    parquet = tmp_path / "t.parquet"
    frame.iloc[:1].to_parquet(parquet)  # list columns come back as NumPy arrays
    assert token_task(frame).to_table(read_table(parquet), "train").texts == table.texts[:1]
    cells = pd.DataFrame({"tokens": ['["a", "b"]'], "tags": ['["B-X", "I-X"]']})  # lists as a CSV keeps them
    task = token_task(cells)
    assert task.label_names == ["B-X", "I-X"] and task.to_table(cells, "train").labels == [[0, 1]]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"tokens": ["a", "b"], "tags": ["O"]}, "train: row 1 has 2 tokens but 1 tags"),
        ({"tokens": "a b", "tags": ["O"]}, "train, row 1: 'tokens' must be a list of strings"),
        ({"tokens": ["a"], "tags": ["LOC"]}, "train, row 1: tag 'LOC' is not O"),
    ],
)
def test_token_task_names_the_bad_row(row, message):
    frame = pd.DataFrame([{"tokens": ["x"], "tags": ["B-X"]}, row])  # an entity: a tagger has one to learn
    with pytest.raises(PretuneError, match=message):
        token_task(frame).to_table(frame, "train")


