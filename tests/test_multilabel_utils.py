"""Multi-label's pure parts: parsing label cells, tuned thresholds, metrics, BCE weights."""

import json

import numpy as np
import pandas as pd
import pytest

from pretune import PretuneError
from pretune.tasks.multilabel_utils import (
    binarize,
    multilabel_metrics,
    parse_label_lists,
    positive_weights,
    tune_thresholds,
)


def test_parse_json_python_and_list_cells():
    cells = ['["sports", "news"]', "['a', 'b']", ["x"], [], "[]", np.array(["p", "q"]), ("t", "t")]
    assert parse_label_lists(pd.Series(cells)) == [["sports", "news"], ["a", "b"], ["x"], [], [], ["p", "q"], ["t"]]


def test_parse_separator_joined_strings_and_jsonl_round_trip(tmp_path):
    assert parse_label_lists(pd.Series(["a|b", " c | ", ""]), separator="|") == [["a", "b"], ["c"], []]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps({"text": "t", "labels": labels}) for labels in (["a"], [], ["b", "a"])))
    assert parse_label_lists(pd.read_json(path, lines=True)["labels"]) == [["a"], [], ["b", "a"]]


@pytest.mark.parametrize(
    "cells, message",
    [
        (['["a"]', None], "row 1: the label cell is empty"),
        ([["a"], np.nan], "row 1: the label cell is empty"),
        (["a|b"], "row 0: label cell 'a\\|b' is not a list .* name the separator"),
        (['{"a": 1}'], "row 0: label cell .* is not a list"),
        ([["a", None]], "row 0: None is not a label name"),
        ([["a", ""]], "row 0: '' is not a label name"),
        ([3.5], "row 0: expected a list of labels"),
    ],
)
def test_parse_errors_name_the_row(cells, message):
    with pytest.raises(PretuneError, match=message):
        parse_label_lists(pd.Series(cells, dtype=object))


def test_binarize_refuses_unknown_labels():
    assert binarize([["b"], [], ["a", "b"]], ["a", "b"]).tolist() == [[0, 1], [0, 0], [1, 1]]
    with pytest.raises(PretuneError, match="row 1: label 'c' was not seen in training; known: a, b"):
        binarize([["a"], ["c"]], ["a", "b"])


def test_thresholds_tuned_on_a_hand_made_validation_set():
    # Rows' probabilities per label; 1 marks a positive row.
    columns = [
        ([0.25, 0.30, 0.05, 0.10, 0.15], [1, 1, 0, 0, 0]),  # low scores: F1 = 1 for t in (0.15, 0.25]
        ([0.90, 0.95, 0.70, 0.80, 0.20], [1, 1, 0, 0, 0]),  # high negatives: t in (0.80, 0.90]
        ([0.90, 0.10, 0.60, 0.20, 0.70], [0, 0, 0, 0, 0]),  # no positive in validation: keeps 0.5
        ([0.90, 0.95, 0.10, 0.05, 0.02], [1, 1, 0, 0, 0]),  # separable anywhere: the tie goes to 0.5
        ([0.60, 0.40, 0.35, 0.45, 0.10], [1, 1, 1, 0, 0]),  # best F1 6/7 at t = 0.35 only
    ]
    probs = np.array([c[0] for c in columns]).T
    targets = np.array([c[1] for c in columns]).T
    assert tune_thresholds(probs, targets).tolist() == pytest.approx([0.25, 0.85, 0.5, 0.5, 0.35])
    custom = tune_thresholds(probs, targets, grid=[0.1, 0.3, 0.7])
    # Ties: label 0 between 0.1 and 0.3 (0.3 is closer to 0.5); labels 1 and 3 between 0.3 and 0.7
    # (equally close: the lower wins).
    assert custom.tolist() == pytest.approx([0.3, 0.3, 0.5, 0.3, 0.3])
    with pytest.raises(ValueError, match="must both be"):
        tune_thresholds(probs, targets[:, :2])


def test_multilabel_metrics_by_hand():
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    preds = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0]])
    m = multilabel_metrics(targets, preds, ["a", "b", "c"])
    # tp 3, fp 1, fn 2 over 12 cells, 3 of them wrong; rows 1 and 3 entirely right.
    assert m["precision_micro"] == pytest.approx(3 / 4) and m["recall_micro"] == pytest.approx(3 / 5)
    assert m["f1_micro"] == pytest.approx(6 / 9)
    assert m["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["subset_accuracy"] == 0.5 and m["hamming_loss"] == 0.25
    assert m["per_label"]["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert m["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert json.dumps(m)  # plain floats and ints


def test_positive_weights_are_negatives_over_positives():
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    weights = positive_weights(targets)
    assert weights.dtype == np.float32
    assert weights.tolist() == pytest.approx([1 / 3, 3.0, 1.0])
