"""Hybrid retrieval: dense (Chroma) + keyword (BM25 over jieba), fused by rank.

Both sides are LlamaIndex retrievers. The fusion is ours because LlamaIndex's
``QueryFusionRetriever`` has no per-retriever weights in its reciprocal-rank mode
and de-duplicates by node hash, which keeps a passage repeated verbatim in two
files twice; here it appears once and lists every file it stands in.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ingest.index import (
    CorruptIndexError,
    Manifest,
    StoredChunk,
    chroma_client,
    chroma_errors,
    collection_name,
    get_collection,
    index_dir_for,
    load_snapshot_chunks,
    load_snapshot_vectors,
    notes_folder,
)
from ingest.keywords import char_ngrams, tokenize, translate_terms
from ingest.text import HAN_COMPAT_CHAR, text_language

from .errors import IndexMismatchError, NoIndexError


def _node(c: StoredChunk, score: float) -> NodeWithScore:
    meta = {"file": c.file, "line_start": c.line_start, "line_end": c.line_end, "heading": c.heading_path,
            "kind": c.kind}
    return NodeWithScore(node=TextNode(id_=c.id, text=c.text, metadata=meta), score=score)


class IndexSnapshot:
    """One consistent view of an ingested folder: manifest, chunks, BM25, Chroma."""

    def __init__(self, settings: Any, notes_dir: Path | None = None, embedder: Any = None):
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
        from .models import embedder_id

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
        self._vectors: Any = False  # not normalised yet
        # opened now (a memory map): the file stays readable even if a later ingest prunes it
        self._raw_vectors = None
        if not settings.chroma_url and self.chunks:
            from ingest.index import VECTORS_FILE

            vec_file = self.index_dir / "snapshots" / manifest.snapshot / VECTORS_FILE
            if vec_file.exists():  # (an index written before vectors were kept has none: Chroma answers)
                self._raw_vectors = load_snapshot_vectors(self.index_dir, manifest.snapshot, len(self.chunks),
                                                          mmap=True)
                if self._raw_vectors is None:
                    raise NoIndexError(f"the index file {vec_file} is unreadable: "
                                       f"run `assistant ingest --rebuild {self.notes_dir}`")
        self._embedder = embedder  # None: the model settings.embed names, on first use
        self._dupes: dict[str, list[StoredChunk]] | None = None
        self._sections = None
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
                from ingest.index import CHARS_BM25, char_index_tokens

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
    def vectors(self):
        """The snapshot's own vectors, unit length, one row per chunk, for a local index; None
        with a Chroma server (readers query it) or an index written before vectors were kept.

        Local readers search these instead of opening Chroma's PersistentClient: a second
        process opening the store while an ingest writes gets "Error finding id", segfaults,
        or grows link_lists.bin without bound (measured with chromadb 1.5.9)."""
        with self._lock:
            if self._vectors is False:
                v = self._raw_vectors
                if v is not None:
                    import numpy as np

                    norms = np.linalg.norm(v, axis=1, keepdims=True)
                    v = np.ascontiguousarray(v / np.where(norms > 0, norms, 1.0), dtype=np.float32)
                self._vectors = v
                self._raw_vectors = None
            return self._vectors

    @property
    def embedder(self):
        if self._embedder is None:
            from .models import make_embedder

            self._embedder = make_embedder(self.settings.embed, self.settings)
        return self._embedder

    @property
    def sections(self):
        """Each chunk's neighbours in its file (for merging adjacent chunks in the prompt)."""
        with self._lock:
            if self._sections is None:
                from .context import SectionIndex

                self._sections = SectionIndex(self.chunks)
            return self._sections

    @property
    def terms(self) -> dict[str, set[str]]:
        """The notes' own bilingual term table (``ingest.keywords.bilingual_terms``)."""
        with self._lock:
            if self._terms is None:
                from ingest.keywords import bilingual_terms

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
                groups.setdefault(_norm_text(x.clean or x.text), []).append(x)
            self._dupes = {k: v for k, v in groups.items() if len(v) > 1}
        return [x for x in self._dupes.get(_norm_text(c.clean or c.text), []) if x.id != c.id]

    def stats(self) -> dict[str, Any]:
        return {"notes_dir": str(self.notes_dir), "index_dir": str(self.index_dir),
                "files": len(self.manifest.files), "chunks": len(self.chunks),
                "embed_model": self.manifest.embed_model, "snapshot": self.manifest.snapshot,
                "vectors": self._vector_stats()}

    def _vector_stats(self) -> str:
        if not self.settings.chroma_url:
            from ingest.index import VECTORS_FILE

            has = (self.index_dir / "snapshots" / self.manifest.snapshot / VECTORS_FILE).exists()
            return "in the snapshot" if has or not self.chunks else "in Chroma (run `assistant ingest` to upgrade)"
        from .errors import UserError

        try:
            with chroma_errors(self.settings.chroma_url):
                held = self.collection.count()
        except UserError as exc:
            return str(exc)
        note = "" if held >= len(self.chunks) else ": some are missing, run `assistant ingest` to upload them again"
        return f"Chroma server {self.settings.chroma_url} holds {held} for {len(self.chunks)} chunks{note}"



class KeywordRetriever(BaseRetriever):
    """BM25 over jieba + English word tokens, from the snapshot's bm25s index; with
    ``chars=True``, over Chinese character n-grams instead (see ``ingest.keywords.char_ngrams``)."""

    def __init__(self, snap: IndexSnapshot, top_k: int = 30, chars: bool = False, bm25=None, tokenizer=None):
        super().__init__()
        self.snap = snap
        self.top_k = top_k
        self.chars = chars
        self.tokenize = tokenizer or (char_ngrams if chars else tokenize)
        self._own_bm25 = bm25  # an index built in memory with another tokenizer (benchmarks/ablation.py)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        tokens = self.tokenize(query_bundle.query_str)
        bm = self._own_bm25 or (self.snap.bm25_chars if self.chars else self.snap.bm25)
        if bm is None or not tokens:
            return []
        known = [t for t in tokens if t in bm.vocab_dict]
        if not known:
            return []
        k = min(self.top_k, len(self.snap.chunks))
        docs, scores = bm.retrieve([known], k=k, show_progress=False, return_as="tuple")
        out = []
        for i, s in zip(docs[0], scores[0]):
            if s <= 0:
                continue
            out.append(_node(self.snap.chunks[int(i)], float(s)))
        return out


class DenseRetriever(BaseRetriever):
    """Vector search: over the snapshot's vectors for a local index, else in Chroma through
    LlamaIndex's ``ChromaVectorStore`` (a Chroma server, or an index without vectors.npy).

    Chroma hits are kept only when their id belongs to this snapshot, so a concurrent
    ingest never mixes new chunks into an old view. The node's score is the cosine
    similarity.
    """

    def __init__(self, snap: IndexSnapshot, top_k: int = 30):
        super().__init__()
        self.snap = snap
        self.top_k = top_k
        self._retriever = None

    def _inner(self):
        if self._retriever is None:
            from llama_index.core import VectorStoreIndex
            from llama_index.vector_stores.chroma import ChromaVectorStore

            store = ChromaVectorStore(chroma_collection=self.snap.collection)
            index = VectorStoreIndex.from_vector_store(store, embed_model=self.snap.embedder)
            # over-fetch: hits from a newer snapshot are dropped below
            self._retriever = index.as_retriever(similarity_top_k=self.top_k + 10)
        return self._retriever

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if not self.snap.chunks:
            return []
        vecs = self.snap.vectors
        if vecs is not None:
            return self._retrieve_local(query_bundle, vecs)
        with chroma_errors(self.snap.settings.chroma_url):
            hits = self._inner().retrieve(query_bundle)
        out = []
        for hit in hits:
            c = self.snap.by_id.get(hit.node.node_id)
            if c is None:
                continue
            # ChromaVectorStore reports exp(-distance); cosine distance = 1 - cos
            cos = 1.0 + math.log(max(hit.score or 1e-9, 1e-9))
            out.append(_node(c, cos))
        return out[: self.top_k]

    def _retrieve_local(self, query_bundle: QueryBundle, vecs) -> list[NodeWithScore]:
        import numpy as np

        q = query_bundle.embedding or self.snap.embedder.get_query_embedding(query_bundle.query_str)
        q = np.asarray(q, dtype=np.float32)
        if q.shape[0] != vecs.shape[1]:
            raise IndexMismatchError(f"the index holds {vecs.shape[1]}-dimension vectors but the embedding model "
                                     f"gives {q.shape[0]}: run `assistant ingest --rebuild`")
        sims = vecs @ (q / (np.linalg.norm(q) or 1.0))
        k = min(self.top_k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return [_node(self.snap.chunks[int(i)], float(sims[i])) for i in top]


@dataclass
class Location:
    file: str
    line_start: int
    line_end: int


@dataclass
class Passage:
    """A retrieved passage after fusion; ``locations`` lists every file it stands in."""

    chunk: StoredChunk
    score: float
    similarity: float | None = None
    keyword: float | None = None
    locations: list[Location] = field(default_factory=list)
    others: list[StoredChunk] = field(default_factory=list)

    @property
    def file(self) -> str:
        return self.chunk.file

    @property
    def text(self) -> str:
        return self.chunk.text


def _norm_text(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


class HybridRetriever(BaseRetriever):
    """Weighted reciprocal-rank fusion of a dense and a keyword retriever."""

    def __init__(self, snap: IndexSnapshot, settings: Any, top_k: int | None = None):
        super().__init__()
        self.snap = snap
        self.settings = settings
        self.top_k = top_k or settings.top_k
        n = settings.candidates
        self.dense = DenseRetriever(snap, n)
        self.keyword = KeywordRetriever(snap, n)
        self.chars = KeywordRetriever(snap, n, chars=True)

    def search(self, query: str, top_k: int | None = None) -> list[Passage]:
        k = top_k or self.top_k
        bundle = QueryBundle(query)
        s = self.settings
        keywords = bundle
        if s.term_expansion and text_language(query) != self.snap.language:
            extra = translate_terms(query, self.snap.terms)
            if extra:
                keywords = QueryBundle(f"{query} {extra}")
        ranked = {name: (r.retrieve(b), w) for name, r, b, w in (
            ("dense", self.dense, bundle, s.vector_weight), ("words", self.keyword, keywords, s.keyword_weight),
            ("chars", self.chars, keywords, s.char_weight)) if w > 0}
        return fuse(self.snap, ranked, s, k, query)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(p.chunk, p.score) for p in self.search(query_bundle.query_str)]


_CODE_WORDS = re.compile(
    r"代码|函数|接口|调用|实现|编程|库|框架|参数名|\bcode\b|function|\bapi\b|implement|python|pytorch|torch|"
    r"tensorflow|mxnet|paddle|numpy|\bnn\.|\w+\(\)|`", re.I)


def asks_about_code(query: str) -> bool:
    return bool(_CODE_WORDS.search(query or ""))


_QUESTION_END = re.compile(r"[？?](?=\s|$|[）)\"”])")
_SENTENCE_END = re.compile(r"[。！!；;]|[？?](?=\s|$|[）)\"”])|(?<!\d)\.(?=\s|$)")
_ANSWER_MARK = re.compile(r"(^|\n)\s*(答|解|答案|a|answer)\s*[:：]", re.I)


_EXERCISE_HEADING = re.compile(r"^\W*(练习|练习题|习题|思考题|课后题|课后习题|作业|exercises?|homework|problem sets?)"
                               r"\W*$", re.I)


def is_question_list(text: str) -> bool:
    """Text that is mostly questions (an exercise list, a FAQ's prompts)."""
    if _ANSWER_MARK.search(text):  # question-and-answer notes hold their answers
        return False
    questions = len(_QUESTION_END.findall(text))
    return questions >= 2 and questions >= 0.75 * len(_SENTENCE_END.findall(text))


def is_exercise(c: StoredChunk) -> bool:
    """A passage of questions for the reader: an exercise section or a list of questions.
    It shares the user's words (both are questions) but holds no answer."""
    if c.heading and _EXERCISE_HEADING.match(c.heading[-1]):
        return True
    return is_question_list(c.clean or c.text)


def fuse(snap: IndexSnapshot, ranked: dict[str, tuple[list[NodeWithScore], float]], settings: Any,
         k: int, query: str = "") -> list[Passage]:
    """Weighted reciprocal-rank fusion of ranked lists, ``{name: (hits, weight)}``. The
    ``dense`` list's scores (cosine) and the ``words`` list's (BM25) are kept on each passage."""
    rrf_k = settings.rrf_k
    scores: dict[str, float] = {}
    for hits, weight in ranked.values():
        for rank, h in enumerate(hits):
            scores[h.node.node_id] = scores.get(h.node.node_id, 0.0) + weight / (rrf_k + rank + 1)
    if "chars" in ranked and "words" in ranked:
        # the character list cannot see a passage without Chinese characters (an English note
        # or a code listing): it abstains, and the word list's rank stands in for it, so a
        # Chinese question about an English note is not pulled towards Chinese passages
        char_w = ranked["chars"][1]
        for rank, h in enumerate(ranked["words"][0]):
            if not HAN_COMPAT_CHAR.search(snap.by_id[h.node.node_id].embed_text):
                scores[h.node.node_id] += char_w / (rrf_k + rank + 1)
    sim = {h.node.node_id: float(h.score) for h in ranked.get("dense", ([], 0))[0]}
    kws = {h.node.node_id: float(h.score) for h in ranked.get("words", ([], 0))[0]}
    # 1.0 = first in every list that found anything
    best = sum(w for hits, w in ranked.values() if hits) / (rrf_k + 1) or 1.0
    if settings.code_penalty != 1.0 and not asks_about_code(query):
        # code listings share many terms with the prose around them; unless the question
        # is about code they should not push prose out of the results
        for cid in scores:
            if snap.by_id[cid].kind == "code":
                scores[cid] *= settings.code_penalty
    if settings.question_penalty != 1.0:
        for cid in scores:
            if is_exercise(snap.by_id[cid]):
                scores[cid] *= settings.question_penalty
    order = sorted(scores, key=lambda i: -scores[i])
    out: list[Passage] = []
    by_text: dict[str, Passage] = {}
    for cid in order:
        c = snap.by_id[cid]
        key = _norm_text(c.clean or c.text)
        if key in by_text:  # the same passage in another file: one entry, every file listed
            p = by_text[key]
            p.locations.append(Location(c.file, c.line_start, c.line_end))
            p.others.append(c)
            continue
        if len(out) >= k:
            continue
        p = Passage(c, round(scores[cid] / best, 4), sim.get(cid), kws.get(cid),
                    [Location(c.file, c.line_start, c.line_end)])
        by_text[key] = p
        out.append(p)
    # identical passages that did not come up in either list still stand in their files
    for p in out:
        for c in snap.duplicates_of(p.chunk):
            if all(o.id != c.id for o in p.others):
                p.others.append(c)
                p.locations.append(Location(c.file, c.line_start, c.line_end))
    for p in out:
        p.locations.sort(key=lambda l: (l.file != p.chunk.file, l.file, l.line_start))
    return out
