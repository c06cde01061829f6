"""`pretune report PATH [PATH ...]`: which page a path asks for, and where the page goes.

A directory holding study.json is a study, compression.json a compression, recipe.yaml a run;
several runs make a comparison. Anything else is told in one line.
"""

from __future__ import annotations

from pathlib import Path

from pretune import atomic, runs
from pretune.errors import PretuneError
from pretune.report import page as pages

REPORT = runs.REPORT
# A pipeline directory holds a recipe.yaml too: it is told apart by its pipeline.json first.
KINDS = {"pipeline": runs.PIPELINE, "study": runs.STUDY, "compression": runs.COMPRESSION, "run": runs.RECIPE}


def kind_of(path: Path) -> str:
    if not path.is_dir():
        raise PretuneError(f"{path}: no such directory (give a run, a study, a compression or a pipeline directory)")
    for kind, marker in KINDS.items():
        if (path / marker).is_file():
            return kind
    raise PretuneError(f"{path} is not a run, a study, a compression or a pipeline directory "
                       f"(it holds no {', '.join(KINDS.values())})")


def build_page(paths: list[Path]) -> pages.Page:
    if not paths:
        raise PretuneError("report needs a path: a run, a study, a compression or a pipeline directory "
                           "(or several runs)")
    kinds = [kind_of(p) for p in paths]
    if len(paths) > 1:
        if set(kinds) != {"run"}:
            raise PretuneError("several paths make a comparison of runs; "
                               + ", ".join(f"{p} is a {k}" for p, k in zip(paths, kinds, strict=True) if k != "run"))
        from pretune.report.comparison_page import comparison_page

        return comparison_page(paths)
    if kinds[0] == "pipeline":
        from pretune.report.pipeline_page import pipeline_page

        return pipeline_page(paths[0])
    if kinds[0] == "study":
        from pretune.report.study_page import study_page

        return study_page(paths[0])
    if kinds[0] == "compression":
        from pretune.report.compression_page import compression_page

        return compression_page(paths[0])
    from pretune.report.run_page import run_page

    return run_page(paths[0])


def report(paths, out: str | Path | None = None) -> Path:
    """Write the HTML page of a run, a study, a compression or (several runs) a comparison; return
    its path (default: PATH/report.html; for a comparison, comparison.html here)."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if out is not None and not Path(out).parent.is_dir():  # before the work, not after it
        raise PretuneError(f"--out {out}: directory {Path(out).parent} does not exist")
    if out is not None:
        atomic.check_file_target(out)
    page = build_page(paths)
    if out is None:
        out = Path("comparison.html") if len(paths) > 1 else paths[0] / REPORT
    return pages.write(page, out)
