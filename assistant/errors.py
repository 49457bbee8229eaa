"""Errors a user can meet. Each carries one line saying what happened and what to do.

Front ends print ``str(error)`` and exit non-zero; they never show a traceback for
these.
"""


class UserError(Exception):
    """A problem the user can fix; the message is one line with the next step."""

    exit_code = 2


class NoIndexError(UserError):
    pass


class IndexMismatchError(UserError):
    pass


class NotesFolderError(UserError):
    pass


class ModelError(UserError):
    pass


class BusyError(UserError):
    exit_code = 3


class LLMUnavailableError(UserError):
    """The answering model cannot be reached; retrieval still works."""


class ChromaUnavailableError(UserError):
    """The Chroma server named by --chroma-url cannot be reached."""
