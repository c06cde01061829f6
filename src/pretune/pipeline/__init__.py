"""The pipeline: one recipe, one command. check -> search -> fit -> compress -> report -> release, each
stage through its verb, each resumable from its directory (pretune.pipeline.run).

    result = pretune.pipeline("examples/demo.yaml", out="runs/demo")
    result.chosen, result.figures["ratio"], result.report
"""

from pretune.pipeline.run import Pipeline, pipeline
from pretune.pipeline.stages import Verbs

__all__ = ["Pipeline", "Verbs", "pipeline"]
