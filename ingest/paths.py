"""The one rule for what is inside a notes folder.

A path is inside the notes folder when its *real* path (every symlink followed) is
the folder's real path or below it. A symlink to a note inside the folder is fine;
a symlink (to a file or a folder) that lands outside is not a note of this folder:
the walk skips it with a warning, and no reader opens it (``ingest`` walk, the
citation and freshness checks of an answer, the web chat's note viewer).

This module imports nothing from ``assistant`` so that both packages can use it.
"""

from __future__ import annotations

import os
from pathlib import Path

OUTSIDE_REASON = "it links outside the notes folder (its real path is elsewhere), so it is not read"


class OutsideNotesError(ValueError):
    """``rel`` does not name a path inside the notes folder."""


def real_root(notes_dir: Path | str) -> str:
    return os.path.realpath(os.fspath(notes_dir))


def is_inside(notes_dir: Path | str, path: Path | str, root_real: str | None = None) -> bool:
    """Is the real path of ``path`` the notes folder or inside it?"""
    root = root_real or real_root(notes_dir)
    try:
        real = os.path.realpath(os.fspath(path))
    except (OSError, ValueError):
        return False
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def note_path(notes_dir: Path | str, rel: str) -> Path:
    """The real path of ``rel`` (relative to ``notes_dir``, or absolute) if it is inside the
    notes folder; raises OutsideNotesError otherwise. ``..``, absolute paths and symlinks are
    all resolved before the check, so no spelling of a path reaches outside."""
    rel = rel or ""
    if not rel.strip() or "\x00" in rel:
        raise OutsideNotesError("no file given")
    root = real_root(notes_dir)
    try:
        real = os.path.realpath(os.path.join(root, os.fspath(rel)))
    except (OSError, ValueError) as exc:
        raise OutsideNotesError(f"cannot resolve {rel}: {exc}") from None
    if not is_inside(root, real, root):
        raise OutsideNotesError(f"{rel} is outside the notes folder")
    return Path(real)
