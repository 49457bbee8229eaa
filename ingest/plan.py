"""What an ingest run has to do: the folder read against the manifest, and the plan.

    reading = read_notes(found, manifest_files, resplit, known, max_bytes, progress)
    plan = plan_changes(manifest_files, reading.current, present)    # pure: no I/O

Only notes whose size or mtime differ from the manifest's are read; the plan says which
are new, changed (or merely touched), renamed and deleted. An unchanged folder is the
empty plan, and :mod:`ingest.pipeline` then writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .load import DecodeError, read_note


class Progress(Protocol):
    def stage(self, name: str, total: int) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def warn(self, message: str) -> None: ...


# --- the plan: what changed, decided from the manifest and the folder alone ---------------

@dataclass
class Plan:
    """What an ingest run has to do. ``current`` maps each readable note to its (size,
    mtime_ns, sha256); the hash is None for a note whose size and mtime the manifest
    records (it was not read)."""

    unchanged: list[str] = field(default_factory=list)  # as indexed: chunks kept
    touched: list[str] = field(default_factory=list)  # new mtime, same content: chunks kept, manifest updated
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # new path -> the old path of the same content
    deleted: list[str] = field(default_factory=list)  # in the manifest, gone from the folder
    dropped: list[str] = field(default_factory=list)  # in the manifest, still there but no longer readable

    @property
    def empty(self) -> bool:
        """Nothing to read, split, embed or publish: the index holds the folder as it is."""
        return not (self.touched or self.new or self.changed or self.renamed or self.deleted or self.dropped)

    @property
    def to_split(self) -> list[str]:
        return [*self.new, *self.changed, *self.renamed]


def plan_changes(old_files: dict[str, dict[str, Any]], current: dict[str, tuple[int, int, str | None]],
                 present: set[str], resplit: bool = False, known: set[str] | None = None) -> Plan:
    """Compare the manifest's files (``old_files``) with the folder (``current``: the readable
    notes; ``present``: every note file there, readable or not). ``resplit``: the split options
    changed, so no old chunk is kept. ``known``: the notes whose old chunks are at hand
    (default: all of the manifest's). A note whose content stands under another path that
    left the folder is a rename (its chunks' embeddings are reused)."""
    known = set(old_files) if known is None else known
    plan = Plan()
    gone_by_sha: dict[str | None, list[str]] = {}
    for rel, meta in old_files.items():
        if rel not in present:
            gone_by_sha.setdefault(meta.get("sha256"), []).append(rel)
    for rel, (size, mtime_ns, sha) in current.items():
        prev = old_files.get(rel)
        keep = prev is not None and not resplit and rel in known
        if keep and prev["size"] == size and prev["mtime_ns"] == mtime_ns:
            plan.unchanged.append(rel)
        elif keep and sha is not None and prev.get("sha256") == sha:
            plan.touched.append(rel)
        elif prev is not None:
            plan.changed.append(rel)
        elif gone_by_sha.get(sha):
            plan.renamed[rel] = gone_by_sha[sha].pop()
        else:
            plan.new.append(rel)
    plan.deleted = [rel for rels in gone_by_sha.values() for rel in rels]
    plan.dropped = [rel for rel in old_files if rel in present and rel not in current]
    return plan


@dataclass
class Reading:
    """The folder as read for a plan: readable notes' state, the text of those read."""

    current: dict[str, tuple[int, int, str | None]] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # manifest entries of the notes read
    texts: dict[str, str] = field(default_factory=dict)
    unreadable: int = 0
    warnings: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # note -> why it is not indexed (status --files)


def read_notes(found, old_files: dict[str, dict[str, Any]], resplit: bool, known: set[str], max_bytes: int,
                progress: Progress) -> Reading:
    """Read every note the manifest does not already describe (size and mtime), or all of
    them when ``resplit``. A note of the manifest is not read again; nor is it checked
    against the size limit."""
    out = Reading()
    same = {}
    for note in found.notes:
        prev = old_files.get(note.rel)
        if (not resplit and prev and note.rel in known and prev["size"] == note.size
                and prev["mtime_ns"] == note.mtime_ns):
            same[note.rel] = (note.size, note.mtime_ns, None)
    todo = [n for n in found.notes if n.rel not in same]
    if todo:  # an unchanged folder shows no progress at all
        progress.stage("reading notes", len(found.notes))
        progress.advance(len(found.notes) - len(todo))
    for note in found.notes:
        if note.rel in same:
            out.current[note.rel] = same[note.rel]
            continue
        try:
            if note.size > max_bytes:
                out.warnings.append(_too_large(note, max_bytes))
                out.unreadable += 1
                out.skipped[note.rel] = skip_reason(note, max_bytes)
                continue
            try:
                text, enc, sha = read_note(note)
            except DecodeError as exc:
                out.warnings.append(f"skipped {note.rel}: {exc}")  # shown by every front end, once
                out.unreadable += 1
                out.skipped[note.rel] = skip_reason(note, max_bytes, exc)
                continue
            except OSError as exc:
                out.warnings.append(f"skipped {note.rel}: cannot read ({exc.strerror or exc})")
                out.unreadable += 1
                out.skipped[note.rel] = skip_reason(note, max_bytes, exc)
                continue
            out.current[note.rel] = (note.size, note.mtime_ns, sha)
            out.meta[note.rel] = {"size": note.size, "mtime_ns": note.mtime_ns, "sha256": sha, "encoding": enc}
            out.texts[note.rel] = text
        finally:
            progress.advance()
    return out


def skip_reason(note, max_bytes: int, exc: Exception | None = None) -> str:
    """Why a note file is not indexed, in the words `assistant status --files` shows."""
    if exc is None:
        return f"too large: {note.size / 2**20:.1f} MB, over the {max_bytes / 2**20:.1f} MB limit (max_note_mb)"
    if isinstance(exc, DecodeError):
        return "binary file" if str(exc) == "binary file" else f"undecodable: {exc}"
    return f"cannot read: {getattr(exc, 'strerror', None) or exc}"


def walk_skipped(found) -> dict[str, str]:
    """What the walk left out and why: other file types, hidden files and folders, links out
    of the folder, unreadable notes."""
    out = {s.rel: s.reason for s in found.skipped}
    out.update({s.rel: s.reason for s in getattr(found, "hidden", [])})
    out.update({s.rel: s.reason for s in getattr(found, "outside", [])})
    out.update({s.rel: s.reason for s in found.unreadable})
    return out


def _too_large(note, max_bytes: int) -> str:
    def size(n: float) -> str:
        return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB"

    return (f"skipped {note.rel}: {size(note.size)} is over the {size(max_bytes)} limit for one note "
            f"(raise max_note_mb, e.g. NOTES_ASSISTANT_MAX_NOTE_MB, to index it)")
