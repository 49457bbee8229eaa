"""Walk a notes folder and decode its files.

A note is a ``.md``, ``.markdown`` or ``.txt`` file. Everything else is skipped and
counted; hidden folders (``.git``, ``.obsidian``, ...) are never entered; a symlink
loop is entered once. A file that is binary or cannot be decoded is skipped with a
reason that names it, never raised.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

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


def walk(root: Path) -> WalkResult:
    """List the notes under ``root``, sorted by relative path.

    ``os.walk(followlinks=True)`` would loop forever on a symlink cycle, so we track
    the real path of every folder we enter (pathlib has no cycle guard either).
    """
    root = Path(root)
    result = WalkResult()
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=None):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        for d in sorted(d for d in dirnames if d.startswith(".")):
            result.hidden.append(Skipped((Path(dirpath) / d).relative_to(root).as_posix() + "/", "hidden folder"))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if name.startswith("."):
                result.hidden.append(Skipped(rel, "hidden file"))
                continue
            if full.suffix.lower() not in NOTE_SUFFIXES:
                result.skipped.append(Skipped(rel, f"not a note file ({full.suffix.lower() or 'no suffix'})"))
                continue
            try:
                st = full.stat()
            except OSError as exc:  # dangling symlink, vanished file
                result.unreadable.append(Skipped(rel, f"cannot read: {exc.strerror or exc}"))
                continue
            if not full.is_file():
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


def decode(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)``: UTF-8 (with or without BOM), UTF-16 with BOM, GB18030.

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
