"""The ingest run: walk, split what changed, embed what is new, publish atomically.

Order of writes, chosen so that ``kill -9`` at any moment loses nothing:

1. new chunks are upserted into Chroma under content-derived ids (re-running is
   harmless; an embedding already stored for the same text is reused, so renames
   and duplicated passages are not embedded twice);
2. a new keyword snapshot is written to a fresh folder;
3. the manifest (files, chunk ids, live snapshot) replaces the old one atomically;
4. Chroma entries no longer in the manifest are deleted, old snapshots pruned.

A run interrupted before 3 leaves the old manifest in force; the next run compares
Chroma with what the folder needs and fixes both directions.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .errors import BusyError, IndexMismatchError, NotesFolderError, UserError
from .index import (
    CorruptIndexError,
    Manifest,
    StoredChunk,
    chroma_client,
    chroma_errors,
    collection_name,
    embedder_id,
    get_collection,
    index_dir_for,
    load_snapshot_chunks,
    load_snapshot_vectors,
    next_snapshot_name,
    prune_snapshots,
    release_chroma,
    remember_notes_dir,
    write_fault,
    write_snapshot,
)
from .keywords import TOKENIZER_VERSION
from .load import walk
from .plan import Plan, Progress, Reading, plan_changes, read_notes, walk_skipped
from .sentence_index import SENTENCES_FILE
from .split import split_text
from .vector_store import EMBED_BATCH, Model, all_ids, delete_stale, sentence_vectors, snapshot_vectors, store_missing

__all__ = ["EMBED_BATCH", "IngestSummary", "run_ingest", "split_options"]

class IngestSettings(Protocol):
    """What ingest reads of the settings (``assistant.settings.Settings`` has it all)."""

    data_dir: Path
    embed: str
    chroma_url: str | None
    chunk_chars: int
    chunk_chars_en: int
    max_note_mb: float
    embed_headings: bool


SPLITTER_VERSION = 7


class _Quiet:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


@dataclass
class IngestSummary:
    notes_dir: str
    index_dir: str
    files: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    renamed: int = 0
    unchanged: int = 0
    skipped: int = 0  # not note files
    unreadable: int = 0  # note files we could not decode
    chunks: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    sentences_embedded: int = 0
    chunks_deleted: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.files} files: {self.added} added, {self.changed} changed, {self.removed} removed, "
                f"{self.renamed} renamed, {self.unchanged} unchanged; {self.skipped} skipped, "
                f"{self.unreadable} unreadable; {self.chunks} chunks ({self.chunks_embedded} embedded, "
                f"{self.chunks_reused} reused); {self.sentences_embedded} sentences embedded; {self.seconds:.1f} s")


def run_ingest(settings: IngestSettings, notes_dir: Path, progress: Progress | None = None,
               embedder: Any = None, rebuild: bool = False,
               _hook: Callable[[str], None] | None = None,
               make_embedder: Callable[[], Any] | None = None) -> IngestSummary:
    """Bring the index of ``notes_dir`` up to date and return what changed.

    The embedding model is ``embedder``, or the one ``make_embedder()`` returns when
    something needs embedding (an unchanged folder never builds one). The front ends
    call :func:`assistant.indexing.ingest_notes`, which passes the model that
    ``settings.embed`` names.

    ``_hook(stage)`` is called between write stages; tests use it to observe or
    interrupt a run at a precise point.
    """
    from filelock import FileLock, Timeout

    progress = progress or _Quiet()
    hook = _hook or _test_pause_hook() or (lambda stage: None)
    t0 = time.perf_counter()
    notes_dir = Path(notes_dir).expanduser()
    if not notes_dir.exists():
        raise NotesFolderError(f"notes folder {notes_dir} does not exist: check the path")
    if not notes_dir.is_dir():
        raise NotesFolderError(f"{notes_dir} is a file, not a folder: pass the folder that holds your notes")
    notes_dir = notes_dir.resolve()
    index_dir = index_dir_for(settings.data_dir, notes_dir)
    model_id = embedder_id(settings.embed)
    try:  # a read-only or full data dir: one line before anything is touched
        index_dir.mkdir(parents=True, exist_ok=True)
        with open(index_dir / "write.lock", "a"):
            pass
    except OSError as exc:
        import errno

        fix = ("free some disk space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable")
        raise UserError(f"cannot write to the data folder {settings.data_dir} ({exc.strerror or exc}): {fix} "
                        f"or choose another with --data-dir (NOTES_ASSISTANT_DATA_DIR); nothing was changed") from None

    lock = FileLock(str(index_dir / "write.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BusyError(f"another ingest of {notes_dir} is running: wait for it to finish, then run again") from None
    try:
        if rebuild:
            _drop_index(settings, index_dir)
        with chroma_errors(settings.chroma_url):
            summary = _ingest_locked(settings, notes_dir, index_dir, model_id, progress,
                                     embedder or make_embedder, hook, rebuild)
    except Exception as exc:  # a full or read-only disk mid-write: one line; the old index stays in force
        fault = write_fault(index_dir, exc) if not settings.chroma_url or isinstance(exc, OSError) else None
        if fault is None:
            raise
        raise fault from None
    finally:
        release_chroma(index_dir, settings.chroma_url)
        lock.release()
    try:
        remember_notes_dir(settings.data_dir, notes_dir)
    except OSError as exc:
        summary.warnings.append(f"could not record {notes_dir} as the last folder ingested "
                                f"({exc.strerror or exc}): pass it to `assistant ask --notes`")
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary


def _test_pause_hook() -> Callable[[str], None] | None:
    """For tests only: ``NOTES_ASSISTANT_TEST_PAUSE_AT=stage[,stage...]`` makes an ingest
    process print ``paused at STAGE`` on stderr and wait for a line (or EOF) on stdin, so a
    test can kill it, or let it go on, at exactly that point. Unset in normal use."""
    stages = {s.strip() for s in os.environ.get("NOTES_ASSISTANT_TEST_PAUSE_AT", "").split(",") if s.strip()}
    if not stages:
        return None

    def pause(stage: str) -> None:
        if stage in stages:
            print(f"paused at {stage}", file=sys.stderr, flush=True)
            sys.stdin.readline()

    return pause


def _drop_index(settings: IngestSettings, index_dir: Path) -> None:
    """Forget the Chroma collection of this folder, so that everything is embedded again.

    The manifest and the live snapshot stay: readers go on answering from them (their
    vectors are in the snapshot) until the rebuilt index replaces them.

    The collection is dropped through the client, not by deleting Chroma's folder:
    a client cached in this process (Chroma keeps one per path) would otherwise go on
    serving the deleted data ("Failed to get segments"), and a `chroma run` server
    keeps its collection whatever happens to local folders.
    """
    import shutil

    name = collection_name(index_dir, settings.chroma_url)
    try:
        client = chroma_client(index_dir, settings.chroma_url)
        if name in {getattr(c, "name", c) for c in client.list_collections()}:
            client.delete_collection(name)
    except Exception:  # an unreadable local store: start it afresh
        if settings.chroma_url:
            raise
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        shutil.rmtree(index_dir / "chroma", ignore_errors=True)


# --- the run: plan, then read/split, store vectors, publish, collect garbage ----------------

def _ingest_locked(settings: IngestSettings, notes_dir: Path, index_dir: Path, model_id: str, progress: Progress,
                   embedder, hook, rebuild: bool = False) -> IngestSummary:
    try:
        old = Manifest.load(index_dir)
    except CorruptIndexError as exc:
        progress.warn(f"{exc}; rebuilding the index from the notes")
        old = None
    live = old.snapshot if old else None  # stays in force until the new manifest replaces it
    if rebuild:
        old = None  # everything is read, split and embedded again
    if old and old.embed_model != model_id:
        raise IndexMismatchError(
            f"the index of {notes_dir} was built with {old.embed_model}, not {model_id}: "
            f"run `assistant ingest --rebuild` to re-embed with {model_id}, or switch back with --embed")

    found = walk(notes_dir)
    if not found.notes:
        if not notes_dir.exists():
            raise NotesFolderError(f"notes folder {notes_dir} vanished during the ingest: nothing was changed")
        raise NotesFolderError(
            f"no notes in {notes_dir} (looked for .md, .markdown, .txt; {len(found.skipped)} other files skipped)")
    max_bytes = int(float(getattr(settings, "max_note_mb", 10.0)) * 1024 * 1024)
    options = split_options(settings)
    same_split = bool(old) and old.chunk_chars == settings.chunk_chars and (old.options or {}) == options
    old_files = dict(old.files) if old else {}
    present = {n.rel for n in found.notes}

    reading = read_notes(found, old_files, not same_split, set(old_files), max_bytes, progress)
    if not notes_dir.exists():  # the notes it could not read were not unreadable: they were gone
        raise NotesFolderError(f"notes folder {notes_dir} vanished during the ingest: nothing was changed")
    plan = plan_changes(old_files, reading.current, present, resplit=not same_split)
    if plan.empty and old and old.snapshot:
        summary = _collect_garbage_only(settings, notes_dir, index_dir, old, found, reading)
        if summary is not None:
            return summary

    old_chunks: dict[str, list[StoredChunk]] = {}
    old_list: list[StoredChunk] = []
    reread = False
    if old and old.snapshot:
        try:
            old_list = load_snapshot_chunks(index_dir, old.snapshot)
            for c in old_list:
                old_chunks.setdefault(c.file, []).append(c)
        except CorruptIndexError as exc:
            progress.warn(f"{exc}; re-reading every note")
            old, old_chunks, old_files, same_split, reread = None, {}, {}, False, True
    for rel, meta in old_files.items():
        if not meta.get("chunks") and rel not in old_chunks:
            old_chunks[rel] = []  # a note with nothing to index (empty, front matter only) is known too
    known = set(old_chunks) if same_split else set()
    if reread or (same_split and not set(old_files) <= known):  # old chunks missing: read those notes again
        reading = read_notes(found, old_files, not same_split, known, max_bytes, progress)
        plan = plan_changes(old_files, reading.current, present, resplit=not same_split, known=known)

    summary = IngestSummary(str(notes_dir), str(index_dir), skipped=len(found.skipped) + len(found.outside),
                            unreadable=reading.unreadable + len(found.unreadable))
    summary.warnings.extend(found.warnings())  # links out of the folder, files that cannot be read
    summary.warnings.extend(reading.warnings)
    summary.unchanged, summary.added = len(plan.unchanged) + len(plan.touched), len(plan.new)
    summary.changed, summary.renamed, summary.removed = len(plan.changed), len(plan.renamed), len(plan.deleted)
    skipped = {**walk_skipped(found), **reading.skipped}  # recorded in the manifest: `assistant status --files`

    new_files, chunks_by_file = _read_split(settings, plan, reading, old_files, old_chunks)
    summary.files = len(new_files)
    if not notes_dir.exists():
        raise NotesFolderError(f"notes folder {notes_dir} vanished during the ingest: nothing was changed")
    all_chunks = _unique_chunks(chunks_by_file)
    summary.chunks = len(all_chunks)

    client = chroma_client(index_dir, settings.chroma_url)
    col = get_collection(client, collection_name(index_dir, settings.chroma_url))
    stored_ids = set(all_ids(col))
    missing = [c for c in all_chunks if c.id not in stored_ids]
    model = Model(embedder)
    hook("before-embed")
    known_vectors: dict[str, Any] = {}  # text_hash -> vector
    if missing:
        known_vectors = store_missing(col, missing, model, progress, summary, hook)
    hook("before-publish")
    if not notes_dir.exists():
        raise NotesFolderError(f"notes folder {notes_dir} vanished during the ingest: nothing was changed")

    vectors = snapshot_vectors(col, all_chunks, known_vectors, index_dir, old, old_list)
    sentences = sentence_vectors(all_chunks, index_dir, old, old_list, model, progress, summary)
    name = _publish(settings, notes_dir, index_dir, model_id, live, all_chunks, (vectors, sentences), new_files,
                    options, hook, skipped)
    summary.chunks_deleted = delete_stale(col, stored_ids - {c.id for c in all_chunks})
    prune_snapshots(index_dir, keep=[name, live] if live else [name])
    return summary


def _read_split(settings: IngestSettings, plan: Plan, reading: Reading, old_files: dict[str, dict[str, Any]],
                old_chunks: dict[str, list[StoredChunk]]) -> tuple[dict[str, dict[str, Any]], dict[str, list[StoredChunk]]]:
    """The manifest entries and chunks of every note the new index holds: kept ones as they
    were, touched ones with their new size and mtime, the rest split now."""
    new_files: dict[str, dict[str, Any]] = {}
    chunks_by_file: dict[str, list[StoredChunk]] = {}
    split_now = set(plan.to_split)
    for rel in reading.current:  # the folder's order
        if rel in split_now:
            chunks = split_text(reading.texts[rel], rel, max_chars=settings.chunk_chars, max_chars_en=settings.chunk_chars_en)
            chunks_by_file[rel] = [StoredChunk.from_chunk(c, embed_headings=settings.embed_headings) for c in chunks]
            meta = dict(reading.meta[rel])
        else:
            chunks_by_file[rel] = old_chunks[rel]
            meta = dict(reading.meta[rel]) if rel in reading.meta else old_files[rel]
        meta["chunks"] = [c.id for c in chunks_by_file[rel]]
        new_files[rel] = meta
    return new_files, chunks_by_file


def _unique_chunks(chunks_by_file: dict[str, list[StoredChunk]]) -> list[StoredChunk]:
    # one id can appear twice only if a file repeats a passage at the same lines: impossible,
    # but keep Chroma's upsert happy whatever happens
    seen: set[str] = set()
    unique = []
    for rel in sorted(chunks_by_file):
        for c in chunks_by_file[rel]:
            if c.id not in seen:
                seen.add(c.id)
                unique.append(c)
    return unique


def _publish(settings: IngestSettings, notes_dir: Path, index_dir: Path, model_id: str, live: str | None,
             chunks: list[StoredChunk], vectors: tuple[Any, Any], files: dict[str, dict[str, Any]], options: dict[str, Any],
             hook, skipped: dict[str, str] | None = None) -> str:
    """Write the new snapshot, then the manifest that makes it live; returns the snapshot's name."""
    name = next_snapshot_name(live)
    try:
        write_snapshot(index_dir, chunks, name, *vectors)
        hook("before-manifest")
        Manifest(str(notes_dir), model_id, settings.chunk_chars, name, files, options=options,
                 skipped=skipped).save(index_dir)
    except OSError as exc:
        import shutil

        shutil.rmtree(index_dir / "snapshots" / (name + ".tmp"), ignore_errors=True)
        if name != live:
            shutil.rmtree(index_dir / "snapshots" / name, ignore_errors=True)
        raise UserError(f"cannot write the index in {index_dir} ({exc.strerror or exc}): free some disk space "
                        f"and run `assistant ingest` again; the previous index is unchanged") from None
    hook("after-manifest")
    return name


def _collect_garbage_only(settings: IngestSettings, notes_dir: Path, index_dir: Path, old: Manifest, found,
                          reading: Reading) -> IngestSummary | None:
    """The empty plan: the index holds the folder as it is, so no snapshot is loaded or
    written (this is what keeps an unchanged re-ingest of 10,000 notes within seconds);
    only what a killed run left behind goes. None when the index itself needs repair
    (a damaged snapshot, chunks Chroma lost): the full run does that."""
    chunks_json = index_dir / "snapshots" / old.snapshot / "chunks.json"
    want = {i for meta in old.files.values() for i in meta.get("chunks", [])}
    if want and load_snapshot_vectors(index_dir, old.snapshot, len(want), mmap=True) is None:
        return None  # no vectors.npy (an index from before they were kept), or a damaged one
    if want and not (index_dir / "snapshots" / old.snapshot / SENTENCES_FILE).exists():
        return None  # an index from before sentence vectors: the full run adds them
    try:  # a torn write leaves a file that does not end its JSON array: let the full run repair it
        with open(chunks_json, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 1))
            if f.read(1) != b"]":
                return None
    except OSError:
        return None
    skipped = {**walk_skipped(found), **reading.skipped}
    if old.skipped is None or set(old.skipped) != set(skipped):
        return None  # what is skipped changed (or was never recorded): the manifest says why, so rewrite it
    col = get_collection(chroma_client(index_dir, settings.chroma_url),
                         collection_name(index_dir, settings.chroma_url))
    stored = set(all_ids(col))
    if not want <= stored:  # Chroma lost chunks (a wiped server, a deleted folder): re-upload them
        return None
    summary = IngestSummary(str(notes_dir), str(index_dir), skipped=len(found.skipped) + len(found.outside),
                            unreadable=reading.unreadable + len(found.unreadable))
    summary.warnings.extend(found.warnings())  # links out of the folder, files that cannot be read
    summary.warnings.extend(reading.warnings)
    summary.chunks_deleted = delete_stale(col, stored - want)
    # what a killed run left: an unfinished snapshot (*.tmp), generations before the last two
    gen = old.snapshot.split("-")[-1]
    previous = f"gen-{int(gen) - 1:06d}" if old.snapshot.startswith("gen-") and gen.isdigit() else old.snapshot
    prune_snapshots(index_dir, keep=[old.snapshot, previous])
    summary.files = summary.unchanged = len(old.files)
    summary.chunks = len(want)
    return summary


def split_options(settings: IngestSettings) -> dict[str, Any]:
    """Options besides chunk_chars that change the chunks or what is embedded."""
    # SPLITTER_VERSION changes when split.py's rules change, so an upgrade re-splits
    return {"embed_headings": bool(getattr(settings, "embed_headings", True)), "splitter": SPLITTER_VERSION,
            "tokenizer": TOKENIZER_VERSION, "chunk_chars_en": getattr(settings, "chunk_chars_en", None)}

