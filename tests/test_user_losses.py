"""A loss of the user's own: `loss=` in Python (fit, search trials, distillation, pruning
recovery) and by name from an installed package's `pretune.losses` entry point."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch.nn.functional as F
from torch import nn

import pretune
from pretune import PretuneError
from tests.conftest import sentiment_frame, tiny_recipe

PLUGIN = '''
import torch.nn.functional as F
from torch import nn

CALLS = []


class DoubledCrossEntropy(nn.Module):
    """Twice the cross-entropy: a loss whose use shows in the logged figures."""

    def forward(self, logits, labels):
        CALLS.append(len(labels))
        return 2 * F.cross_entropy(logits.float(), labels)
'''


def install_plugin(root, monkeypatch, name: str = "doubled_ce") -> None:
    """A distribution on sys.path as pip would leave it (a module and its dist-info folder with
    entry_points.txt), without installing anything."""
    (root / "pretune_loss_plugin.py").write_text(PLUGIN)
    info = root / "pretune_loss_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pretune-loss-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""
        [pretune.losses]
        {name} = pretune_loss_plugin:DoubledCrossEntropy
    """))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "pretune_loss_plugin", raising=False)


class CountingLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, logits, labels):
        self.calls += 1
        return F.cross_entropy(logits.float(), labels)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("losses") / "data.csv"
    sentiment_frame(64).to_csv(path, index=False)
    return path


def test_a_recipe_names_an_installed_loss(tmp_path, monkeypatch, tiny_model_dir, data):
    (tmp_path / "site").mkdir()
    install_plugin(tmp_path / "site", monkeypatch)
    recipe = tiny_recipe(tiny_model_dir, data, epochs=1, loss={"name": "doubled_ce"})
    run = pretune.fit(recipe, tmp_path / "run", quiet=True)
    import pretune_loss_plugin

    assert pretune_loss_plugin.CALLS  # trained (and evaluated) on the plugin's loss
    assert run.recipe.train.loss.name == "doubled_ce"  # the name is saved in the run's recipe
    assert run.metrics["train"]["loss_function"] == (
        "doubled_ce (entry point pretune_loss_plugin:DoubledCrossEntropy, pretune-loss-plugin 0.1)")
    # A resumed or reloaded run resolves the same name again: the recipe stays data only.
    assert "pretune_loss_plugin" not in run.path.joinpath("recipe.yaml").read_text()


def test_unknown_names_list_the_installed_ones_and_the_working_directory_plants_none(
        tmp_path, monkeypatch, tiny_model_dir, data):
    (tmp_path / "site").mkdir()
    install_plugin(tmp_path / "site", monkeypatch)
    with pytest.raises(PretuneError, match="unknown loss 'nope'; known: .*cross_entropy.*doubled_ce"):
        pretune.fit(tiny_recipe(tiny_model_dir, data, loss={"name": "nope"}), tmp_path / "a", quiet=True)
    # `python -m pretune` puts the working directory on sys.path: a dist-info there is ignored.
    (tmp_path / "cwd").mkdir()
    install_plugin(tmp_path / "cwd", monkeypatch, name="planted")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(PretuneError, match="unknown loss 'planted'"):
        pretune.fit(tiny_recipe(tiny_model_dir, data, loss={"name": "planted"}), tmp_path / "b", quiet=True)
    assert not (tmp_path / "b").exists()


def test_fit_and_search_trials_take_a_loss_object(tmp_path, tiny_model_dir, data):
    loss = CountingLoss()
    run = pretune.fit(tiny_recipe(tiny_model_dir, data, epochs=1), tmp_path / "fit", quiet=True, loss=loss)
    assert loss.calls > 0
    assert run.metrics["train"]["loss_function"] == "tests.test_user_losses.CountingLoss (given in Python)"
    assert "| loss | tests.test_user_losses.CountingLoss (given in Python) |" in (
        run.model_path / "README.md").read_text()  # the model card says what was minimised
    with pytest.raises(PretuneError, match="loss= takes a callable"):
        pretune.fit(tiny_recipe(tiny_model_dir, data), tmp_path / "bad", quiet=True, loss="cross_entropy")
    searched = CountingLoss()
    recipe = tiny_recipe(tiny_model_dir, data, epochs=1)
    recipe["search"] = {"space": {"train.optimizer.lr": {"loguniform": [1e-3, 1e-2]}}, "trials": 1,
                        "evaluations": 1, "pruner": "none"}
    study = pretune.search(recipe, tmp_path / "study", loss=searched, report=False)
    assert searched.calls > 0 and list(study.trials["state"]) == ["COMPLETE"]


def test_distillation_and_pruning_recovery_train_on_the_given_loss(tmp_path, tiny_model_dir, data):
    run = pretune.fit(tiny_recipe(tiny_model_dir, data, epochs=1), tmp_path / "fit", quiet=True)
    loss = CountingLoss()
    fast = ["compress.measure.isolate=false", "compress.measure.samples=8", "compress.measure.repeats=1",
            "compress.distill.num_layers=1", "compress.distill.epochs=1", "compress.prune.recovery_epochs=1"]
    result = pretune.compress(run, variants=[["distill"], ["prune"]], out=tmp_path / "c", overrides=fast,
                              loss=loss, report=False)
    assert loss.calls > 0
    for variant in result.variants:
        assert variant.metrics["train"]["loss_function"].endswith("(given in Python)"), variant.path
