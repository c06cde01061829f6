"""pretune: a pretrained model and a labelled dataset in, a fine-tuned, measured model out.

    import pretune
    run = pretune.fit("examples/demo.yaml", out="runs/demo")
    run.metrics["test"]["accuracy"]
    run.predict(["A warm, funny film."])
"""

# The package pretune.compress first, so that the verb below keeps the name `pretune.compress`
# (importing a submodule later would otherwise rebind it to the package).
import pretune.compress as _compress_package  # noqa: F401, I001
from pretune.api import compress, evaluate, export, fit, measure, predict
from pretune.errors import PretuneError
from pretune.finders import find_batch_size, find_lr
from pretune.predictor import Run, load_run
from pretune.recipe import Recipe

__all__ = ["PretuneError", "Recipe", "Run", "compress", "evaluate", "export", "find_batch_size", "find_lr", "fit",
           "load_run", "measure", "predict"]
__version__ = "0.1.0"
