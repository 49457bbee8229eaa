"""Errors a user can meet. Each carries one line saying what happened and what to do.

The base types live in :mod:`ingest.errors` (the lowest layer, so that ``ingest/``
imports nothing from ``assistant/``); this module re-exports them and adds the
answering side's. Front ends print ``str(error)`` and exit non-zero; they never
show a traceback for these.
"""

from ingest.errors import (
    BusyError,
    ChromaUnavailableError,
    IndexMismatchError,
    ModelError,
    NoIndexError,
    NotesFolderError,
    UserError,
)

__all__ = ["UserError", "NoIndexError", "IndexMismatchError", "NotesFolderError", "ModelError", "BusyError",
           "ChromaUnavailableError", "LLMUnavailableError"]


class LLMUnavailableError(UserError):
    """The answering model cannot be reached; retrieval still works."""
