"""model.surgery: keep / drop layers, re-initialise, share, MLP head, and what survives a save."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from pretune.errors import PretuneError
from pretune.models.surgery import apply_surgery, evenly_spaced, restore_head, untie_shared_layers
from pretune.recipe import SurgeryConfig

INPUTS = torch.randint(0, 100, (3, 9), generator=torch.Generator().manual_seed(1))


def tiny_bert(layers: int = 6) -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=64, num_labels=3)).eval()


def reloaded(model: nn.Module, path) -> nn.Module:
    """What a run's model/ directory gives back: save_pretrained, then plain from_pretrained."""
    model.save_pretrained(path)
    return AutoModelForSequenceClassification.from_pretrained(path).eval()


def logits(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=INPUTS).logits


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_default_config_changes_nothing():
    model = tiny_bert()
    before, layers = state(model), list(model.bert.encoder.layer)
    assert apply_surgery(model, SurgeryConfig()) == []
    assert_same_state(state(model), before)
    assert all(a is b for a, b in zip(model.bert.encoder.layer, layers, strict=True))


def test_keep_layers_keeps_their_weights_and_drops_exactly_the_rest():
    model = tiny_bert()
    originals = [state(layer) for layer in model.bert.encoder.layer]
    dropped = sum(count(model.bert.encoder.layer[i]) for i in (1, 3, 4))
    total = count(model)
    model.bert.embeddings.requires_grad_(False)
    frozen = count(model.bert.embeddings)

    rows = apply_surgery(model, SurgeryConfig(keep_layers=[0, 2, 5]))

    assert rows == [{"change": "keep layers [0, 2, 5] of 6", "parameters": total - dropped,
                     "trainable": total - dropped - frozen}]
    assert count(model) == total - dropped
    assert len(model.bert.encoder.layer) == 3
    for layer, original in zip(model.bert.encoder.layer, (0, 2, 5), strict=True):
        assert_same_state(state(layer), originals[original])
    assert model.config.num_hidden_layers == 3
    # Kept layers are renumbered, so cache indexing sees 0..n-1.
    assert [layer.attention.self.layer_idx for layer in model.bert.encoder.layer] == [0, 1, 2]


def test_num_layers_keeps_evenly_spaced_layers():
    model = tiny_bert()
    originals = [state(layer) for layer in model.bert.encoder.layer]
    rows = apply_surgery(model, SurgeryConfig(num_layers=3))
    assert rows[0]["change"] == "keep layers [0, 2, 4] of 6"
    for layer, original in zip(model.bert.encoder.layer, (0, 2, 4), strict=True):
        assert_same_state(state(layer), originals[original])
    assert evenly_spaced(6, 4) == [0, 1, 3, 4]
    assert evenly_spaced(12, 6) == [0, 2, 4, 6, 8, 10]
    assert evenly_spaced(6, 6) == list(range(6))


@pytest.mark.parametrize("cfg", [SurgeryConfig(keep_layers=[1, 4]), SurgeryConfig(num_layers=3),
                                 SurgeryConfig(reinit_top_layers=2), SurgeryConfig(num_layers=8)])
def test_save_and_from_pretrained_rebuild_the_same_model(cfg, tmp_path):
    model = tiny_bert()
    apply_surgery(model, cfg)
    again = reloaded(model, tmp_path)
    assert len(again.bert.encoder.layer) == len(model.bert.encoder.layer)
    assert count(again) == count(model)
    torch.testing.assert_close(logits(again), logits(model))


def test_num_layers_above_the_count_stacks_copies_of_the_top_layers():
    model = tiny_bert(layers=3)
    originals = [state(layer) for layer in model.bert.encoder.layer]
    rows = apply_surgery(model, SurgeryConfig(num_layers=8))
    layers = model.bert.encoder.layer
    # 5 new layers copy the top of the stack repeated: [1, 2, 0, 1, 2] (the new top is the old top).
    assert rows[0]["change"].startswith("grow to 8 layers: layers [3, 4, 5, 6, 7] start as copies of layers "
                                        "[1, 2, 0, 1, 2] (progressive stacking")
    assert len(layers) == 8 and model.config.num_hidden_layers == 8
    for i, source in enumerate([0, 1, 2, 1, 2, 0, 1, 2]):
        assert_same_state(state(layers[i]), originals[source])
    # Copies, not shared modules: training one leaves the other as it was.
    assert len({id(p) for p in model.parameters()}) == len(list(model.parameters()))
    with torch.no_grad():
        layers[7].output.dense.weight.add_(1.0)
    assert_same_state(state(layers[2]), originals[2])
    assert rows[0]["parameters"] == count(model) > count(tiny_bert(layers=3))
    assert [layer.attention.self.layer_idx for layer in layers] == list(range(8))


def test_a_doubled_stack_changes_the_output_and_trains_from_the_copies():
    model = tiny_bert(layers=2)
    before = logits(model)
    rows = apply_surgery(model, SurgeryConfig(num_layers=4, reinit_top_layers=1))
    assert [r["change"].split(":")[0] for r in rows] == ["grow to 4 layers", "re-initialise top layers [3]"]
    assert not torch.allclose(logits(model), before)


def test_reinit_top_layers_uses_the_model_init_even_after_from_pretrained(tmp_path):
    # from_pretrained marks loaded weights as initialised; a naive _init_weights call is a no-op.
    model = reloaded(tiny_bert(), tmp_path)
    with torch.no_grad():
        for p in model.bert.encoder.layer[5].parameters():
            p.fill_(0.5)
    before = state(model)

    rows = apply_surgery(model, SurgeryConfig(reinit_top_layers=2))

    assert rows == [{"change": "re-initialise top layers [4, 5]", "parameters": count(model),
                     "trainable": count(model)}]
    after = state(model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Every weight matrix of layers 4 and 5 is redrawn; nothing outside them moves.
    assert {k for k in changed if not k.startswith(("bert.encoder.layer.4.", "bert.encoder.layer.5."))} == set()
    assert {"bert.encoder.layer.4.attention.self.query.weight",
            "bert.encoder.layer.5.output.dense.weight"} <= changed
    top = model.bert.encoder.layer[5]
    torch.testing.assert_close(top.output.LayerNorm.weight, torch.ones(32))  # BERT's init
    torch.testing.assert_close(top.output.dense.bias, torch.zeros(32))
    assert 0.01 < top.intermediate.dense.weight.std().item() < 0.03  # normal(0, 0.02)


def test_share_layers_shares_one_module_per_run_and_saves_after_untie(tmp_path):
    model = tiny_bert()
    layers = model.bert.encoder.layer
    total, per_layer = count(model), count(layers[0])
    before = logits(model)

    rows = apply_surgery(model, SurgeryConfig(share_layers=2))

    assert rows == [{"change": "share weights within layer runs [[0, 1], [2, 3], [4, 5]]",
                     "parameters": total - 3 * per_layer, "trainable": total - 3 * per_layer}]
    assert layers[1] is layers[0] and layers[3] is layers[2] and layers[5] is layers[4]
    assert layers[2] is not layers[0]
    assert count(model) == total - 3 * per_layer
    assert not torch.allclose(logits(model), before)  # layers 1, 3, 5 now compute as 0, 2, 4

    # A checkpoint (safetensors save_model) keeps the sharing as it is.
    save_model(model, str(tmp_path / "checkpoint.safetensors"))
    resumed = tiny_bert()
    apply_surgery(resumed, SurgeryConfig(share_layers=2))
    load_model(resumed, str(tmp_path / "checkpoint.safetensors"))
    torch.testing.assert_close(logits(resumed), logits(model))

    # save_pretrained refuses undeclared shared tensors: that is why untie_shared_layers exists.
    with pytest.raises(RuntimeError, match="shared tensors"):
        model.save_pretrained(tmp_path / "refused")
    shared = logits(model)
    assert untie_shared_layers(model) == 3
    assert len({id(layer) for layer in layers}) == 6
    assert [layer.attention.self.layer_idx for layer in layers] == list(range(6))
    torch.testing.assert_close(logits(model), shared)
    torch.testing.assert_close(logits(reloaded(model, tmp_path / "model")), shared)
    assert untie_shared_layers(model) == 0


def test_share_layers_last_run_may_be_shorter():
    model = tiny_bert()
    rows = apply_surgery(model, SurgeryConfig(share_layers=4))
    layers = model.bert.encoder.layer
    assert rows[0]["change"] == "share weights within layer runs [[0, 1, 2, 3], [4, 5]]"
    assert all(layers[i] is layers[0] for i in range(4)) and layers[5] is layers[4]


def test_mlp_head_replaces_the_classifier_and_round_trips_through_restore_head(tmp_path):
    model = tiny_bert()
    total = count(model)
    rows = apply_surgery(model, SurgeryConfig(head={"hidden_size": 16, "activation": "relu", "dropout": 0.2}))

    head = model.classifier
    assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert (head[0].in_features, head[0].out_features, head[3].out_features, head[2].p) == (32, 16, 3, 0.2)
    assert not head.training  # the model was in eval mode: its new dropout must be off too
    grown = (32 * 16 + 16) + (16 * 3 + 3) - (32 * 3 + 3)
    assert rows == [{"change": "MLP head 32 -> 16 -> 3 (relu, dropout 0.2)",
                     "parameters": total + grown, "trainable": total + grown}]
    assert model.config.pretune_head == {"hidden_size": 16, "dropout": 0.2, "activation": "relu",
                                         "module": "classifier"}

    model.save_pretrained(tmp_path)
    # A plain from_pretrained cannot express the MLP: it builds a fresh linear head.
    assert isinstance(AutoModelForSequenceClassification.from_pretrained(tmp_path).classifier, nn.Linear)
    # pretune's loader: build from the config, restore the head, then load the weights.
    config = AutoConfig.from_pretrained(tmp_path)
    again = AutoModelForSequenceClassification.from_config(config).eval()
    assert restore_head(again, config) is True
    load_model(again, str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(logits(again), logits(model))


def test_restore_head_without_a_recorded_head_does_nothing():
    model = tiny_bert()
    assert restore_head(model, model.config) is False
    assert isinstance(model.classifier, nn.Linear)


def test_all_changes_in_order():
    model = tiny_bert()
    rows = apply_surgery(model, SurgeryConfig(num_layers=4, reinit_top_layers=1, share_layers=2,
                                              head={"hidden_size": 8}))
    assert [r["change"].split(" ")[0] for r in rows] == ["keep", "re-initialise", "share", "MLP"]
    assert rows[0]["change"] == "keep layers [0, 1, 3, 4] of 6"
    assert rows[1]["change"] == "re-initialise top layers [3]"
    assert rows[2]["parameters"] < rows[1]["parameters"]
    assert logits(model).shape == (3, 3)


def test_distilbert_layer_count_is_n_layers(tmp_path):
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=100, dim=32, n_layers=4, n_heads=2, hidden_dim=64, num_labels=2)).eval()
    apply_surgery(model, SurgeryConfig(keep_layers=[0, 3]))
    assert model.config.n_layers == 2 and model.distilbert.transformer.n_layers == 2
    again = reloaded(model, tmp_path)
    assert len(again.distilbert.transformer.layer) == 2
    torch.testing.assert_close(logits(again), logits(model))


class Stack(nn.Module):
    """An architecture pretune does not know: found through model.layer_prefixes."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(4)])
        self.classifier = nn.Linear(8, 2)


def test_layer_prefixes_locate_layers_of_an_unknown_model():
    model = Stack()
    prefixes = ["embed", "blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    kept = model.blocks[3].weight.clone()
    rows = apply_surgery(model, SurgeryConfig(keep_layers=[0, 3], reinit_top_layers=1), prefixes)
    assert [r["change"] for r in rows] == ["keep layers [0, 3] of 4", "re-initialise top layers [1]"]
    assert len(model.blocks) == 2
    assert not torch.equal(model.blocks[1].weight, kept)  # reset_parameters for a plain module
    with pytest.raises(PretuneError, match="layer_prefixes"):
        apply_surgery(Stack(), SurgeryConfig(num_layers=2), ["embed", "blocks.0", "blocks.2"])


@pytest.mark.parametrize("cfg, message", [
    (SurgeryConfig(keep_layers=[0, 2], num_layers=2), "keep_layers or num_layers, not both"),
    (SurgeryConfig(keep_layers=[0, 6]), r"model.surgery.keep_layers: \[6\] out of range"),
    (SurgeryConfig(keep_layers=[-1, 2]), r"model.surgery.keep_layers: \[-1\] out of range"),
    (SurgeryConfig(keep_layers=[1, 1, 2]), "model.surgery.keep_layers: .* duplicates"),
    (SurgeryConfig(keep_layers=[3, 1]), "model.surgery.keep_layers: .* increasing order"),
    (SurgeryConfig(keep_layers=[]), "model.surgery.keep_layers is empty"),
    (SurgeryConfig(num_layers=7, reinit_top_layers=8), "reinit_top_layers is 8 but the model has 7"),
    (SurgeryConfig(num_layers=2, reinit_top_layers=3), "reinit_top_layers is 3 but the model has 2"),
    (SurgeryConfig(keep_layers=[0, 1], share_layers=3), "share_layers is 3 but the model has 2"),
])
def test_bad_settings_are_clear_errors_and_change_nothing(cfg, message):
    model = tiny_bert()
    before = state(model)
    with pytest.raises(PretuneError, match=message):
        apply_surgery(model, cfg)
    assert len(model.bert.encoder.layer) == 6
    assert_same_state(state(model), before)


def test_unknown_structures_are_errors():
    with pytest.raises(PretuneError, match="does not know the layer structure"):
        apply_surgery(nn.Sequential(nn.Linear(2, 2)), SurgeryConfig(num_layers=1))
    model = tiny_bert()
    model.classifier = nn.Identity()
    with pytest.raises(PretuneError, match="model.surgery.head: no linear classifier"):
        apply_surgery(model, SurgeryConfig(num_layers=2, head={"hidden_size": 8}))
    assert len(model.bert.encoder.layer) == 6  # checked before any layer was dropped


def test_minilm_with_three_layers_still_runs():
    from pretune.models import load_tokenizer
    from pretune.recipe import ModelConfig
    from tests.conftest import load_classifier

    model = load_classifier(ModelConfig(), ["a", "b"]).eval()
    rows = apply_surgery(model, SurgeryConfig(num_layers=3))
    assert rows[0]["change"] == "keep layers [0, 2, 4] of 6"
    assert len(model.bert.encoder.layer) == 3 and model.config.num_hidden_layers == 3
    batch = load_tokenizer("minilm-l6")(["a fine film", "dull"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).logits
    assert out.shape == (2, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("surgery", [
    {"num_layers": 1, "head": {"hidden_size": 16, "activation": "relu"}},
    {"share_layers": 2, "reinit_top_layers": 1},
], ids=["fewer-layers-mlp-head", "shared-reinit"])
def test_fit_with_surgery_saves_reloads_and_reports(tmp_path, tiny_model_dir, sentiment_csv, surgery):
    import pandas as pd

    import pretune
    from pretune.api import as_recipe
    from pretune.data import prepare
    from pretune.tasks import create_task
    from tests.conftest import tiny_recipe

    recipe = tiny_recipe(tiny_model_dir, sentiment_csv)
    recipe["model"]["surgery"] = surgery
    run = pretune.fit(recipe, tmp_path / "run", quiet=True)
    changes = run.metrics["model"]["changes"]
    assert changes[0]["change"] == "pretrained" and len(changes) >= 3
    # Dropping or sharing layers shrinks the model; the report says so.
    assert min(c["parameters"] for c in changes[1:]) < changes[0]["parameters"]
    data_cfg = as_recipe(recipe).data
    test = prepare(data_cfg, create_task(data_cfg)).splits["test"]
    path = tmp_path / "test.csv"
    pd.DataFrame({"text": test.texts, "label": [["neg", "pos"][i] for i in test.labels]}).to_csv(path, index=False)
    assert pretune.evaluate(run, path)["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])


def test_a_grown_model_trains_reloads_and_its_card_says_so(tmp_path, tiny_model_dir, sentiment_csv):
    import pretune
    from tests.conftest import tiny_recipe

    recipe = tiny_recipe(tiny_model_dir, sentiment_csv, epochs=1)
    recipe["model"]["surgery"] = {"num_layers": 3}
    run = pretune.fit(recipe, tmp_path / "grown", quiet=True)
    assert AutoConfig.from_pretrained(run.model_path).num_hidden_layers == 3
    card = (run.model_path / "README.md").read_text()
    assert "layers [2] start as copies of layers [1] (progressive stacking" in card
