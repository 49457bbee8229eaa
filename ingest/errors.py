"""Errors a user can meet. Each carries one line saying what happened and what to do.

They live here, at the bottom of the layers, so that ``ingest/`` needs nothing from
``assistant/``; ``assistant.errors`` re-exports them and adds the answering side's.
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


class ChromaUnavailableError(UserError):
    """The Chroma server named by --chroma-url cannot be reached."""
