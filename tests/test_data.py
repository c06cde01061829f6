import numpy as np
import pandas as pd
import pytest

from pretune import PretuneError
from pretune.data import collate, encode, eval_batches, train_batches
from pretune.data import prepare as prepare_for
from pretune.data.bundled import load_bundled
from pretune.recipe import DataConfig
from pretune.tasks import create_task
from tests.conftest import sentiment_frame


def prepare(cfg: DataConfig):
    return prepare_for(cfg, create_task(cfg))


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_reads_each_table_format(tmp_path, suffix):
    frame = sentiment_frame(60)
    path = tmp_path / f"d.{suffix}"
    {"csv": lambda: frame.to_csv(path, index=False),
     "jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     "parquet": lambda: frame.to_parquet(path)}[suffix]()
    data = prepare(DataConfig(source=str(path)))
    assert data.label_names == ["neg", "pos"]
    assert sum(len(t) for t in data.splits.values()) == 60
    # Stratified: both labels in every split.
    assert all(set(t.labels) == {0, 1} for t in data.splits.values())


def test_split_is_seeded_and_disjoint(tmp_path):
    path = tmp_path / "d.csv"
    sentiment_frame(100).assign(text=lambda f: f.text + [f" #{i}" for i in range(100)]).to_csv(path, index=False)
    a = prepare(DataConfig(source=str(path)))
    b = prepare(DataConfig(source=str(path)))
    assert a.splits["test"].texts == b.splits["test"].texts
    c = prepare(DataConfig(source=str(path), split_seed=5))
    assert c.splits["test"].texts != a.splits["test"].texts
    parts = [set(t.texts) for t in a.splits.values()]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


def test_integer_labels_and_text_pairs_and_split_files(tmp_path):
    frame = pd.DataFrame({"q": [f"q{i}" for i in range(40)], "a": [f"a{i}" for i in range(40)],
                          "y": [i % 3 for i in range(40)]})
    frame.to_csv(tmp_path / "train.csv", index=False)
    frame.head(9).to_csv(tmp_path / "test.csv", index=False)
    cfg = DataConfig(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"),
                     text_column="q", text_pair_column="a", label_column="y")
    data = prepare(cfg)
    assert data.label_names == ["0", "1", "2"]
    assert len(data.splits["test"]) == 9  # from its file, not carved
    assert data.splits["train"].pairs[0].startswith("a")


def test_regression_labels_are_floats(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame({"text": [f"t{i}" for i in range(30)], "label": np.linspace(0, 1, 30)}).to_csv(path)
    data = prepare(DataConfig(source=str(path), task="regression"))
    assert data.label_names is None and data.num_labels == 1
    assert data.splits["train"].labels.dtype == np.float32


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"body": ["a", "b"], "label": [0, 1]}), "no column 'text'; the columns are body, label"),
        (pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": [0, 1, None, 1, 0, 1, 0, 1, 0, 1]}),
         "1 row\\(s\\) have no label"),
        (pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": ["a"] * 10}), "only one label"),
    ],
)
def test_bad_tables_are_one_clear_error(tmp_path, frame, message):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(PretuneError, match=message):
        prepare(DataConfig(source=str(path)))


def test_empty_missing_unknown_format_and_unseen_label(tmp_path):
    (tmp_path / "empty.csv").write_text("text,label\n")
    with pytest.raises(PretuneError, match="no rows"):
        prepare(DataConfig(source=str(tmp_path / "empty.csv")))
    with pytest.raises(PretuneError, match="not found"):
        prepare(DataConfig(source=str(tmp_path / "none.csv")))
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(PretuneError, match="cannot read x.xlsx"):
        prepare(DataConfig(source=str(tmp_path / "x.xlsx")))
    with pytest.raises(PretuneError, match="unknown data source 'imdb'"):
        prepare(DataConfig(source="imdb"))
    sentiment_frame(40).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": ["x", "y"], "label": ["pos", "meh"]}).to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(PretuneError, match="'meh' never seen in training"):
        prepare(DataConfig(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv")))


def test_hub_dataset_needs_its_extra_or_network():
    with pytest.raises(PretuneError, match="pretune\\[hub\\]|Hugging Face Hub"):
        prepare(DataConfig(source="hf:rotten_tomatoes"))


def test_bundled_sets_have_fixed_disjoint_splits():
    rt = load_bundled("rotten-tomatoes")
    sizes = {k: len(v) for k, v in rt.items()}
    assert sum(sizes.values()) > 12_000 and set(rt["train"].label) == {"fresh", "rotten"}
    assert not set(rt["train"].text) & set(rt["test"].text)
    assert load_bundled("rotten-tomatoes")["test"].text.tolist() == rt["test"].text.tolist()
    bbc = load_bundled("bbc-news")
    assert set(bbc["train"].label) == {"business", "entertainment", "politics", "sports", "tech"}
    assert 2000 < sum(len(v) for v in bbc.values()) <= 2225


def test_train_batches_cover_every_row_once_and_group_by_length():
    lengths = np.random.default_rng(0).integers(3, 60, size=1000)
    batches = train_batches(lengths, 16, seed=1, epoch=0, group_by_length=True)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    assert batches == train_batches(lengths, 16, seed=1, epoch=0, group_by_length=True)
    assert batches != train_batches(lengths, 16, seed=1, epoch=1, group_by_length=True)
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in train_batches(lengths, 16, 1, 0, False)])
    assert spread < random_spread / 3  # grouping cuts padding
    # Two ranks see disjoint halves of the same order.
    r0 = train_batches(lengths, 16, 1, 0, True, rank=0, world_size=2)
    r1 = train_batches(lengths, 16, 1, 0, True, rank=1, world_size=2)
    assert len(r0) == len(r1) and not {i for b in r0 for i in b} & {i for b in r1 for i in b}


def test_encode_once_and_pad_per_batch(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    data = prepare(DataConfig(source="rotten-tomatoes", max_train_samples=50))
    split = encode(data.splits["train"], tok, max_length=16)
    assert split.lengths.max() <= 16
    batch = collate(split, [0, 1, 2], tok.pad_token_id)
    width = split.lengths[[0, 1, 2]].max()
    assert batch["input_ids"].shape == (3, width)
    assert batch["attention_mask"].sum().item() == split.lengths[[0, 1, 2]].sum()
    order = [i for b in eval_batches(split.lengths, 8) for i in b]
    assert sorted(order) == list(range(50))
