"""The read side of an index: one consistent view of an ingested folder, and the searches over it.

:mod:`ingest.index` writes a snapshot (chunks, the two BM25 indexes, the chunks' vectors) and
the manifest that names it; :class:`IndexSnapshot` reads the snapshot the manifest names, so a
reader sees the old index or the new one, never a mix.

The dense side is one of two backends, chosen once when the snapshot opens:
:class:`VectorFileSearch` scans the snapshot's own ``vectors.npy`` (a local index) and
:class:`ChromaSearch` asks Chroma (a Chroma server, or a local index written before vectors
were kept). Both searches, and the keyword one, return plain hits: ``(chunk, score)`` pairs,
best first. The LlamaIndex retrievers over them are in :mod:`assistant.retrieve`.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .errors import IndexMismatchError, NoIndexError, UserError
from .index import (CHARS_BM25, VECTORS_FILE, CorruptIndexError, Manifest, StoredChunk, char_index_tokens, chroma_client,
                    chroma_errors, collection_name, embedder_id, get_collection, index_dir_for, load_snapshot_chunks,
                    load_snapshot_vectors, notes_folder)
from .sentence_index import SentenceVectors
from .text import text_language

Hit = tuple[StoredChunk, float]  # a chunk and its score in one ranked list


class SnapshotSettings(Protocol):
    """What a reader reads of the settings (``assistant.settings.Settings`` has it all)."""

    data_dir: Path
    notes_dir: Path | None
    embed: str
    chroma_url: str | None


def text_key(c: StoredChunk) -> str:
    """The key under which identical passages are one: the clean text, white space folded."""
    return re.sub(r"\s+", " ", c.clean or c.text).strip()


class IndexSnapshot:
    """One consistent view of an ingested folder: manifest, chunks, BM25, vectors or Chroma.

    The embedding model (for the dense side's questions) is ``embedder``, or the one
    ``make_embedder()`` returns on first use."""

    def __init__(self, settings: SnapshotSettings, notes_dir: Path | None = None, embedder: Any = None,
                 make_embedder: Callable[[], Any] | None = None):
        self.settings = settings
        notes = notes_folder(settings.data_dir, notes_dir, settings.notes_dir)
        if notes is None:
            raise NoIndexError("no notes have been ingested yet: run `assistant ingest NOTES_DIR` first")
        self.notes_dir = Path(notes).expanduser().resolve()
        self.index_dir = index_dir_for(settings.data_dir, self.notes_dir)
        try:
            manifest = Manifest.load(self.index_dir)
        except CorruptIndexError as exc:
            raise NoIndexError(f"{exc}: run `assistant ingest --rebuild {self.notes_dir}`") from None
        if manifest is None or not manifest.snapshot:
            raise NoIndexError(f"{self.notes_dir} has not been ingested yet: run `assistant ingest {self.notes_dir}`")
        if manifest.embed_model != embedder_id(settings.embed):
            raise IndexMismatchError(
                f"the index was built with {manifest.embed_model}, but {embedder_id(settings.embed)} is configured: "
                f"use --embed {manifest.embed_model.split(':')[0] if manifest.embed_model.startswith('e5') else manifest.embed_model}"
                f" or run `assistant ingest --rebuild`")
        self.manifest = manifest
        self.manifest_mtime = (self.index_dir / "manifest.json").stat().st_mtime_ns
        try:
            self.chunks = load_snapshot_chunks(self.index_dir, manifest.snapshot)
        except CorruptIndexError as exc:
            raise NoIndexError(f"{exc}: run `assistant ingest --rebuild {self.notes_dir}`") from None
        self.by_id = {c.id: c for c in self.chunks}
        self._bm25 = None
        self._bm25_chars = None
        self._collection = None
        # opened now (a memory map): the file stays readable even if a later ingest prunes it
        raw_vectors = None
        if not settings.chroma_url and self.chunks:
            vec_file = self.index_dir / "snapshots" / manifest.snapshot / VECTORS_FILE
            if vec_file.exists():  # (an index written before vectors were kept has none: Chroma answers)
                raw_vectors = load_snapshot_vectors(self.index_dir, manifest.snapshot, len(self.chunks), mmap=True)
                if raw_vectors is None:
                    raise NoIndexError(f"the index file {vec_file} is unreadable: "
                                       f"run `assistant ingest --rebuild {self.notes_dir}`")
        # opened now too; None for an index written before sentence vectors were kept
        self.sentence_vectors = SentenceVectors.load(self.index_dir / "snapshots" / manifest.snapshot,
                                                     len(self.chunks)) if self.chunks else None
        # the dense side, chosen once
        self.dense: VectorFileSearch | ChromaSearch = (
            VectorFileSearch(self, raw_vectors) if raw_vectors is not None else ChromaSearch(self))
        self._embedder = embedder  # None: make_embedder(), on first use
        self._make_embedder = make_embedder
        self._dupes: dict[str, list[StoredChunk]] | None = None
        self._sections: SectionIndex | None = None
        self._terms = None
        self._language: str | None = None
        self._lock = threading.Lock()

    def is_stale(self) -> bool:
        try:
            return (self.index_dir / "manifest.json").stat().st_mtime_ns != self.manifest_mtime
        except OSError:
            return True

    @property
    def bm25(self):
        """The word index (jieba words and English words)."""
        with self._lock:
            if self._bm25 is None and self.chunks:
                self._bm25 = self._load_bm25("bm25", lambda: [c.tokens or ["\x00"] for c in self.chunks])
            return self._bm25

    @property
    def bm25_chars(self):
        """The Chinese character n-gram index."""
        with self._lock:
            if self._bm25_chars is None and self.chunks:
                self._bm25_chars = self._load_bm25(CHARS_BM25, lambda: char_index_tokens(self.chunks))
            return self._bm25_chars

    def _load_bm25(self, name: str, documents):
        import bm25s

        path = self.index_dir / "snapshots" / self.manifest.snapshot / name
        try:
            return bm25s.BM25.load(str(path), mmap=False, show_progress=False)
        except Exception as exc:  # torn, deleted, or older than this index kind: rebuild from the chunks we hold
            if path.exists():  # an index written before this kind existed has none: rebuild quietly
                import logging

                logging.getLogger(__name__).warning("keyword index %s unreadable (%s); rebuilding in memory",
                                                    name, exc)
            bm = bm25s.BM25()
            bm.index(documents(), show_progress=False)
            return bm

    @property
    def collection(self):
        with self._lock:
            if self._collection is None:
                with chroma_errors(self.settings.chroma_url):
                    client = chroma_client(self.index_dir, self.settings.chroma_url)
                    self._collection = get_collection(client, collection_name(self.index_dir, self.settings.chroma_url))
            return self._collection

    @property
    def embedder(self):
        if self._embedder is None:
            if self._make_embedder is None:
                raise TypeError("IndexSnapshot needs an embedder (or make_embedder) to search by vectors")
            self._embedder = self._make_embedder()
        return self._embedder

    @property
    def sections(self) -> SectionIndex:
        """Each chunk's neighbours in its file (for merging adjacent chunks in the prompt)."""
        with self._lock:
            if self._sections is None:
                self._sections = SectionIndex(self.chunks)
            return self._sections

    @property
    def terms(self) -> dict[str, set[str]]:
        """The notes' own bilingual term table (``ingest.keywords.bilingual_terms``)."""
        with self._lock:
            if self._terms is None:
                from .keywords import bilingual_terms

                self._terms = bilingual_terms(c.clean or c.text for c in self.chunks if c.kind != "code")
            return self._terms

    @property
    def language(self) -> str:
        """``zh`` or ``en``: the language most of the notes' prose is written in."""
        if self._language is None:
            prose = [c.clean or c.text for c in self.chunks if c.kind != "code"]
            self._language = text_language("".join(prose[:: max(1, len(prose) // 400)]))
        return self._language

    def duplicates_of(self, c: StoredChunk) -> list[StoredChunk]:
        """Other chunks whose text is the same passage (a note copied into several files)."""
        if self._dupes is None:
            groups: dict[str, list[StoredChunk]] = {}
            for x in self.chunks:
                groups.setdefault(text_key(x), []).append(x)
            self._dupes = {k: v for k, v in groups.items() if len(v) > 1}
        return [x for x in self._dupes.get(text_key(c), []) if x.id != c.id]

    # --- the searches -------------------------------------------------------------------

    def keyword_hits(self, tokens: Sequence[str], top_k: int, chars: bool = False, bm25: Any = None) -> list[Hit]:
        """BM25 over the word index (``chars``: the character index; ``bm25``: an index built
        elsewhere over these chunks), best first, positive scores only."""
        bm = bm25 or (self.bm25_chars if chars else self.bm25)
        if bm is None or not tokens:
            return []
        known = [t for t in tokens if t in bm.vocab_dict]
        if not known:
            return []
        k = min(top_k, len(self.chunks))
        docs, scores = bm.retrieve([known], k=k, show_progress=False, return_as="tuple")
        out = []
        for i, s in zip(docs[0], scores[0]):
            if s <= 0:
                continue
            out.append((self.chunks[int(i)], float(s)))
        return out

    def dense_hits(self, query: str, top_k: int, embedding: Sequence[float] | None = None) -> list[Hit]:
        """The chunks nearest the question (``embedding``: its vector, when already known) by
        cosine similarity, from the dense backend."""
        if not self.chunks:
            return []
        return self.dense.search(query, top_k, embedding)

    def sentence_hits(self, embedding: Sequence[float], top_k: int) -> list[Hit]:
        """Chunks by the cosine of their best sentence to the question's vector
        (:mod:`ingest.sentence_index`); empty for an index without sentence vectors."""
        if self.sentence_vectors is None:
            return []
        return [(self.chunks[row], sim) for row, sim in self.sentence_vectors.search(embedding, top_k)]

    def stats(self) -> dict[str, Any]:
        return {"notes_dir": str(self.notes_dir), "index_dir": str(self.index_dir),
                "files": len(self.manifest.files), "chunks": len(self.chunks),
                "embed_model": self.manifest.embed_model, "snapshot": self.manifest.snapshot,
                "vectors": self._vector_stats()}

    def _vector_stats(self) -> str:
        if not self.settings.chroma_url:
            has = (self.index_dir / "snapshots" / self.manifest.snapshot / VECTORS_FILE).exists()
            return "in the snapshot" if has or not self.chunks else "in Chroma (run `assistant ingest` to upgrade)"
        try:
            with chroma_errors(self.settings.chroma_url):
                held = self.collection.count()
        except UserError as exc:
            return str(exc)
        note = "" if held >= len(self.chunks) else ": some are missing, run `assistant ingest` to upload them again"
        return f"Chroma server {self.settings.chroma_url} holds {held} for {len(self.chunks)} chunks{note}"


# --- the two dense backends ---------------------------------------------------------------

class VectorFileSearch:
    """The dense side of a local index: a scan of the snapshot's own vectors (``vectors.npy``).

    Local readers search these instead of opening Chroma's PersistentClient: a second
    process opening the store while an ingest writes gets "Error finding id", segfaults,
    or grows link_lists.bin without bound (measured with chromadb 1.5.9)."""

    label = "snapshot vectors"

    def __init__(self, snap: IndexSnapshot, raw_vectors: Any):
        self.snap = snap
        self._raw_vectors = raw_vectors  # a memory map, normalised on first use
        self._vectors: Any = None
        self._lock = threading.Lock()

    @property
    def vectors(self):
        """The snapshot's vectors, unit length, one row per chunk."""
        with self._lock:
            if self._vectors is None:
                import numpy as np

                v = self._raw_vectors
                norms = np.linalg.norm(v, axis=1, keepdims=True)
                self._vectors = np.ascontiguousarray(v / np.where(norms > 0, norms, 1.0), dtype=np.float32)
                self._raw_vectors = None
            return self._vectors

    def search(self, query: str, top_k: int, embedding: Sequence[float] | None = None) -> list[Hit]:
        import numpy as np

        vecs = self.vectors
        q = embedding or self.snap.embedder.get_query_embedding(query)
        q = np.asarray(q, dtype=np.float32)
        if q.shape[0] != vecs.shape[1]:
            raise IndexMismatchError(f"the index holds {vecs.shape[1]}-dimension vectors but the embedding model "
                                     f"gives {q.shape[0]}: run `assistant ingest --rebuild`")
        sims = vecs @ (q / (np.linalg.norm(q) or 1.0))
        k = min(top_k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [(self.snap.chunks[int(i)], float(sims[i])) for i in top]


class ChromaSearch:
    """The dense side in Chroma, through LlamaIndex's ``ChromaVectorStore``: a Chroma server,
    or a local index written before vectors were kept.

    Chroma hits are kept only when their id belongs to this snapshot, so a concurrent
    ingest never mixes new chunks into an old view. The score is the cosine similarity."""

    label = "Chroma"

    def __init__(self, snap: IndexSnapshot):
        self.snap = snap
        self._retrievers: dict[int, Any] = {}

    def _inner(self, top_k: int):
        if top_k not in self._retrievers:
            from llama_index.core import VectorStoreIndex
            from llama_index.vector_stores.chroma import ChromaVectorStore

            store = ChromaVectorStore(chroma_collection=self.snap.collection)
            index = VectorStoreIndex.from_vector_store(store, embed_model=self.snap.embedder)
            # over-fetch: hits from a newer snapshot are dropped below
            self._retrievers[top_k] = index.as_retriever(similarity_top_k=top_k + 10)
        return self._retrievers[top_k]

    def search(self, query: str, top_k: int, embedding: Sequence[float] | None = None) -> list[Hit]:
        from llama_index.core.schema import QueryBundle

        with chroma_errors(self.snap.settings.chroma_url):
            hits = self._inner(top_k).retrieve(QueryBundle(query, embedding=embedding))
        out = []
        for hit in hits:
            c = self.snap.by_id.get(hit.node.node_id)
            if c is None:
                continue
            # ChromaVectorStore reports exp(-distance); cosine distance = 1 - cos
            cos = 1.0 + math.log(max(hit.score or 1e-9, 1e-9))
            out.append((c, cos))
        return out[:top_k]


# --- sections --------------------------------------------------------------------------

def part_ids(c: StoredChunk) -> list[str]:
    """The ids of the chunks that ``c`` is made of (``assistant.context`` joins neighbours as ``a+b``)."""
    return c.id.split("+")


def _same_section(a: StoredChunk, b: StoredChunk) -> bool:
    return a.file == b.file and a.heading == b.heading and a.section == b.section and a.kind == b.kind


class SectionIndex:
    """Each chunk's previous and next chunk in its file (file order)."""

    def __init__(self, chunks: Sequence[StoredChunk]):
        by_file: dict[str, list[StoredChunk]] = {}
        for c in chunks:
            by_file.setdefault(c.file, []).append(c)
        self._prev: dict[str, StoredChunk] = {}
        self._next: dict[str, StoredChunk] = {}
        for cs in by_file.values():
            cs.sort(key=lambda c: (c.line_start, c.line_end))
            for a, b in zip(cs, cs[1:]):
                self._next[a.id] = b
                self._prev[b.id] = a

    def neighbours(self, c: StoredChunk) -> tuple[StoredChunk | None, StoredChunk | None]:
        """The chunks just before and after ``c`` (its first and last part, when merged)."""
        ids = part_ids(c)
        prev, nxt = self._prev.get(ids[0]), self._next.get(ids[-1])
        return (prev if prev is not None and _same_section(prev, c) else None,
                nxt if nxt is not None and _same_section(nxt, c) else None)
