"""The recipe reference page is generated from the recipe's sections: it must be current, and
every key must say what it does (docs/recipe.md once left out class_weights, focal_gamma, the
delimiter, the split fractions and the sample caps)."""

from pathlib import Path

from pretune.recipe import Recipe
from pretune.recipe.reference import page, rows, sections, type_text

PAGE = Path(__file__).resolve().parent.parent / "docs" / "recipe-reference.md"


def test_the_page_is_current():
    assert PAGE.read_text() == page(), "regenerate: python -m pretune.recipe.reference > docs/recipe-reference.md"


def test_every_key_of_every_section_is_listed_with_a_meaning():
    listed = {}
    for path, model in sections():
        for key, _kind, _default, meaning in rows(model):
            listed[f"{path}.{key}" if path else key] = meaning
    for key in ("train.loss.class_weights", "train.loss.focal_gamma", "data.delimiter", "data.validation_fraction",
                "data.test_fraction", "data.max_train_samples", "data.max_eval_samples", "search.space.KEY.int",
                "strategy.groups[].match", "tracking.mlflow.experiment"):
        assert key in listed and f"`{key}`" in PAGE.read_text()
    assert [k for k, meaning in listed.items() if not meaning.strip()] == []
    assert len(listed) > 150 and "seed" in listed and Recipe.model_fields["seed"].description in listed["seed"]


def test_types_read_as_a_user_writes_them():
    from typing import Literal

    assert type_text(int | None) == "int or null"
    assert type_text(Literal["a", "b"]) == '"a" \\| "b"'
    assert type_text(list[float] | None) == "list of float or null"
