"""The lines of an indexed note, for front ends that show them (`assistant chat`'s /open,
`assistant mcp`'s read_note): the same rule as the web chat's note viewer.

Only a note file inside the notes folder that the index holds can be read: the path is
resolved (``..``, absolute paths and symlinks followed) and must land inside the resolved
notes folder, outside hidden folders, with a note suffix, and be one of the indexed files.

(The rule is the one of ``assistant.ui.safe_note_path``, kept here without importing Gradio;
when the query API grows ``NotesAssistant.open_note``, this module becomes a call to it.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .errors import UserError

NOTE_SUFFIXES = {".md", ".markdown", ".txt"}
MAX_LINES = 400  # one read returns at most this many lines


class NoteAccessError(UserError):
    pass


def safe_note_path(notes_dir: Path, rel: str, indexed: set[str] | None = None) -> Path:
    root = Path(notes_dir).resolve()
    rel = (rel or "").strip()
    if not rel or "\x00" in rel:
        raise NoteAccessError("no file given")
    try:
        target = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        raise NoteAccessError(f"cannot open {rel}: not a note in the notes folder") from None
    if target != root and root not in target.parents:
        raise NoteAccessError(f"refused: {rel} is outside the notes folder")
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise NoteAccessError(f"refused: {rel} is in a hidden folder, not a note")
    if target.suffix.lower() not in NOTE_SUFFIXES or not target.is_file():
        raise NoteAccessError(f"cannot open {rel}: not a note in the notes folder")
    if indexed is not None and target.relative_to(root).as_posix() not in indexed:
        raise NoteAccessError(f"cannot open {rel}: not an indexed note (re-ingest to add it)")
    return target


_REF = re.compile(r"^(?P<file>.+?)(?::(?P<a>\d+)(?:-(?P<b>\d+))?)?$", re.S)


def parse_ref(ref: str) -> tuple[str, int | None, int | None]:
    """``"dir/note.md:12-14"`` -> ("dir/note.md", 12, 14); lines are optional."""
    m = _REF.match((ref or "").strip())
    if not m:
        return "", None, None
    a = int(m.group("a")) if m.group("a") else None
    b = int(m.group("b")) if m.group("b") else a
    return m.group("file"), a, b


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
