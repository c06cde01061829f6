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


def test_yaml_1_1_booleans_are_words_for_every_field(tmp_path):
    """`no` / `yes` / `on` / `off` are strings (YAML 1.2), from a file and from --set: a Literal
    field takes them as written, a bool field still reads them as booleans."""
    path = tmp_path / "r.yaml"
    path.write_text("report: no\ntrain:\n  mixed_precision: no\ndata:\n  group_by_length: off\n")
    recipe = Recipe.load(path)
    assert recipe.train.mixed_precision == "no" and recipe.report is False and recipe.data.group_by_length is False
    recipe = Recipe.load(None, ["train.mixed_precision=no", "report=yes", "compress.quantize.per_channel=on"])
    assert recipe.train.mixed_precision == "no" and recipe.report is True and recipe.compress.quantize.per_channel
    assert Recipe.load(None, ["data.group_by_length=true"]).data.group_by_length is True
    saved = tmp_path / "saved.yaml"
    saved.write_text(Recipe.load(None, ["train.mixed_precision=no"]).to_yaml())
    assert Recipe.load(saved).train.mixed_precision == "no"  # written and read back the same
    with pytest.raises(PretuneError, match="train.mixed_precision"):
        Recipe.load(None, ["train.mixed_precision=false"])  # a real boolean is still not a precision


def test_one_dotted_key_editor_for_dicts_overrides_and_recipes():
    from pretune.recipe import check_path, edit, parse_overrides

    raw = {"train": {"epochs": 2}}
    pairs = parse_overrides(["model.surgery={num_layers: 2}", "model.surgery.num_layers=3", "train.epochs="])
    assert pairs == [("model.surgery", {"num_layers": 2}), ("model.surgery.num_layers", 3), ("train.epochs", None)]
    assert edit(raw, pairs[:2]) == {"train": {"epochs": 2}, "model": {"surgery": {"num_layers": 3}}}  # in order
    assert Recipe().updated(pairs[:2]).model.surgery.num_layers == 3
    with pytest.raises(PretuneError, match="search.space: unknown key 'train.lrr'; train has: "):
        check_path("train.lrr", "search.space: ")
    with pytest.raises(PretuneError, match="'seed' is a value, not a section"):
        edit({}, {"seed.x": 1})
    with pytest.raises(PretuneError, match="'model.source': 'model' is not a section"):
        edit({"model": 5}, {"model.source": "x"})
