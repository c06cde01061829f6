"""plots/: figures from plain numbers; the reliability diagram's ECE by hand; SVG a page can inline."""

import numpy as np
import pandas as pd
import pytest

from pretune.plots import classes, compression, curves, study, svg_bytes


def test_expected_calibration_error_by_hand():
    # Bin 0.9-1.0: four rows at 0.95, three right (0.75): gap 0.2. Bin 0.6-0.7: four rows at 0.65,
    # all right: gap 0.35. ECE = 4/8 * 0.2 + 4/8 * 0.35.
    confidence = np.array([0.95] * 4 + [0.65] * 4)
    correct = np.array([1, 1, 1, 0, 1, 1, 1, 1], dtype=float)
    fig, ece = classes.reliability(confidence, correct)
    assert ece == pytest.approx(0.5 * 0.2 + 0.5 * 0.35)
    _, perfect = classes.reliability(np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    assert perfect == pytest.approx(0.0)
    svg_bytes(fig)


def test_figures_are_svg_with_their_text_as_text():
    labels = ["<b>bold</b> & co", "a label far too long to fit on an axis of its own"]
    svg = svg_bytes(classes.confusion_matrix([[5, 1], [2, 7]], labels)).decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<script" not in svg
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in svg  # escaped by matplotlib, kept as text
    assert "a label far too l…" in svg and labels[1] not in svg  # cut on the axis; the table has it whole


def test_every_figure_draws_from_plain_numbers():
    history = [{"split": "train", "step": s, "loss": 1 / s, "lr": 1e-3 * (1 - s / 10), "epoch": s / 5}
               for s in range(1, 10)]
    history += [{"split": "validation", "step": s, "loss": 1 / s, "accuracy": s / 10, "epoch": s / 5}
                for s in (5, 5, 10)]  # an epoch end on an eval step logs it twice
    drawn = curves.history_figures(history, 5, 5, ["accuracy"])
    assert set(drawn) == {"loss", "validation", "lr"}
    assert curves._by_step([r for r in history if r["split"] == "validation"])[0]["step"] == 5
    assert len(curves._by_step([r for r in history if r["split"] == "validation"])) == 2
    done = pd.DataFrame({"number": [0, 1, 2], "accuracy": [0.5, 0.7, 0.6], "lr": [1e-3, 3e-3, 1e-2],
                         "strategy.name": ["full", "llrd", "full"], "train_seconds": [3.0, 2.0, 1.0]})
    figures = [*drawn.values(), curves.overlaid_curves({"a": history, "b": history}, "accuracy")["overlaid"],
               study.history(done, "accuracy", True), study.parallel_coordinates(done, ["lr", "strategy.name"],
                                                                                  "accuracy"),
               study.param_vs_metric(done, ["lr", "strategy.name"], "accuracy", {"lr"}),
               study.importances({"lr": 0.7, "strategy.name": 0.3}),
               study.pareto(done, ["accuracy", "train_seconds"], {1, 2}),
               classes.label_bars({"x": 0.5, "y": 0.9}, "F1", "F1", {"x": 0.3}, "threshold"),
               classes.predicted_vs_true(np.arange(5.0), np.arange(5.0) + 0.5),
               compression.accuracy_latency([{"name": "run", "accuracy": 0.9, "latency_ms_p50": 10.0, "size_mb": 90},
                                             {"name": "int8", "accuracy": 0.88, "latency_ms_p50": 0.5, "size_mb": 23}],
                                            "accuracy", {"run", "int8"}, "int8")]
    for fig in figures:
        assert len(svg_bytes(fig)) > 2_000


def test_variant_names_close_together_do_not_overprint():
    """Four variants within a hair of each other: each name where no other name is."""
    from pretune.plots import compression

    names = ["run", "quantize", "distill", "distill/quantize", "distill/trim-vocab/quantize"]
    rows = [{"name": n, "accuracy": 0.80 + 0.001 * i, "latency_ms_p50": 5.0 + 0.01 * i, "size_mb": 20}
            for i, n in enumerate(names)]
    fig = compression.accuracy_latency(rows, "accuracy", set(names[:2]), "quantize")
    renderer = fig.canvas.get_renderer()
    labels = [t for t in fig.axes[0].texts if t.get_text() in names]
    assert sorted(t.get_text() for t in labels) == sorted(names)
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
