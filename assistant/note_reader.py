"""The lines of an indexed note, for front ends that show them (`assistant chat`'s /open,
`assistant mcp`'s read_note): the same rule as the web chat's note viewer.

Only a note file inside the notes folder that the index holds can be read: the path is
resolved (``..``, absolute paths and symlinks followed) and must land inside the resolved
notes folder, outside hidden folders, with a note suffix, and be one of the indexed files.

(The rule is ``assistant.notes_access.safe_note_path``, the web chat's own.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .notes_access import NoteAccessError, parse_ref, safe_note_path

__all__ = ["MAX_LINES", "NoteAccessError", "parse_ref", "read_note_lines", "safe_note_path"]

MAX_LINES = 400  # one read returns at most this many lines


def read_note_lines(qa: Any, file: str, line_start: int | None = None, line_end: int | None = None,
                    context: int = 0) -> dict[str, Any]:
    """Lines ``line_start..line_end`` (1-based, inclusive; the whole note, up to MAX_LINES, when
    not given) of an indexed note of ``qa``, widened by ``context`` lines each side."""
    from ingest.load import DecodeError, decode

    snap = qa.snapshot  # the query API's current view: its notes folder and indexed files
    path = safe_note_path(snap.notes_dir, file, set(snap.manifest.files))
    try:
        text, _ = decode(path.read_bytes())
    except (OSError, DecodeError) as exc:
        raise NoteAccessError(f"cannot read {file}: {exc}") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()  # the newline that ends the last line does not start another
    n = len(lines)
    if line_start is not None and line_start < 1 or line_end is not None and line_end < 1:
        raise NoteAccessError("line numbers start at 1")
    a = line_start or 1
    b = line_end or n
    if a > n:
        raise NoteAccessError(f"{file} has {n} lines: line {a} is past its end")
    b = max(a, min(b, n))
    lo, hi = max(1, a - context), min(n, b + context)
    hi = min(hi, lo + MAX_LINES - 1)
    rel = path.relative_to(Path(snap.notes_dir).resolve()).as_posix()
    return {"file": rel, "line_start": a, "line_end": b, "total_lines": n, "first_shown": lo, "last_shown": hi,
            "lines": [{"n": i, "text": lines[i - 1]} for i in range(lo, hi + 1)]}
