"""Which notes a front end may open, and what opening one gives: one rule for every
front end (the web UI, the CLI, an MCP tool).

    view = open_note(notes_dir, "dir/note.md:12-14", indexed)   -> NoteView
    text = read_note_text(path)                                 -> str, decoded as ingest decodes

A note may be opened only when its resolved path (``..``, absolute paths and symlinks
followed) lies inside the resolved notes folder, outside hidden folders, is a note file
and, when the indexed files are known, is one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingest.load import NOTE_SUFFIXES, DecodeError, decode

from .errors import UserError

CONTEXT_LINES = 8  # lines shown around a citation when a note is opened


class NoteAccessError(UserError):
    pass


def safe_note_path(notes_dir: Path, rel: str, indexed: set[str] | None = None) -> Path:
    """The note ``rel`` inside ``notes_dir``, or NoteAccessError.

    The path is resolved (``..``, absolute paths, symlinks all followed) and must land
    inside the resolved notes folder, be a note file, and (when ``indexed`` is given) be
    one of the indexed notes.
    """
    root = Path(notes_dir).resolve()
    rel = (rel or "").strip()
    if not rel or "\x00" in rel:
        raise NoteAccessError("no file given")
    from ingest.paths import OutsideNotesError, note_path  # the one rule, shared with the walk and readers

    try:
        target = note_path(root, rel)
    except OutsideNotesError:
        raise NoteAccessError(f"refused: {rel} is outside the notes folder") from None
    rel_posix = target.relative_to(root).as_posix()
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise NoteAccessError(f"refused: {rel} is in a hidden folder, not a note")
    if target.suffix.lower() not in NOTE_SUFFIXES or not target.is_file():
        raise NoteAccessError(f"cannot open {rel}: not a note in the notes folder")
    if indexed is not None and rel_posix not in indexed:
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


def read_note_text(path: Path) -> str:
    """A note's text decoded the way ingest decodes it, with ``\\n`` line ends (OSError, DecodeError)."""
    text, _ = decode(Path(path).read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n")


@dataclass
class NoteView:
    """The lines of a note around a reference: ``lines[lo-1:hi]`` are shown, ``start..end``
    (1-based) are the referenced ones (0 and -1 when the whole note is shown)."""

    rel: str  # the note's path inside the notes folder, POSIX
    lines: list[str]
    start: int
    end: int
    lo: int
    hi: int

    @property
    def count(self) -> int:
        return len(self.lines)

    @property
    def shown(self) -> list[str]:
        return self.lines[self.lo - 1:self.hi]

    @property
    def referenced(self) -> list[str]:
        return self.lines[self.start - 1:self.end] if self.start else []


def open_note(notes_dir: Path, ref: str, indexed: set[str] | None = None, context: int = CONTEXT_LINES) -> NoteView:
    """The note ``ref`` names (``file[:a[-b]]``) with ``context`` lines around the lines it
    names, or NoteAccessError (refused, or unreadable)."""
    rel, a, b = parse_ref(ref)
    path = safe_note_path(notes_dir, rel, indexed)
    try:
        text = read_note_text(path)
    except (OSError, DecodeError) as exc:
        raise NoteAccessError(f"cannot read {rel}: {exc}") from None
    lines = text.split("\n")
    n = len(lines)
    if a is None:
        lo, hi, a, b = 1, n, 0, -1
    else:
        a, b = max(1, min(a, n)), max(1, min(max(a, b or a), n))
        lo, hi = max(1, a - context), min(n, b + context)
    return NoteView(path.relative_to(Path(notes_dir).resolve()).as_posix(), lines, a, b, lo, hi)
