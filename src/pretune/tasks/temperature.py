"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): one scalar T
fitted on validation logits so that softmax(logits / T) states probabilities a user can trust.
The arg max, and so accuracy, does not move; only the confidence does.

The expected calibration error uses the ten equal-width confidence bins of the report's reliability
diagram (plots/classes.py), so the figure in metrics.json and the one on the page agree."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

# log T is searched in [-3, 3]: T from 0.05 to 20 covers every fit seen (an over-confident
# fine-tune lands near 1.5-3); a bound keeps a degenerate validation split from running off.
LOG_T_BOUNDS = (-3.0, 3.0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises validation NLL (bounded scalar search over log T)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    found = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                            bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return float(np.exp(found.x))


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = 10):
    """(accuracy, mean confidence, share of rows) in each of `bins` equal-width confidence bins."""
    confidence, correct = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    acc, conf, share = np.zeros(bins), np.zeros(bins), np.zeros(bins)
    for b in range(bins):
        inside = which == b
        share[b] = inside.mean() if len(confidence) else 0
        if inside.any():
            acc[b], conf[b] = correct[inside].mean(), confidence[inside].mean()
    return acc, conf, share


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the row-weighted mean |accuracy - confidence| over the bins (Guo et al. 2017)."""
    acc, conf, share = reliability_bins(confidence, correct, bins)
    return float(np.sum(share * np.abs(acc - conf)))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of class probabilities (n, k) against integer labels."""
    probs = np.asarray(probs, dtype=np.float64)
    return calibration_error(probs.max(-1), probs.argmax(-1) == np.asarray(labels), bins)
