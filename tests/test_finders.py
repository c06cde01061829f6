"""The finders on the tiny random BERT: the lr range test and the batch-size finder."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pretune.api import as_recipe
from pretune.errors import PretuneError
from pretune.finders import find_batch_size, find_lr
from pretune.finders.batch_size import doubling_search, plan_accumulation
from pretune.finders.lr_find import BETA, DIVERGE, suggest
from pretune.train.setup import FitParts
from tests.conftest import tiny_recipe


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The tiny model's steps take milliseconds; on a busy 2-core machine two intra-op threads
    # waiting on each other made them up to 10x slower (measured). Only test time is at stake.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def recipe(model_dir, data, strategy=None, **train):
    raw = tiny_recipe(model_dir, data, **train)
    if strategy:
        raw["strategy"] = strategy
    return as_recipe(raw)


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, sentiment_csv):
    """A range low enough never to diverge, under llrd, with the optimizer kept for inspection."""
    made = []
    original = FitParts.optimizer_factory

    def keeping(self):
        make = original(self)

        def factory(model):
            optimizer = make(model)
            made.append((optimizer, [g["lr"] for g in optimizer.param_groups]))
            return optimizer
        return factory

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(FitParts, "optimizer_factory", keeping)
        result = find_lr(recipe(tiny_model_dir, sentiment_csv, {"name": "llrd", "decay": 0.5}),
                         steps=30, min_lr=1e-6, max_lr=1e-3)
    return result, made[0]


def test_lrs_grow_exponentially_between_the_bounds(sweep):
    result, _ = sweep
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 30
    assert not result.stopped_early
    assert result.lrs[0] == pytest.approx(1e-6) and result.lrs[-1] == pytest.approx(1e-3)
    ratios = np.diff(np.log(result.lrs))
    assert np.allclose(ratios, math.log(1e3) / 29)


def test_every_group_keeps_its_ratio_to_the_base_rate(sweep):
    result, (optimizer, initial) = sweep
    base = 5e-3  # tiny_recipe's train.optimizer.lr
    assert len({round(lr / base, 6) for lr in initial}) > 1  # llrd: really several rates
    for group, start in zip(optimizer.param_groups, initial, strict=True):
        assert group["lr"] == pytest.approx(result.lrs[-1] * start / base)


def test_smoothing_is_a_bias_corrected_moving_average(sweep):
    result, _ = sweep
    average = 0.0
    for i, (loss, smoothed) in enumerate(zip(result.losses, result.smoothed, strict=True)):
        average = BETA * average + (1 - BETA) * loss
        assert smoothed == pytest.approx(average / (1 - BETA ** (i + 1)))
    assert result.smoothed[0] == pytest.approx(result.losses[0])
    assert all(math.isfinite(v) and v > 0 for v in result.losses)


def test_suggestion_lies_in_the_range(sweep):
    result, _ = sweep
    assert 1e-6 <= result.suggested_lr <= 1e-3
    assert result.rule and result.plot is None


def test_a_huge_max_lr_stops_early_below_the_divergence(tiny_model_dir, sentiment_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = find_lr(recipe(tiny_model_dir, sentiment_csv, optimizer={"name": "sgd", "lr": 0.1}),
                     steps=60, min_lr=1e-4, max_lr=10)
    assert list(tmp_path.iterdir()) == []  # no out: nothing written anywhere
    assert result.stopped_early and len(result.lrs) < 60
    last, before = result.smoothed[-1], result.smoothed[:-1]
    assert not math.isfinite(result.losses[-1]) or last > DIVERGE * min(before)
    assert all(s <= DIVERGE * min(before[: i + 1]) for i, s in enumerate(before))  # it did not stop late
    assert 1e-4 <= result.suggested_lr < result.lrs[-1]
    assert result.rule


def test_steepest_descent_rule_on_a_known_curve():
    lrs = np.logspace(-6, 0, 121)
    # Flat, then a drop centred at 1e-3, then a blow-up past 1e-1.
    loss = 1 - 0.5 / (1 + np.exp(-(np.log10(lrs) + 3) * 4)) + np.where(lrs > 0.1, (np.log10(lrs) + 1) * 20, 0)
    suggested, alternative, rule = suggest(lrs.tolist(), loss.tolist())
    assert suggested == pytest.approx(1e-3, rel=0.15)
    assert alternative == pytest.approx(lrs[int(np.argmin(loss))] / 10)
    assert rule.startswith("steepest descent")
    flat = suggest(lrs.tolist(), np.linspace(1, 2, 121).tolist())  # never falls: fallback, kept in range
    assert flat[0] == pytest.approx(1e-6) and "no falling stretch" in flat[2]


def test_bad_ranges_are_clear_errors(tiny_model_dir, sentiment_csv):
    r = recipe(tiny_model_dir, sentiment_csv)
    with pytest.raises(PretuneError, match="min-lr"):
        find_lr(r, min_lr=1e-2, max_lr=1e-3)
    with pytest.raises(PretuneError, match="steps"):
        find_lr(r, steps=3)


def pretune_cli(*args):
    return subprocess.run([sys.executable, "-m", "pretune", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_lr_find_cli_prints_the_suggestion_and_writes_files(tiny_model_dir, sentiment_csv, tmp_path):
    out = tmp_path / "lr"
    proc = pretune_cli("lr-find", "--set", f"model.source={tiny_model_dir}", "--set", f"data.source={sentiment_csv}",
                       "--set", "data.max_length=32", "--set", "train.batch_size=16", "--steps", 20,
                       "--min-lr", 1e-5, "--max-lr", 1e-2, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "suggested lr: " in proc.stdout and "rule: " in proc.stdout and "upper bound" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.json", "lr_find.png"]  # no temp files left
    saved = json.loads((out / "lr_find.json").read_text())
    assert len(saved["lrs"]) == 20 and f"{saved['suggested_lr']:.2e}" in proc.stdout


def test_cli_bad_input_exits_2(tiny_model_dir, sentiment_csv):
    proc = pretune_cli("lr-find", "--set", f"model.source={tiny_model_dir}", "--min-lr", 1, "--max-lr", 0.1)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = "pretune: error: the range needs 0 < --min-lr < --max-lr, got 1 and 0.1"
    assert proc.stderr.strip().splitlines() == [error]


@pytest.fixture(scope="module")
def estimate(tiny_model_dir, sentiment_csv):
    return find_batch_size(recipe(tiny_model_dir, sentiment_csv))


def test_estimated_bytes_grow_with_batch_size(estimate):
    d = estimate.details
    assert estimate.method == "memory-estimate"
    assert d["measured_activation_bytes"][8] > d["measured_activation_bytes"][2] > 0
    sizes = sorted(d["estimated_bytes"])
    assert sizes == [2**i for i in range(len(sizes))]
    assert all(d["estimated_bytes"][a] < d["estimated_bytes"][b] for a, b in zip(sizes, sizes[1:], strict=False))
    # The default budget is roomy for this model: the cap (the 192 training rows) binds.
    assert estimate.batch_size == 128 and d["cap"] == 192 and estimate.gradient_accumulation_steps == 1


def test_chosen_batch_fits_the_budget_and_double_would_not(estimate, tiny_model_dir, sentiment_csv):
    d = estimate.details

    def cost(b):
        return d["weight_bytes"] + d["gradient_bytes"] + d["optimizer_state_bytes"] + \
            d["activation_bytes_fixed"] + d["activation_bytes_per_sample"] * b

    budget = int((cost(32) + cost(64)) / 2)
    found = find_batch_size(recipe(tiny_model_dir, sentiment_csv), effective=96, budget_bytes=budget)
    assert found.details["largest_batch"] == 32
    assert found.details["estimated_bytes"][32] <= budget < found.details["estimated_bytes"][64]
    assert (found.batch_size, found.gradient_accumulation_steps, found.effective_batch_size) == (32, 3, 96)
    assert found.recipe_lines() == ["train.batch_size=32", "train.gradient_accumulation_steps=3"]


def test_optimizer_state_enters_the_estimate(estimate, tiny_model_dir, sentiment_csv):
    plain = find_batch_size(recipe(tiny_model_dir, sentiment_csv,
                                   optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.0}))
    assert plain.details["optimizer_state_bytes"] == 0
    assert estimate.details["optimizer_state_bytes"] == 2 * estimate.details["gradient_bytes"]  # adamw


def test_a_tiny_budget_is_a_clear_error(tiny_model_dir, sentiment_csv):
    with pytest.raises(PretuneError, match="even batch size 1 needs about .* GiB budget"):
        find_batch_size(recipe(tiny_model_dir, sentiment_csv), budget_bytes=1000)
    with pytest.raises(PretuneError, match="effective"):
        find_batch_size(recipe(tiny_model_dir, sentiment_csv), effective=0)


def test_accumulation_plan_wastes_less_than_one_step():
    assert plan_accumulation(32, 96) == (32, 3)
    assert plan_accumulation(32, 100) == (25, 4)
    assert plan_accumulation(128, 96) == (96, 1)
    assert plan_accumulation(32, None) == (32, 1)
    for largest in (1, 3, 32):
        for effective in range(1, 200):
            batch, accum = plan_accumulation(largest, effective)
            assert batch <= largest and 0 <= batch * accum - effective < accum


def test_doubling_search_stops_at_the_first_failure_and_the_cap():
    calls = []

    def fits(size):  # as the CUDA probe would see a device with room for 24
        calls.append(size)
        return size <= 24

    assert doubling_search(fits, 4096) == (16, [1, 2, 4, 8, 16, 32])
    assert doubling_search(lambda size: True, 100) == (64, [1, 2, 4, 8, 16, 32, 64])
    assert doubling_search(lambda size: False, 100) == (0, [1])


def test_batch_find_cli_json(tiny_model_dir, sentiment_csv):
    proc = pretune_cli("batch-find", "--set", f"model.source={tiny_model_dir}", "--set", f"data.source={sentiment_csv}",
                       "--set", "data.max_length=32", "--effective", 100, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["method"] == "memory-estimate"
    assert (result["batch_size"], result["gradient_accumulation_steps"]) == (100, 1)
