import pytest

from pretune import PretuneError, Recipe
from pretune.api import as_recipe


def test_defaults_are_complete_and_roundtrip(tmp_path):
    recipe = Recipe()
    assert recipe.model.source == "minilm-l6" and recipe.data.source == "rotten-tomatoes"
    path = tmp_path / "r.yaml"
    path.write_text(recipe.to_yaml())
    assert Recipe.load(path) == recipe


def test_precedence_defaults_yaml_then_set(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  epochs: 2\n  optimizer: {lr: 1.0e-3}\n")
    recipe = Recipe.load(path, ["train.optimizer.lr=3e-4", "data.group_by_length=false"])
    assert recipe.train.epochs == 2  # from YAML
    assert recipe.train.optimizer.lr == pytest.approx(3e-4)  # --set wins over YAML
    assert recipe.data.group_by_length is False
    assert recipe.train.batch_size == 32  # default


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.optimiser.lr=1"], "unknown key 'train.optimiser'"),
        (["train.epochs=many"], "train.epochs"),
        (["train.batch_size=0"], "train.batch_size"),
        (["train.epochs.x=1"], "'train.epochs' is a value"),
        (["data.sampling=random"], "data.sampling"),
        (["noequals"], "section.key=value"),
    ],
)
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(PretuneError, match=message.replace("(", r"\(")):
        Recipe.load(None, overrides)


def test_unknown_yaml_key_names_path(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("train:\n  schedule:\n    nme: cosine\n")
    with pytest.raises(PretuneError, match="unknown key 'train.schedule.nme'"):
        Recipe.load(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(PretuneError, match="not found"):
        Recipe.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(PretuneError, match="not valid YAML"):
        Recipe.load(bad)


def test_as_recipe_accepts_dict_recipe_and_overrides():
    raw = {"train": {"epochs": 1}}
    recipe = as_recipe(raw, ["train.epochs=4"])
    assert recipe.train.epochs == 4 and raw == {"train": {"epochs": 1}}  # input untouched
    assert as_recipe(recipe, ["seed=3"]).seed == 3


def test_an_unknown_task_lists_the_known_ones_before_any_work(tmp_path):
    import pretune

    with pytest.raises(PretuneError, match="unknown task 'ranking'; known: image-classification, multi-label, "
                       "regression, sequence-classification, text-pair-classification, token-classification"):
        pretune.fit({"data": {"task": "ranking"}}, tmp_path / "r", quiet=True)
    assert not (tmp_path / "r").exists()


def test_task_columns_default_per_task_and_old_name_still_loads():
    from pretune.tasks import tasks

    assert Recipe.from_dict({"data": {"task": "token-classification"}}).data.label_column == "tags"
    assert Recipe.from_dict({"data": {"task": "multi-label"}}).data.text_column == "text"
    assert Recipe.from_dict({"data": {"task": "multi-label", "label_column": "y"}}).data.label_column == "y"
    assert tasks.get("classification") is tasks.get("sequence-classification")
