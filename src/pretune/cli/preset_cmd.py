"""pretune preset list | pretune preset show NAME [--image]: the recipe fragments --preset uses."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="The presets `pretune pipeline --preset` resolves into its recipe.")


@app.command("list")
def list_() -> None:
    """Each preset's name and what it does."""
    from pretune.pipeline.presets import DEFAULT, NAMES, describe

    for name in NAMES:
        print(f"{name:<9} {describe(name)}" + (" (default)" if name == DEFAULT else ""))


@app.command("show")
def show(name: str = typer.Argument(..., help="fast, balanced or best"),
         image: bool = typer.Option(False, "--image", help="the image-classification version")) -> None:
    """The preset's YAML as shipped: a recipe fragment to read or copy."""
    from pretune.pipeline.presets import preset_text

    print(preset_text(name, "image" if image else "text"), end="")
