import numpy as np
import pytest

from pretune.evaluate import is_better
from pretune.tasks.regression import regression_metrics
from pretune.tasks.sequence import classification_metrics


def test_classification_metrics_match_hand_computation():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class a: P 1, R 2/3; b: P 1/2, R 1/2; c: P 1/2, R 1
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["f1_micro"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3),
                                   "f1": pytest.approx(0.8), "support": 3}
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_a_class_never_predicted_counts_as_zero_not_an_error():
    m = classification_metrics(np.array([0, 1, 1]), np.array([1, 1, 1]), ["x", "y"])
    assert m["per_class"]["x"]["precision"] == 0.0 and m["recall_macro"] == 0.5


def test_regression_metrics_and_dispatch():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert m["mse"] == pytest.approx(1 / 3) and m["mae"] == pytest.approx(1 / 3)
    assert m["r2"] == pytest.approx(1 - 1 / 2) and m["rmse"] == pytest.approx((1 / 3) ** 0.5)
    assert m["pearson"] == pytest.approx(np.corrcoef([1, 2, 3], [1, 2, 4])[0, 1]) and m["spearman"] == 1.0


def test_is_better_knows_direction():
    assert is_better("loss", 0.5, 0.6) and not is_better("loss", 0.6, 0.5)
    assert is_better("accuracy", 0.9, 0.8) and not is_better("accuracy", 0.805, 0.8, min_delta=0.01)
    assert is_better("f1_macro", 0.1, 0.2, mode="min")
