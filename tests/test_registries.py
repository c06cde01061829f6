"""Contract tests over every registry entry: optimizers, schedules, losses."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pretune import PretuneError, Recipe
from pretune.recipe import DataConfig, LossConfig, OptimizerConfig, ScheduleConfig
from pretune.tasks import create_task
from pretune.train import losses, optimizers, schedules
from pretune.train.losses import create_loss
from pretune.train.optimizers import create_optimizer, param_groups
from pretune.train.schedules import create_scheduler, lr_multiplier


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(4, 8)
        self.LayerNorm = nn.LayerNorm(8)
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        return self.classifier(self.LayerNorm(torch.relu(self.dense(x))))


def test_weight_decay_skips_biases_and_norms():
    groups = param_groups(TinyNet().named_parameters(), lr=0.1, weight_decay=0.01)
    decayed, plain = groups
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decayed["params"])  # dense.weight, classifier.weight
    assert len(plain["params"]) == 4  # two biases, LayerNorm weight and bias


@pytest.mark.parametrize("name", optimizers.available())
def test_every_optimizer_steps_and_lowers_the_loss(name):
    torch.manual_seed(0)
    net = TinyNet()
    opt = create_optimizer(param_groups(net.named_parameters(), 0.01, 0.01),
                           OptimizerConfig(name=name, lr=0.01))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    first = nn.functional.cross_entropy(net(x), y)
    for _ in range(20):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < first.item()


def test_sgd_options_reach_torch():
    opt = create_optimizer(param_groups(TinyNet().named_parameters(), 0.1, 0.0),
                           OptimizerConfig(name="sgd", momentum=0.8, nesterov=True))
    assert opt.defaults["momentum"] == 0.8 and opt.defaults["nesterov"] is True


@pytest.mark.parametrize("name", schedules.available())
def test_every_schedule_warms_up_then_stays_in_range(name):
    cfg = ScheduleConfig(name=name, warmup_steps=10, milestones=[30, 60], step_size=20)
    mult = lr_multiplier(cfg, total_steps=100)
    values = [mult(t) for t in range(100)]
    assert values[0] < values[9] <= 1.0 + 1e-9  # a rise over the warm-up steps
    if not getattr(schedules.get(name), "whole_cycle", False):
        assert values[9] == pytest.approx(10 / 11)  # linear warm-up from 0
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in values)
    assert values[10] == pytest.approx(1.0)  # the peak, where the decay starts
    assert values[99] < values[10] or name == "constant"
    # A pure function of the step: a resumed scheduler lands on the same rate.
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = create_scheduler(opt, cfg, 100)
    for _ in range(37):
        opt.step()
        sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(mult(37))


def test_schedule_formulas():
    T = 100
    poly = lr_multiplier(ScheduleConfig(name="polynomial", warmup_ratio=0, gamma=2.0), T)
    assert poly(50) == pytest.approx((1 - 50 / T) ** 2)
    cos = lr_multiplier(ScheduleConfig(name="cosine", warmup_ratio=0, min_lr_ratio=0.1), T)
    assert cos(50) == pytest.approx(0.1 + 0.9 * 0.5) and cos(100) == pytest.approx(0.1)
    step = lr_multiplier(ScheduleConfig(name="step", warmup_ratio=0, step_size=30, gamma=0.1), T)
    assert step(29) == 1.0 and step(30) == pytest.approx(0.1) and step(60) == pytest.approx(0.01)
    multi = lr_multiplier(ScheduleConfig(name="multistep", warmup_ratio=0, milestones=[10, 50], gamma=0.5), T)
    assert [multi(t) for t in (9, 10, 49, 50)] == [1.0, 0.5, 0.5, 0.25]
    expo = lr_multiplier(ScheduleConfig(name="exponential", warmup_ratio=0, step_size=10, gamma=0.5), T)
    assert expo(20) == pytest.approx(0.25)
    stlr = lr_multiplier(ScheduleConfig(name="slanted_triangular", warmup_ratio=0.1), T)
    assert stlr(0) == pytest.approx(1 / 32) and stlr(10) == 1.0 and stlr(100) == pytest.approx(1 / 32)
    assert stlr(55) == pytest.approx((1 + 0.5 * 31) / 32)
    one = lr_multiplier(ScheduleConfig(name="one_cycle", warmup_ratio=0.3), T)
    assert one(0) == pytest.approx(1 / 25) and one(30) == 1.0 and one(100) == pytest.approx(1 / 250000)
    lin = lr_multiplier(ScheduleConfig(name="linear", warmup_ratio=0.1), T)
    assert lin(10) == 1.0 and lin(55) == pytest.approx(0.5) and math.isclose(lin(100), 0.0)


def test_schedules_in_epochs_become_steps_once():
    from pretune.train.schedules import in_steps

    cfg = ScheduleConfig(name="step", warmup_ratio=0, step_size_epochs=1.5, milestones_epochs=[1, 2.5], gamma=0.5)
    steps = in_steps(cfg, steps_per_epoch=6)
    assert (steps.step_size, steps.milestones) == (9, [6, 15])
    assert in_steps(cfg, steps_per_epoch=1).step_size == 2 and in_steps(ScheduleConfig(), 6) == ScheduleConfig()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = create_scheduler(opt, cfg, 100, steps_per_epoch=6)
    rates = []
    for _ in range(20):
        rates.append(sched.get_last_lr()[0])
        opt.step(), sched.step()
    assert rates[8] == 1.0 and rates[9] == 0.5 and rates[18] == 0.25  # every 1.5 epochs of 6 steps
    with pytest.raises(ValueError, match="steps per epoch"):
        create_scheduler(opt, cfg, 100)
    with pytest.raises(PretuneError, match="milestones_epochs"):
        Recipe.load(None, ["train.schedule.milestones_epochs=[0]"])


def loss_for(cfg: LossConfig, task: str = "classification", train_labels=None):
    """The fit's loss for `task` with three labels, weighted from `train_labels` if asked."""
    t = create_task(DataConfig(task=task))
    t.label_names = None if task == "regression" else ["a", "b", "c"]

    class Train:
        labels = train_labels

    return create_loss(cfg, t, Train)


@pytest.mark.parametrize("name", losses.available())
def test_every_loss_is_finite_and_trains(name):
    task = {"mse": "regression", "huber": "regression", "bce": "multi-label"}.get(name, "classification")
    torch.manual_seed(0)
    logits = torch.randn(16, 1 if task == "regression" else 3, requires_grad=True)
    labels = {"regression": torch.randn(16), "multi-label": torch.randint(0, 2, (16, 3)).float()}.get(
        task, torch.randint(0, 3, (16,)))
    train = np.array([0] * 8 + [1] * 4 + [2] * 4)
    loss_fn = loss_for(LossConfig(name=name), task, train)
    loss = loss_fn(logits, labels)
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


def test_focal_with_gamma_zero_is_cross_entropy_and_down_weights_easy_examples():
    logits, labels = torch.tensor([[4.0, 0.0], [0.2, 0.0]]), torch.tensor([0, 1])
    ce = loss_for(LossConfig(name="cross_entropy"))(logits, labels)
    focal0 = loss_for(LossConfig(name="focal", focal_gamma=0))(logits, labels)
    assert focal0.item() == pytest.approx(ce.item(), rel=1e-6)
    focal2 = loss_for(LossConfig(name="focal", focal_gamma=2))(logits, labels)
    assert focal2.item() < ce.item()


def test_balanced_class_weights_and_smoothing():
    from pretune.tasks.base import class_weights

    w = class_weights(LossConfig(class_weights="balanced"), np.array([30, 10]))
    assert w.tolist() == pytest.approx([40 / 60, 40 / 20])
    with pytest.raises(PretuneError, match="3 values for 2 classes"):
        class_weights(LossConfig(class_weights=[1, 2, 3]), np.array([5, 5]))
    smooth = loss_for(LossConfig(label_smoothing=0.2))
    confident = torch.tensor([[20.0, -20.0]])
    assert smooth(confident, torch.tensor([0])).item() > 1.0  # smoothing punishes certainty


def test_unknown_names_list_the_known_ones():
    with pytest.raises(PretuneError, match="unknown optimizer 'lamb'; known: adagrad, adam, adamw"):
        create_optimizer([], OptimizerConfig(name="lamb"))
    with pytest.raises(PretuneError, match="unknown schedule 'onecycle'; known:"):
        lr_multiplier(ScheduleConfig(name="onecycle"), 10)
    with pytest.raises(PretuneError, match="unknown loss 'hinge'"):
        loss_for(LossConfig(name="hinge"))
    with pytest.raises(PretuneError, match="does not fit a regression task"):
        loss_for(LossConfig(name="focal"), "regression")
