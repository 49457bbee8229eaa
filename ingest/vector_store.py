"""The vectors of an ingest run: chunk vectors stored in Chroma (the durable store a
killed run resumes from), the snapshot's copy of them, and the sentence vectors.

Every function embeds through one :class:`Model`, which builds the embedding model from
its factory only when something needs embedding (an unchanged folder never loads it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .index import Manifest, StoredChunk, load_snapshot_vectors
from .sentence_index import SentenceVectors

if TYPE_CHECKING:
    from .plan import Progress


class Counts(Protocol):
    """What the run counts here (``ingest.pipeline.IngestSummary`` has it)."""

    chunks_embedded: int
    chunks_reused: int
    sentences_embedded: int


EMBED_BATCH = 32
WRITE_BATCH = 256


class Model:
    """The run's embedding model: ``embedder`` itself, or built by calling it (a factory)
    on first use."""

    def __init__(self, embedder: Any):
        self._embedder = embedder

    def get(self):
        if self._embedder is None:
            raise TypeError("run_ingest needs an embedder (or make_embedder) to embed new text")
        if not hasattr(self._embedder, "get_text_embedding_batch"):
            self._embedder = self._embedder()  # a factory: build the model only now that there is work for it
        return self._embedder


def sentence_vectors(chunks: list[StoredChunk], index_dir: Path, old: Manifest | None, old_list: list[StoredChunk],
                     model: Model, progress: Progress, summary: Counts) -> SentenceVectors:
    """The sentence vectors of the new snapshot (:mod:`ingest.sentence_index`): the previous
    snapshot's where the sentence is the same, the rest embedded now."""
    previous = None
    if old and old.snapshot:
        previous = SentenceVectors.load(index_dir / "snapshots" / old.snapshot, len(old_list), keys=True)
    out, summary.sentences_embedded = SentenceVectors.build(
        chunks, lambda texts: model.get().get_text_embedding_batch(texts), previous,
        on_start=lambda n: progress.stage("embedding sentences", n), on_batch=progress.advance)
    return out


def delete_stale(col, stale_ids: set[str]) -> int:
    """Chroma entries no manifest points to any more (this run's leftovers, or a killed run's)."""
    stale = list(stale_ids)
    for i in range(0, len(stale), 5000):
        col.delete(ids=stale[i:i + 5000])
    return len(stale)


def all_ids(col) -> list[str]:
    ids: list[str] = []
    offset = 0
    while True:
        batch = col.get(include=[], limit=20000, offset=offset)["ids"]
        ids.extend(batch)
        if len(batch) < 20000:
            return ids
        offset += len(batch)


def snapshot_vectors(col, chunks: list[StoredChunk], known: dict[str, Any], index_dir: Path,
                      old: Manifest | None, old_list: list[StoredChunk]):
    """Row i = the embedding of ``chunks[i]``, for the snapshot: from this run, else the
    previous snapshot, else Chroma (chunks a killed run stored, or an index without vectors.npy)."""
    import numpy as np

    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    if old and old.snapshot and any(c.text_hash not in known for c in chunks):
        prev = load_snapshot_vectors(index_dir, old.snapshot, len(old_list))
        if prev is not None:
            for c, v in zip(old_list, prev):
                known.setdefault(c.text_hash, v)
    ask = [c.id for c in chunks if c.text_hash not in known]
    for i in range(0, len(ask), 500):
        got = col.get(ids=ask[i:i + 500], include=["embeddings", "metadatas"])
        for meta, emb in zip(got["metadatas"], got["embeddings"]):
            known.setdefault(meta["text_hash"], emb)
    lost = [c for c in chunks if c.text_hash not in known]
    if lost:  # cannot happen after store_missing; never publish a snapshot with holes
        raise RuntimeError(f"{len(lost)} chunks have no vector in Chroma, e.g. {lost[0].file}:{lost[0].line_start}")
    return np.asarray([known[c.text_hash] for c in chunks], dtype=np.float32)


def store_missing(col, missing: list[StoredChunk], model: Model, progress: Progress,
                   summary: Counts, hook) -> dict[str, Any]:
    """Upsert ``missing`` into Chroma, embedding what no stored chunk already has; returns
    text_hash -> vector for every chunk it stored."""
    # reuse embeddings of identical text already stored (renamed files, repeated passages)
    reuse: dict[str, list[float]] = {}
    hashes = sorted({c.text_hash for c in missing})
    for i in range(0, len(hashes), 500):
        got = col.get(where={"text_hash": {"$in": hashes[i:i + 500]}}, include=["embeddings", "metadatas"])
        for meta, emb in zip(got["metadatas"], got["embeddings"]):
            reuse.setdefault(meta["text_hash"], list(emb))
    to_embed: dict[str, str] = {}
    for c in missing:
        if c.text_hash not in reuse:
            to_embed.setdefault(c.text_hash, c.embed_text)

    pending = [c for c in missing if c.text_hash in reuse]
    summary.chunks_reused = len(pending)
    if pending:
        upsert(col, pending, reuse)
    progress.stage("embedding chunks", len(to_embed))
    items = list(to_embed.items())
    waiting = [c for c in missing if c.text_hash not in reuse]
    by_hash: dict[str, list[StoredChunk]] = {}
    for c in waiting:
        by_hash.setdefault(c.text_hash, []).append(c)
    for i in range(0, len(items), EMBED_BATCH):
        batch = items[i:i + EMBED_BATCH]
        vectors = model.get().get_text_embedding_batch([t for _, t in batch])
        for (h, _), v in zip(batch, vectors):
            reuse[h] = v
        ready = [c for h, _ in batch for c in by_hash[h]]
        upsert(col, ready, reuse)
        summary.chunks_embedded += len(ready)
        progress.advance(len(batch))
        hook("embedded-batch")
    return reuse


def upsert(col, chunks: list[StoredChunk], vectors: dict[str, list[float]]) -> None:
    for i in range(0, len(chunks), WRITE_BATCH):
        part = chunks[i:i + WRITE_BATCH]
        col.upsert(ids=[c.id for c in part], embeddings=[vectors[c.text_hash] for c in part],
                   documents=[c.text for c in part], metadatas=[c.metadata() for c in part])
