"""pretune: a pretrained model and a labelled dataset in, a fine-tuned, measured model out.

    import pretune
    run = pretune.fit("examples/demo.yaml", out="runs/demo")
    run.metrics["test"]["accuracy"]
    run.predict(["A warm, funny film."])
"""

# The subpackage first: importing it later would rebind `pretune.search` from the verb to it.
import pretune.search as _search_package  # noqa: F401, I001
from pretune.api import evaluate, fit, predict, search
from pretune.errors import PretuneError
from pretune.finders import find_batch_size, find_lr
from pretune.predictor import Run, load_run
from pretune.recipe import Recipe

__all__ = ["PretuneError", "Recipe", "Run", "evaluate", "find_batch_size", "find_lr", "fit", "load_run",
           "predict", "search"]
__version__ = "0.1.0"
