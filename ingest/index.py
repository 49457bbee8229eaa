"""Where an ingested folder lives: Chroma (vectors + text), a keyword index, a manifest.

Layout under ``<data_dir>/indexes/<folder-name>-<hash>/``::

    chroma/              PersistentClient data (unless a Chroma server is used)
    snapshots/gen-N/     chunks.json (every chunk + its tokens), bm25/ (bm25s over words),
                         bm25-chars/ (over Chinese character n-grams) and vectors.npy
                         (the chunks' embeddings, row by row: local readers never open Chroma)
    manifest.json        files -> size, mtime, sha256, chunk ids; the live snapshot;
                         the embedding model; written last, atomically
    write.lock           held by the one ingest allowed at a time

Readers load the manifest, then the snapshot it names: while an ingest runs they
answer from the old snapshot, after it from the new one, never from a mix. With a
local index the dense side searches the snapshot's vectors.npy (Chroma's
PersistentClient is single-process: only the ingest holding write.lock opens it);
with a Chroma server, readers query the server and keep only hits whose ids belong
to their snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import UserError

from .split import Chunk, HeadedText

MANIFEST_VERSION = 1
COLLECTION = "chunks"
VECTORS_FILE = "vectors.npy"


def index_dir_for(data_dir: Path, notes_dir: Path) -> Path:
    notes_dir = Path(notes_dir).resolve()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", notes_dir.name)[:40] or "notes"
    digest = hashlib.sha1(str(notes_dir).encode("utf-8")).hexdigest()[:10]
    return Path(data_dir) / "indexes" / f"{slug}-{digest}"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class StoredChunk(HeadedText):
    id: str
    file: str
    line_start: int
    line_end: int
    text: str
    clean: str
    heading: list[str]
    kind: str
    text_hash: str
    tokens: list[str] = field(default_factory=list)
    embed_headings: bool = True
    section: int = 0  # which section of its file (see Chunk.section); 0 in indexes written before it was kept

    @classmethod
    def from_chunk(cls, c: Chunk, tokens: list[str] | None = None, embed_headings: bool = True) -> "StoredChunk":
        """A chunk as stored. Its id covers the text that is embedded, so a change of
        what is embedded (e.g. headings on or off) gives new ids and new vectors."""
        from .keywords import tokenize

        body = c.embed_text if embed_headings else (c.clean or c.text)
        text_hash = hashlib.sha1(body.encode("utf-8")).hexdigest()[:16]
        cid = hashlib.sha1(f"{c.id}:{text_hash}".encode("utf-8")).hexdigest()[:20]
        if tokens is None:
            tokens = tokenize(body)
        return cls(cid, c.file, c.line_start, c.line_end, c.text, c.clean, list(c.heading), c.kind, text_hash,
                   tokens, embed_headings, c.section)

    def metadata(self) -> dict[str, Any]:
        return {"file": self.file, "line_start": self.line_start, "line_end": self.line_end,
                "text_hash": self.text_hash, "kind": self.kind, "heading": self.heading_path}


# --- Chroma --------------------------------------------------------------------------

def chroma_client(index_dir: Path, chroma_url: str | None = None):
    """A Chroma client: embedded PersistentClient, or HttpClient for ``chroma run``."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    cs = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if chroma_url:
        from urllib.parse import urlparse

        u = urlparse(chroma_url)
        with chroma_errors(chroma_url):
            return chromadb.HttpClient(host=u.hostname or "localhost", port=u.port or 8000,
                                       ssl=u.scheme == "https", settings=cs)
    try:
        return chromadb.PersistentClient(path=str(index_dir / "chroma"), settings=cs)
    except Exception as exc:  # noqa: BLE001 - chromadb raises its own kinds; say which file and what to do
        raise local_store_error(index_dir, exc) from None


def _low_on_space(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < 4 * 2**20
    except OSError:
        return False


def write_fault(index_dir: Path, exc: BaseException) -> Exception | None:
    """The one line for an exception raised while an ingest writes, when it is a fault of
    the disk (full, read-only) or of the local Chroma store; None for anything else."""
    import errno as _errno
    import sqlite3

    if isinstance(exc, UserError):
        return None
    if isinstance(exc, OSError) and exc.errno in (_errno.ENOSPC, _errno.EDQUOT, _errno.EROFS, _errno.EACCES,
                                                   _errno.EPERM):
        return local_store_error(index_dir, exc, writing=True)
    if isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("chromadb"):
        return local_store_error(index_dir, exc, writing=True)
    return None


def local_store_error(index_dir: Path, exc: BaseException, writing: bool = False) -> Exception:
    """The one line for a local Chroma store that cannot be opened: a file that is not a
    database says `--rebuild` rebuilds it; a full or read-only disk says so."""
    import errno as _errno

    db = index_dir / "chroma" / "chroma.sqlite3"
    text = _one_line(exc)
    low = text.lower()
    if isinstance(exc, OSError) and exc.errno in (_errno.ENOSPC, _errno.EDQUOT) or "database or disk is full" in low \
            or "no space left" in low:
        return UserError(f"cannot write the index in {index_dir} (no space left on the device): free some disk "
                         f"space and run `assistant ingest` again; the previous index is unchanged")
    if isinstance(exc, OSError) and exc.errno in (_errno.EROFS, _errno.EACCES, _errno.EPERM) \
            or "readonly" in low or "read-only" in low:
        return UserError(f"cannot write the index in {index_dir} ({text}): make the data folder writable or "
                         f"choose another with --data-dir; nothing was changed")
    if writing and _low_on_space(index_dir):  # chromadb says "Error in compaction" and the like
        return UserError(f"cannot write the index in {index_dir} ({type(exc).__name__}: {text[:120]}; the disk is "
                         f"full): free some disk space and run `assistant ingest` again; the previous index is "
                         f"unchanged")
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return CorruptIndexError(f"the index file {db} is not a database: `assistant ingest --rebuild` "
                                 f"rebuilds it from the notes (they are untouched)")
    return CorruptIndexError(f"the Chroma store in {db.parent} cannot be opened ({type(exc).__name__}: {text}): "
                             f"`assistant ingest --rebuild` rebuilds it from the notes")


def release_chroma(index_dir: Path, chroma_url: str | None = None) -> None:
    """Close this process's PersistentClient of the index (Chroma keeps one per path).

    An ingest calls this before it lets go of the write lock: a client left open would be
    a second opener of the store while the next ingest (maybe another process) writes,
    and would later write from its stale in-memory state. Nothing to do for a server.
    """
    if chroma_url:
        return
    try:
        from chromadb.api.client import SharedSystemClient

        path = str(index_dir / "chroma")
        system = SharedSystemClient._identifier_to_system.pop(path, None)
        SharedSystemClient._identifier_to_refcount.pop(path, None)
        if system is not None:
            system.stop()
    except Exception:  # noqa: BLE001 - private API of chromadb==1.5.9; closing is best effort
        pass


@contextmanager
def chroma_errors(chroma_url: str | None):
    """Turn "the Chroma server is not there" into one line saying what to do."""
    if not chroma_url:
        yield
        return
    try:
        yield
    except Exception as exc:
        import httpx

        from .errors import ChromaUnavailableError, UserError

        if isinstance(exc, UserError):
            raise
        if isinstance(exc, (httpx.TransportError, ConnectionError)) or "Could not connect to a Chroma server" in str(exc):
            raise ChromaUnavailableError(
                f"cannot reach the Chroma server at {chroma_url}: start it with "
                f"`chroma run --path DIR --port PORT`, or drop --chroma-url to use the local index") from None
        raise


def collection_name(index_dir: Path, chroma_url: str | None) -> str:
    # one server may hold many folders' indexes: name the collection after the folder
    return f"{COLLECTION}-{index_dir.name}"[:60] if chroma_url else COLLECTION


def get_collection(client, name: str):
    # our own embeddings always: Chroma's default embedding function downloads a model
    return client.get_or_create_collection(name=name, embedding_function=None,
                                           metadata={"hnsw:space": "cosine"})


# --- manifest and snapshots ----------------------------------------------------------

@dataclass
class Manifest:
    notes_dir: str
    embed_model: str
    chunk_chars: int
    snapshot: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = MANIFEST_VERSION
    options: dict[str, Any] = field(default_factory=dict)  # split/embed options that shaped the chunks
    skipped: dict[str, str] | None = None  # file -> why it is not indexed (None: written before this was kept)

    @classmethod
    def load(cls, index_dir: Path) -> "Manifest | None":
        p = index_dir / "manifest.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CorruptIndexError(f"the index manifest {p} is unreadable ({_one_line(exc)})") from None
        problem = _manifest_problem(data)
        if problem == "version":
            raise CorruptIndexError(f"the index manifest {p} was written by another version")
        if problem:
            raise CorruptIndexError(f"the index manifest {p} is damaged ({problem})")
        return cls(**data)

    def save(self, index_dir: Path) -> None:
        _atomic_write(index_dir / "manifest.json", json.dumps(asdict(self), ensure_ascii=False))


class CorruptIndexError(UserError):
    """An index file that is not what we wrote. Readers say to run `assistant ingest
    --rebuild`; an ingest rebuilds from the notes and never needs the broken file."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _manifest_problem(data: Any) -> str | None:
    """What is wrong with the shape of a parsed manifest, or None."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if data.get("version") != MANIFEST_VERSION:
        return "version"
    allowed = {f for f in Manifest.__dataclass_fields__}
    if set(data) - allowed:
        return f"unknown fields {sorted(set(data) - allowed)[:3]}"
    for key, kind in (("notes_dir", str), ("embed_model", str), ("chunk_chars", int)):
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            return f"{key} missing or not a {kind.__name__}"
    if not (data.get("snapshot") is None or isinstance(data.get("snapshot"), str)):
        return "snapshot is not a string"
    if data.get("snapshot") and ("/" in data["snapshot"] or "\\" in data["snapshot"] or data["snapshot"].startswith(".")):
        return "snapshot is not a snapshot name"
    if not isinstance(data.get("options", {}), dict):
        return "options is not an object"
    files = data.get("files", {})
    if not isinstance(files, dict):
        return "files is not an object"
    for rel, meta in files.items():
        if not isinstance(meta, dict):
            return f"the entry of {rel!r} is not an object"
        for key in ("size", "mtime_ns"):
            if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool):
                return f"the {key} of {rel!r} is not a number"
        if not isinstance(meta.get("chunks", []), list) or not all(isinstance(c, str) for c in meta.get("chunks", [])):
            return f"the chunks of {rel!r} are not a list of ids"
        if not isinstance(meta.get("sha256", ""), (str, type(None))):
            return f"the sha256 of {rel!r} is not a string"
    return None


CHARS_BM25 = "bm25-chars"


def char_index_tokens(chunks: list[StoredChunk]) -> list[list[str]]:
    """The character index's documents (see :func:`ingest.keywords.char_ngrams`)."""
    from .keywords import char_ngrams

    return [char_ngrams(c.embed_text) or ["\x00"] for c in chunks]


def write_snapshot(index_dir: Path, chunks: list[StoredChunk], name: str, vectors=None, sentences=None) -> None:
    """Write chunks + BM25 (+ the chunks' vectors, + the sentence vectors: an
    ``ingest.sentence_index.SentenceVectors``) into ``snapshots/<name>`` (a new folder, never in place).

    ``vectors`` (row i is the embedding of chunks[i]) lets readers of the local index search
    without opening Chroma's PersistentClient, which is not safe beside a writing process:
    measured with chromadb 1.5.9, readers that open the store while an ingest writes fail with
    "Error finding id", segfault, or grow link_lists.bin without bound (77 GB in one test).
    """
    import bm25s

    final = index_dir / "snapshots" / name
    tmp = index_dir / "snapshots" / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "chunks.json", "w", encoding="utf-8") as f:
        # vars(), not asdict(): asdict deep-copies every token list (20 s of 30 for 18k chunks)
        json.dump([vars(c) for c in chunks], f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    if chunks:
        bm = bm25s.BM25()
        bm.index([c.tokens or ["\x00"] for c in chunks], show_progress=False)
        bm.save(str(tmp / "bm25"), show_progress=False)
        chars = bm25s.BM25()
        chars.index(char_index_tokens(chunks), show_progress=False)
        chars.save(str(tmp / CHARS_BM25), show_progress=False)
    if vectors is not None:
        import numpy as np

        arr = np.asarray(vectors, dtype=np.float32)
        arr = arr.reshape(len(chunks), -1) if len(chunks) else arr.reshape(0, 0)
        with open(tmp / VECTORS_FILE, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
    if sentences is not None:
        sentences.save(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def load_snapshot_vectors(index_dir: Path, name: str, n: int, mmap: bool = False):
    """The snapshot's vectors (float32, one row per chunk), or None if it has none (an index
    written before vectors were kept) or they do not match its ``n`` chunks."""
    import numpy as np

    p = index_dir / "snapshots" / name / VECTORS_FILE
    try:
        arr = np.load(p, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError):  # missing, torn or empty
        return None
    if arr.ndim != 2 or arr.shape[0] != n:
        return None
    return arr


def load_snapshot_chunks(index_dir: Path, name: str) -> list[StoredChunk]:
    p = index_dir / "snapshots" / name / "chunks.json"
    try:
        with open(p, encoding="utf-8") as f:
            rows = json.load(f)
        if not isinstance(rows, list):
            raise TypeError(f"a JSON {type(rows).__name__}, not a list")
        chunks = [StoredChunk(**d) for d in rows]
        for c in chunks:
            if not (isinstance(c.id, str) and isinstance(c.file, str) and isinstance(c.text, str)
                    and isinstance(c.clean, str) and isinstance(c.line_start, int) and isinstance(c.line_end, int)
                    and isinstance(c.heading, list) and isinstance(c.tokens, list) and isinstance(c.text_hash, str)
                    and all(isinstance(x, str) for x in c.heading) and all(isinstance(x, str) for x in c.tokens)
                    and isinstance(c.section, int) and isinstance(c.kind, str)):
                raise TypeError(f"a chunk of the wrong shape ({c.id!r})")
        return chunks
    except FileNotFoundError:
        raise CorruptIndexError(f"snapshot {name} is missing from {index_dir}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptIndexError(f"the index file {p} is unreadable ({_one_line(exc)})") from None


def prune_snapshots(index_dir: Path, keep: Iterable[str]) -> None:
    keep = set(keep)
    root = index_dir / "snapshots"
    if not root.exists():
        return
    for d in root.iterdir():
        if d.name not in keep:
            shutil.rmtree(d, ignore_errors=True)


def next_snapshot_name(current: str | None) -> str:
    n = int(current.split("-")[1]) + 1 if current and current.startswith("gen-") else 1
    return f"gen-{n:06d}"


def current_pointer(data_dir: Path) -> Path:
    return Path(data_dir) / "current.json"


def remember_notes_dir(data_dir: Path, notes_dir: Path) -> None:
    _atomic_write(current_pointer(data_dir), json.dumps({"notes_dir": str(Path(notes_dir).resolve())}))


def last_notes_dir(data_dir: Path) -> Path | None:
    """The folder ingested last, or None before any ingest. A pointer file that is not what
    we wrote is a CorruptIndexError: an `assistant ingest --rebuild NOTES_DIR` rewrites it."""
    p = current_pointer(data_dir)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CorruptIndexError(f"the pointer file {p} is unreadable ({_one_line(exc)}): "
                                f"run `assistant ingest --rebuild NOTES_DIR` to rebuild it") from None
    if not isinstance(data, dict) or not isinstance(data.get("notes_dir"), str) or not data["notes_dir"] \
            or "\x00" in data["notes_dir"]:
        raise CorruptIndexError(f"the pointer file {p} is damaged (not {{\"notes_dir\": PATH}}): "
                                f"run `assistant ingest --rebuild NOTES_DIR` to rebuild it")
    return Path(data["notes_dir"])


# --- which notes folder, which embedding model ----------------------------------------

E5_NAMES = ("e5", "embedded", "multilingual-e5-small")  # what --embed accepts for the bundled model


def embedder_id(choice: str) -> str:
    """The name an index records for the embedding model that built it."""
    if choice in E5_NAMES:
        return "e5:multilingual-e5-small-q4"
    return choice


def notes_folder(data_dir: Path, given: Path | str | None = None, configured: Path | str | None = None) -> Path | None:
    """The one rule for "which notes folder": the one given (a flag, an argument), else the
    configured one (``notes_dir``), else the last one ingested; None when there is none.
    The path is as given (``~`` expanded): resolve it to compare or to show it."""
    chosen = given or configured or last_notes_dir(data_dir)
    return Path(chosen).expanduser() if chosen else None
