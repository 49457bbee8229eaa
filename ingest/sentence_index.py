"""Sentence vectors: every prose sentence of a snapshot embedded on its own.

A question asks for one fact; a 400-800 character chunk holds several, and its one
vector is the average of them all, so e5 often ranks the chunk that holds the fact
below chunks that are about the topic as a whole. Each prose sentence (with its heading
path, as chunks are embedded) gets a vector of its own at ingest, and the retriever adds
a ranked list of chunks by their best sentence ("small-to-big" retrieval). Measured on
the tune part of every suite (benchmarks/README.md) before it was kept.

The vectors live in the snapshot folder (``sentence-vectors.npy``, unit length, which
readers memory-map like the chunk vectors; ``sentence-owner.npy``, the row of the chunk
each belongs to; ``sentence-keys.npy``, a hash of the embedded text), written with the
snapshot and never in place. A new ingest reuses the previous snapshot's vectors by that hash and
embeds only new sentences; a killed run loses nothing but its own work. LlamaIndex's
``SentenceWindowNodeParser`` makes nodes of sentences, but would make every sentence a
node of the store; here the chunk stays the unit that is stored, cited and shown.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from .split import clean_markup
from .text import prose_sentence_spans

SENTENCES_FILE = "sentence-vectors.npy"
OWNER_FILE = "sentence-owner.npy"
KEYS_FILE = "sentence-keys.npy"
MIN_CHARS = 8  # shorter pieces ("例如：", a lone label) say nothing on their own
BATCH = 64


def sentence_texts(chunk: Any) -> list[str]:
    """What is embedded for each prose sentence of ``chunk``: its heading path, then the
    sentence without markup (code chunks have none)."""
    if chunk.kind == "code":
        return []
    head = chunk.heading_path if chunk.heading and getattr(chunk, "embed_headings", True) else ""
    out = []
    for a, b in prose_sentence_spans(chunk.text):
        plain = clean_markup(chunk.text[a:b]).strip()
        if len(plain) >= MIN_CHARS:
            out.append(f"{head}\n{plain}" if head else plain)
    return out


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class SentenceVectors:
    """Rows of sentence vectors (unit length), ``owner[i]`` = the chunk row sentence i belongs to."""

    def __init__(self, vectors: Any, owner: Any, keys: Any):
        self.vectors, self.owner, self.keys = vectors, owner, keys

    def __len__(self) -> int:
        return len(self.owner)

    @classmethod
    def build(cls, chunks: Sequence[Any], embed: Callable[[list[str]], list[list[float]]],
              previous: "SentenceVectors | None" = None, on_start: Callable[[int], None] | None = None,
              on_batch: Callable[[int], None] | None = None) -> tuple["SentenceVectors", int]:
        """Vectors for every sentence of ``chunks``: reused from ``previous`` by text, else
        embedded by ``embed`` (called only when there is something new, after
        ``on_start(how many)``); returns the vectors and how many were embedded."""
        import numpy as np

        texts, owner = [], []
        for row, c in enumerate(chunks):
            for t in sentence_texts(c):
                texts.append(t)
                owner.append(row)
        keys = [_key(t) for t in texts]
        known: dict[str, Any] = {}
        if previous is not None and previous.keys is not None:
            known = {str(k): previous.vectors[i] for i, k in enumerate(previous.keys)}
        todo = {k: t for k, t in zip(keys, texts) if k not in known}
        items = list(todo.items())
        if items and on_start:
            on_start(len(items))
        for i in range(0, len(items), BATCH):
            batch = items[i:i + BATCH]
            for (k, _), v in zip(batch, embed([t for _, t in batch])):
                v = np.asarray(v, dtype=np.float32)
                known[k] = v / (np.linalg.norm(v) or 1.0)
            if on_batch:
                on_batch(len(batch))
        dim = len(next(iter(known.values()))) if known else 0
        vectors = np.stack([known[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, dim), np.float32)
        return cls(vectors, np.asarray(owner, dtype=np.int32), np.asarray(keys, dtype="U16")), len(items)

    def save(self, folder: Path) -> None:
        import numpy as np

        for name, arr in ((KEYS_FILE, self.keys), (OWNER_FILE, self.owner), (SENTENCES_FILE, self.vectors)):
            with open(folder / name, "wb") as f:
                np.save(f, arr)
                f.flush()
                os.fsync(f.fileno())

    @classmethod
    def load(cls, folder: Path, chunks: int, keys: bool = False) -> "SentenceVectors | None":
        """The snapshot's sentence vectors (memory-mapped; ``keys`` too for an ingest that
        reuses them), or None when it has none (an index written before they were kept)
        or they do not fit its ``chunks`` rows."""
        import numpy as np

        try:
            vectors = np.load(folder / SENTENCES_FILE, mmap_mode="r", allow_pickle=False)
            owner = np.load(folder / OWNER_FILE, allow_pickle=False)
            hashes = np.load(folder / KEYS_FILE, allow_pickle=False) if keys else None
        except (OSError, ValueError, EOFError):  # missing, torn or empty
            return None
        n = len(owner)
        if vectors.ndim != 2 or vectors.shape[0] != n or owner.ndim != 1 or (hashes is not None and len(hashes) != n) \
                or (n and (int(owner.min()) < 0 or int(owner.max()) >= chunks)):
            return None
        return cls(vectors, owner, hashes)

    def search(self, query_vector: Sequence[float], top_k: int) -> list[tuple[int, float]]:
        """Chunk rows by the cosine of their best sentence, best first: ``(row, cosine)``."""
        import numpy as np

        if not len(self):
            return []
        q = np.asarray(query_vector, dtype=np.float32)
        if q.shape[0] != self.vectors.shape[1]:
            return []  # another embedding model (the chunk search says so)
        sims = self.vectors @ (q / (np.linalg.norm(q) or 1.0))
        # the best sentence per chunk: a chunk holds few sentences, so look a little deeper
        k = min(len(sims), top_k * 8)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        best: dict[int, float] = {}
        for i in top:
            row = int(self.owner[i])
            if row not in best:
                best[row] = float(sims[i])
                if len(best) == top_k:
                    break
        return list(best.items())
