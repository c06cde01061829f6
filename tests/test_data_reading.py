"""Real-world data files read as their authors meant them: byte-order marks, missing labels,
labels spelled as numbers or mixing JSON types, too many classes, CoNLL separators, and the
encoding of held-out files (issue 31, items 5 and 8)."""

from __future__ import annotations

import bz2
import codecs
import gzip
import json

import pandas as pd
import pytest

from pretune.data.prepare import prepare
from pretune.data.tables import detect_encoding, read_table
from pretune.errors import PretuneError
from pretune.recipe import DataConfig
from pretune.tasks import create_task

ROWS = [{"text": f"review number {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]


def jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def csv(rows) -> str:
    return "text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)


def write(path, text: str, bom: bytes = codecs.BOM_UTF8, encoding: str = "utf-8") -> None:
    data = bom + text.encode(encoding)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    elif path.suffix == ".bz2":
        data = bz2.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv", "d.tsv", "d.jsonl.gz", "d.csv.bz2"])
def test_a_utf8_byte_order_mark_is_dropped_in_every_table_format(tmp_path, name):
    text = csv(ROWS).replace(",", "\t") if ".tsv" in name else (csv(ROWS) if ".csv" in name else jsonl(ROWS))
    write(tmp_path / name, text)
    frame = read_table(tmp_path / name)
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].iloc[0] == "review number 0"


@pytest.mark.parametrize("bom, encoding", [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_a_utf16_byte_order_mark_names_the_encoding(tmp_path, bom, encoding):
    write(tmp_path / "d.jsonl", jsonl(ROWS), bom, encoding)
    assert read_table(tmp_path / "d.jsonl")["label"].tolist()[:2] == ["neg", "pos"]


@pytest.mark.parametrize("name", ["d.conll", "d.conll.gz"])
def test_conll_with_a_byte_order_mark_compressed_or_not(tmp_path, name):
    write(tmp_path / name, "Paris\tB-LOC\nis\tO\n\nAnna\tB-PER\n")
    frame = read_table(tmp_path / name)
    assert frame["tokens"].tolist() == [["Paris", "is"], ["Anna"]]


def test_conll_refuses_a_space_line_in_a_tab_file(tmp_path):
    (tmp_path / "d.conll").write_text("Paris\tB-LOC\nNew York B-LOC\n")
    with pytest.raises(PretuneError, match="line 2: columns separated by spaces where line 1 uses tabs"):
        read_table(tmp_path / "d.conll")


def prepared(tmp_path, text: str, name: str = "d.jsonl", **data):
    (tmp_path / name).write_text(text)
    cfg = DataConfig(source=str(tmp_path / name), **data)
    return prepare(cfg, create_task(cfg))


def test_missing_labels_are_refused_naming_count_and_first_row(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[3]["label"], rows[7]["label"] = None, ""
    with pytest.raises(PretuneError, match=r"2 row\(s\) have no label in 'label', first at row 3; .*drop_missing"):
        prepared(tmp_path, jsonl(rows))


def test_missing_labels_are_dropped_with_a_count(tmp_path):
    rows = [dict(r) for r in ROWS]
    rows[3]["label"] = None
    rows[5]["text"] = None
    data = prepared(tmp_path, jsonl(rows), drop_missing=True)
    assert sum(len(t) for t in data.splits.values()) == 18
    assert any("dropped 1 row(s) with no label in 'label'" in n for n in data.notices)
    assert any("dropped 1 row(s) with no text in 'text'" in n for n in data.notices)


def test_empty_label_cell_in_a_csv_with_ints_is_refused_before_the_split(tmp_path):
    text = "text,label\n" + "".join(f"t{i},{i % 2 if i != 4 else ''}\n" for i in range(20))
    with pytest.raises(PretuneError, match=r"1 row\(s\) have no label in 'label', first at row 4"):
        prepared(tmp_path, text, "d.csv")


def test_labels_keep_their_spelling(tmp_path):
    rows = [{"text": f"t{i}", "label": "007" if i % 2 else "008"} for i in range(20)]
    for name, text in (("d.jsonl", jsonl(rows)), ("d.csv", csv(rows))):
        assert prepared(tmp_path, text, name).label_names == ["007", "008"]


def test_labels_mixing_json_types_become_text_with_a_notice(tmp_path):
    values = [1, "1", "one", 1.0, True, "one", 1, "true"]
    rows = [{"text": f"t{i}", "label": values[i % len(values)]} for i in range(40)]
    data = prepared(tmp_path, jsonl(rows))
    assert data.label_names == ["1", "one", "true"]
    assert any("mixes boolean and number and string labels; all are read as text" in n for n in data.notices)


def test_numeric_labels_with_a_gap_are_not_floats(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(20)]
    rows[2]["label"] = None
    assert prepared(tmp_path, jsonl(rows), drop_missing=True).label_names == ["0", "1"]


def test_too_many_classes_for_the_rows_are_refused(tmp_path):
    rows = [{"text": f"t{i}", "label": f"id{i // 2}"} for i in range(400)]
    with pytest.raises(PretuneError, match=r"200 distinct labels in 400 rows \(2.0 rows per class\).*"
                                           r"is 'label' the label column\?"):
        prepared(tmp_path, jsonl(rows))
    few_shot = [{"text": f"t{i}", "label": f"intent{i % 77}"} for i in range(77 * 4)]  # 4 of each
    assert len(prepared(tmp_path, jsonl(few_shot)).label_names) == 77


def test_drop_duplicates_and_leaked(tmp_path):
    train = [{"text": t, "label": lab} for t, lab in
             [("A fine film.", "pos"), ("a fine  film", "pos"), ("dull", "neg"), ("warm", "pos"),
              ("cold", "neg"), ("Seen in test!", "neg"), ("kind", "pos"), ("grim", "neg")]]
    test = [{"text": "seen in test", "label": "neg"}, {"text": "other", "label": "pos"}]
    for name, rows in (("train.jsonl", train), ("test.jsonl", test), ("val.jsonl", test[1:] * 2)):
        (tmp_path / name).write_text(jsonl(rows))
    cfg = dict(train=str(tmp_path / "train.jsonl"), test=str(tmp_path / "test.jsonl"),
               validation=str(tmp_path / "val.jsonl"))
    dropping = DataConfig(**cfg, drop_duplicates=True, drop_leaked=True)
    data = prepare(dropping, create_task(dropping))
    assert data.splits["train"].texts == ["A fine film.", "dull", "warm", "cold", "kind", "grim"]
    assert "train: dropped 1 duplicate text(s) (data.drop_duplicates)" in data.notices
    assert "train: dropped 1 text(s) also in validation or test (data.drop_leaked)" in data.notices
    assert len(prepare(DataConfig(**cfg), create_task(DataConfig(**cfg))).splits["train"]) == 8


def test_held_out_encoding_is_the_files_own(tmp_path):
    (tmp_path / "u.jsonl").write_text(jsonl([{"text": "café crème"}]), encoding="utf-8")
    (tmp_path / "l.jsonl").write_bytes(jsonl([{"text": "café crème"}]).encode("cp1252"))
    assert detect_encoding(tmp_path / "u.jsonl") == ("utf-8", None)
    encoding, notice = detect_encoding(tmp_path / "l.jsonl")
    assert encoding == "cp1252" and "l.jsonl is not UTF-8; read as cp1252" in notice
    frame = read_table(tmp_path / "l.jsonl", encoding)
    assert frame["text"].tolist() == ["café crème"]


def test_a_data_frame_given_in_python_is_checked_the_same_way():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [1, "1", "one", 2.0] * 5})
    data = prepare(DataConfig(), create_task(DataConfig()), frames=frame)
    assert data.label_names == ["1", "2", "one"]


def test_predict_reads_a_held_out_file_in_its_own_encoding(tmp_path, tiny_model_dir, capsys):
    """A run trained from a latin-1 file reads a UTF-8 file as UTF-8 (it read it as latin-1,
    mangling 6 of 20 tweets), and --encoding still chooses."""
    import pretune
    from pretune.cli.predict_cmd import predict

    rows = [{"text": f"caf\u00e9 cr\u00e8me {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    (tmp_path / "train.csv").write_bytes(csv(rows).encode("latin-1"))
    run = pretune.fit({"seed": 1, "model": {"source": str(tiny_model_dir)},
                       "data": {"source": str(tmp_path / "train.csv"), "encoding": "latin-1", "max_length": 16},
                       "train": {"max_steps": 1, "batch_size": 8, "checkpoint_every_steps": None}},
                      tmp_path / "run", quiet=True, report=False, test=False)
    (tmp_path / "new.jsonl").write_text(jsonl([{"text": "na\u00efve r\u00e9sum\u00e9"}]), encoding="utf-8")
    capsys.readouterr()
    predict(run.path, [], tmp_path / "new.jsonl", [], None, None)
    assert json.loads(capsys.readouterr().out)["text"] == "na\u00efve r\u00e9sum\u00e9"
    predict(run.path, [], tmp_path / "new.jsonl", [], None, "latin-1")
    assert json.loads(capsys.readouterr().out)["text"] == "na\u00efve r\u00e9sum\u00e9".encode().decode("latin-1")
