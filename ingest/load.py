"""Walk a notes folder and decode its files.

A note is a ``.md``, ``.markdown`` or ``.txt`` file. Everything else is skipped and
counted; hidden folders (``.git``, ``.obsidian``, ...) are never entered; a symlink
loop is entered once. A file or folder whose real path is outside the notes folder
(a symlink out of it) is skipped with a warning (see :mod:`ingest.paths`). A file that
is binary or cannot be decoded is skipped with a reason that names it, never raised.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .paths import OUTSIDE_REASON, is_inside, real_root

NOTE_SUFFIXES = {".md", ".markdown", ".txt"}


@dataclass
class NoteFile:
    path: Path  # absolute
    rel: str  # relative to the notes folder, with forward slashes
    size: int
    mtime_ns: int


@dataclass
class Skipped:
    rel: str
    reason: str


@dataclass
class WalkResult:
    notes: list[NoteFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # not a note (other suffix)
    unreadable: list[Skipped] = field(default_factory=list)  # a note we could not read
    hidden: list[Skipped] = field(default_factory=list)  # hidden files and folders (folders end in /, not entered)
    outside: list[Skipped] = field(default_factory=list)  # a link out of the notes folder: never read

    def warnings(self) -> list[str]:
        """One line per note file or folder that was found but not read."""
        return ([f"skipped {s.rel}: {s.reason}" for s in self.outside]
                + [f"skipped {s.rel}: {s.reason}" for s in self.unreadable])


def walk(root: Path) -> WalkResult:
    """List the notes under ``root``, sorted by relative path.

    ``os.walk(followlinks=True)`` would loop forever on a symlink cycle, so we track
    the real path of every folder we enter (pathlib has no cycle guard either).
    """
    root = Path(root)
    result = WalkResult()
    seen_dirs: set[str] = set()
    root_real = real_root(root)

    def unlistable(exc: OSError) -> None:  # a folder we may not list: say so, never drop it silently
        where = Path(exc.filename or root)
        rel = where.relative_to(root).as_posix() if where != root and root in where.parents else str(where)
        result.unreadable.append(Skipped(rel + "/", f"cannot list the folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unlistable):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        keep = []
        for d in sorted(dirnames):
            rel = (Path(dirpath) / d).relative_to(root).as_posix() + "/"
            if d.startswith("."):
                result.hidden.append(Skipped(rel, "hidden folder"))
            elif is_inside(root, os.path.join(dirpath, d), root_real):
                keep.append(d)
            else:
                result.outside.append(Skipped(rel, OUTSIDE_REASON))
        dirnames[:] = keep
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if name.startswith("."):
                result.hidden.append(Skipped(rel, "hidden file"))
                continue
            if full.suffix.lower() not in NOTE_SUFFIXES:
                result.skipped.append(Skipped(rel, f"not a note file ({full.suffix.lower() or 'no suffix'})"))
                continue
            if not is_inside(root, full, root_real):
                result.outside.append(Skipped(rel, OUTSIDE_REASON))
                continue
            try:
                st = full.stat()
            except OSError as exc:  # dangling symlink, vanished file
                result.unreadable.append(Skipped(rel, f"cannot read: {exc.strerror or exc}"))
                continue
            if not full.is_file():  # a FIFO, socket or device with a note's name: never opened
                result.unreadable.append(Skipped(rel, "not a regular file"))
                continue
            result.notes.append(NoteFile(full, rel, st.st_size, st.st_mtime_ns))
    result.notes.sort(key=lambda n: n.rel)
    return result


class DecodeError(ValueError):
    """The bytes are not text in any encoding we accept."""


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    # control characters other than whitespace are rare in text
    bad = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return len(sample) > 0 and bad / len(sample) > 0.05


_TEXT_RANGES = ((0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x52F), (0x2000, 0x206F), (0x2070, 0x2BFF),
                (0x3000, 0x30FF), (0x3100, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F),
                (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF))


def _plausible_text(text: str) -> bool:
    """Is ``text`` mostly characters notes are written in (not the noise that bytes of
    another kind give when read as UTF-16)?"""
    if not text:
        return False
    good = 0
    for ch in text:
        o = ord(ch)
        if ch in "\t\n\r\f":
            good += 1
        elif o < 0x20 or 0x7F <= o < 0xA0 or 0xD800 <= o < 0xE000 or 0xE000 <= o < 0xF900:
            return False  # a control, surrogate or private-use character: not text
        elif any(a <= o <= b for a, b in _TEXT_RANGES):
            good += 1
    return good / len(text) >= 0.95


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """UTF-16 without a byte order mark (some Windows tools write it): NUL bytes, an even
    length, and text that decodes strictly to ordinary characters. The byte order is the
    one that puts the NULs (of ASCII letters, of newlines) in the high byte."""
    if len(data) < 2 or len(data) % 2 or b"\x00" not in data:
        return None
    sample = data[:8192]
    odd = sum(1 for b in sample[1::2] if b == 0)
    even = sum(1 for b in sample[0::2] if b == 0)
    for enc in (("utf-16-le", "utf-16-be") if odd >= even else ("utf-16-be", "utf-16-le")):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if _plausible_text(text[:4096]) and _plausible_text(text[-4096:]):
            return text, enc
    return None


def decode(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)``: UTF-8 (with or without BOM), UTF-16 (with a BOM, or
    without one when the bytes can only be UTF-16 text), GB18030.

    GB18030 is a superset of GBK and GB2312, so one codec covers the Chinese legacy
    encodings. charset detection libraries guess wrong on short Chinese notes, so we
    try the few encodings notes actually come in, strictest first.
    """
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:  # a BOM then bytes that are not UTF-8
            raise DecodeError(f"bad UTF-8 after a UTF-8 BOM: {exc.reason}") from exc
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise DecodeError(f"bad UTF-16: {exc.reason}") from exc
    if b"\x00" in data[:8192]:
        found = _utf16_without_bom(data)
        if found is not None:
            return found
    if _looks_binary(data):
        raise DecodeError("binary file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise DecodeError("not UTF-8, UTF-16 or GB18030/GBK text") from exc
    return text, "gb18030"


def read_note(note: NoteFile) -> tuple[str, str, str]:
    """Return ``(text, encoding, sha256 of the bytes)``; raises DecodeError or OSError."""
    data = note.path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    text, enc = decode(data)
    # one newline convention, so line numbers agree with what editors show
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text, enc, digest
