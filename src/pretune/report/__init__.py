"""The HTML page of a run, a study, a compression or a comparison of runs (one self-contained
file), built only from what those directories hold."""
