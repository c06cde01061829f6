"""pretune: a pretrained model and a labelled dataset in, a fine-tuned, measured model out.

    import pretune
    run = pretune.fit("examples/demo.yaml", out="runs/demo")
    run.metrics["test"]["accuracy"]
    run.predict(["A warm, funny film."])
"""

# The subpackages first: importing one later would rebind `pretune.compress` / `pretune.search`
# from the verb to the package.
import pretune.compress as _compress_package  # noqa: F401, I001
import pretune.search as _search_package  # noqa: F401, I001
import pretune.report as _report_package  # noqa: F401, I001
import pretune.pipeline as _pipeline_package  # noqa: F401, I001
import pretune.serve as _serve_package  # noqa: F401, I001
from pretune.api import adapt, check, compress, evaluate, export, fit, measure, predict, pipeline, report, search, serve
from pretune.errors import PretuneError
from pretune.finders import find_batch_size, find_lr
from pretune.predictor import Run, load_run
from pretune.recipe import Recipe

__all__ = ["PretuneError", "Recipe", "Run", "adapt", "check", "compress", "evaluate", "export", "find_batch_size",
           "find_lr", "fit", "load_run", "measure", "predict", "pipeline", "report", "search", "serve"]
__version__ = "0.1.0"
