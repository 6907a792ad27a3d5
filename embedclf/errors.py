"""One exception type for everything a user can get wrong.

The CLI turns an ``EmbedclfError`` into a single ``embedclf: error: ...`` line and exit status 2;
anything else is a bug and keeps its traceback.
"""


class EmbedclfError(Exception):
    """A user-facing error: bad input, a missing file, an incompatible model."""


def missing_extra(name: str, extra: str) -> EmbedclfError:
    """The one-line error for an optional dependency that is not installed."""
    return EmbedclfError(f"{name} is not installed; run: pip install 'embedclf[{extra}]'")


class NotInstalled:
    """Stands in for an optional extra, failing with an install hint when first used."""

    def __init__(self, name: str, extra: str):
        self._name, self._extra = name, extra

    def __getattr__(self, attr):
        raise missing_extra(self._name, self._extra)
