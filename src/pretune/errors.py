"""The one exception a user sees: a problem with their input, told in one clear line.

The CLI prints its message and exits with code 2; anything else is a bug and keeps its traceback.
"""


class PretuneError(Exception):
    """A user-facing problem (bad recipe, missing file, unknown name): one line, exit code 2."""


class MissingExtraError(PretuneError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str):
        super().__init__(
            f"this needs the optional package '{module}': pip install 'pretune[{extra}]'"
        )
