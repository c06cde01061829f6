import pytest

from pretune import PretuneError
from pretune.models import resolve_source
from pretune.recipe import ModelConfig
from tests.conftest import load_classifier


def test_alias_resolves_to_the_bundled_weights(minilm_dir):
    assert (minilm_dir / "model.safetensors").is_file()
    with pytest.raises(PretuneError, match="model directory not found"):
        resolve_source("./no/such/dir")


def test_dropout_overrides_reach_the_config(tiny_model_dir):
    model = load_classifier(ModelConfig(source=str(tiny_model_dir), dropout=0.3,
                                        attention_dropout=0.0), ["a", "b", "c"])
    assert model.config.hidden_dropout_prob == 0.3
    assert model.config.attention_probs_dropout_prob == 0.0
    assert model.config.label2id == {"a": 0, "b": 1, "c": 2}
    assert model.classifier.out_features == 3


def test_regression_head_has_one_output(tiny_model_dir):
    model = load_classifier(ModelConfig(source=str(tiny_model_dir)), None, "regression")
    assert model.config.problem_type == "regression" and model.classifier.out_features == 1
