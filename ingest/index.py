"""Where an ingested folder lives: Chroma (vectors + text), a keyword index, a manifest.

Layout under ``<data_dir>/indexes/<folder-name>-<hash>/``::

    chroma/              PersistentClient data (unless a Chroma server is used)
    snapshots/gen-N/     chunks.json (every chunk + its tokens) and bm25/ (bm25s)
    manifest.json        files -> size, mtime, sha256, chunk ids; the live snapshot;
                         the embedding model; written last, atomically
    write.lock           held by the one ingest allowed at a time

Readers load the manifest, then the snapshot it names, and keep only Chroma hits
whose ids belong to that snapshot: while an ingest runs they answer from the old
snapshot, after it from the new one, never from a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .split import Chunk

MANIFEST_VERSION = 1
COLLECTION = "chunks"


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
class StoredChunk:
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

    @classmethod
    def from_chunk(cls, c: Chunk, tokens: list[str]) -> "StoredChunk":
        return cls(c.id, c.file, c.line_start, c.line_end, c.text, c.clean, list(c.heading), c.kind, c.text_hash, tokens)

    @property
    def heading_path(self) -> str:
        return " > ".join(self.heading)

    @property
    def embed_text(self) -> str:
        body = self.clean or self.text
        return f"{self.heading_path}\n{body}" if self.heading else body

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
        return chromadb.HttpClient(host=u.hostname or "localhost", port=u.port or 8000,
                                   ssl=u.scheme == "https", settings=cs)
    return chromadb.PersistentClient(path=str(index_dir / "chroma"), settings=cs)


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

    @classmethod
    def load(cls, index_dir: Path) -> "Manifest | None":
        p = index_dir / "manifest.json"
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CorruptIndexError(f"the index manifest {p} is unreadable ({exc})") from None
        if data.get("version") != MANIFEST_VERSION:
            raise CorruptIndexError(f"the index at {index_dir} was written by another version")
        return cls(**data)

    def save(self, index_dir: Path) -> None:
        _atomic_write(index_dir / "manifest.json", json.dumps(asdict(self), ensure_ascii=False))


class CorruptIndexError(Exception):
    pass


def write_snapshot(index_dir: Path, chunks: list[StoredChunk], name: str) -> None:
    """Write chunks + BM25 into ``snapshots/<name>`` (a new folder, never in place)."""
    import bm25s

    final = index_dir / "snapshots" / name
    tmp = index_dir / "snapshots" / (name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(tmp / "chunks.json", "w", encoding="utf-8") as f:
        json.dump([asdict(c) for c in chunks], f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    if chunks:
        bm = bm25s.BM25()
        bm.index([c.tokens or ["\x00"] for c in chunks], show_progress=False)
        bm.save(str(tmp / "bm25"), show_progress=False)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def load_snapshot_chunks(index_dir: Path, name: str) -> list[StoredChunk]:
    p = index_dir / "snapshots" / name / "chunks.json"
    try:
        with open(p, encoding="utf-8") as f:
            return [StoredChunk(**d) for d in json.load(f)]
    except FileNotFoundError:
        raise CorruptIndexError(f"snapshot {name} is missing from {index_dir}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CorruptIndexError(f"snapshot {name} in {index_dir} is unreadable ({exc})") from None


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
    try:
        return Path(json.loads(current_pointer(data_dir).read_text())["notes_dir"])
    except (OSError, ValueError, KeyError):
        return None
