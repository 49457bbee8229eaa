"""Hybrid retrieval: dense (vectors) + keyword (BM25 over jieba), fused by rank.

Both sides are LlamaIndex retrievers over the index's read side (:mod:`ingest.snapshot`,
which holds the searches themselves). The fusion is ours because LlamaIndex's
``QueryFusionRetriever`` has no per-retriever weights in its reciprocal-rank mode
and de-duplicates by node hash, which keeps a passage repeated verbatim in two
files twice; here it appears once and lists every file it stands in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ingest import snapshot
from ingest.index import StoredChunk
from ingest.keywords import char_ngrams, tokenize, translate_terms
from ingest.snapshot import Hit, text_key
from ingest.text import HAN_COMPAT_CHAR, text_language

if TYPE_CHECKING:
    from .settings import Settings


def _node(c: StoredChunk, score: float) -> NodeWithScore:
    meta = {"file": c.file, "line_start": c.line_start, "line_end": c.line_end, "heading": c.heading_path,
            "kind": c.kind}
    return NodeWithScore(node=TextNode(id_=c.id, text=c.text, metadata=meta), score=score)


class IndexSnapshot(snapshot.IndexSnapshot):
    """The read side of the index (:class:`ingest.snapshot.IndexSnapshot`) with the embedding
    model that ``settings.embed`` names, built on first use unless ``embedder`` is given."""

    def __init__(self, settings: Settings, notes_dir: Path | None = None, embedder: Any = None):
        super().__init__(settings, notes_dir, embedder, make_embedder=lambda: _make_embedder(settings))


def _make_embedder(settings: Settings):
    from .models import make_embedder

    return make_embedder(settings.embed, settings)


class _HitRetriever(BaseRetriever):
    """A LlamaIndex retriever over one of the snapshot's searches (``hits``: chunk and score pairs)."""

    def hits(self, query_bundle: QueryBundle) -> list[Hit]:
        raise NotImplementedError

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(c, s) for c, s in self.hits(query_bundle)]


class KeywordRetriever(_HitRetriever):
    """BM25 over jieba + English word tokens, from the snapshot's bm25s index; with
    ``chars=True``, over Chinese character n-grams instead (see ``ingest.keywords.char_ngrams``)."""

    def __init__(self, snap: IndexSnapshot, top_k: int = 30, chars: bool = False, bm25=None, tokenizer=None):
        super().__init__()
        self.snap = snap
        self.top_k = top_k
        self.chars = chars
        self.tokenize = tokenizer or (char_ngrams if chars else tokenize)
        self._own_bm25 = bm25  # an index built in memory with another tokenizer (benchmarks/ablation.py)

    def hits(self, query_bundle: QueryBundle) -> list[Hit]:
        return self.snap.keyword_hits(self.tokenize(query_bundle.query_str), self.top_k, self.chars, self._own_bm25)


class DenseRetriever(_HitRetriever):
    """Vector search, by the snapshot's dense backend (its vectors.npy for a local index,
    else Chroma: see :mod:`ingest.snapshot`). The node's score is the cosine similarity."""

    def __init__(self, snap: IndexSnapshot, top_k: int = 30):
        super().__init__()
        self.snap = snap
        self.top_k = top_k

    def hits(self, query_bundle: QueryBundle) -> list[Hit]:
        return self.snap.dense_hits(query_bundle.query_str, self.top_k, query_bundle.embedding)


class SentenceRetriever(_HitRetriever):
    """Chunks ranked by their best sentence's vector (:mod:`ingest.sentence_index`): a
    question asks for one fact, and a chunk's one vector averages all of its sentences.
    The node's score is that sentence's cosine similarity."""

    def __init__(self, snap: IndexSnapshot, top_k: int = 30):
        super().__init__()
        self.snap = snap
        self.top_k = top_k

    def hits(self, query_bundle: QueryBundle) -> list[Hit]:
        if self.snap.sentence_vectors is None or not self.snap.chunks:
            return []
        embedding = query_bundle.embedding or self.snap.embedder.get_query_embedding(query_bundle.query_str)
        return self.snap.sentence_hits(embedding, self.top_k)


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


class HybridRetriever(BaseRetriever):
    """Weighted reciprocal-rank fusion of a dense and a keyword retriever."""

    def __init__(self, snap: IndexSnapshot, settings: Settings, top_k: int | None = None):
        super().__init__()
        self.snap = snap
        self.settings = settings
        self.top_k = top_k or settings.top_k
        n = settings.candidates
        self.dense = DenseRetriever(snap, n)
        self.keyword = KeywordRetriever(snap, n)
        self.chars = KeywordRetriever(snap, n, chars=True)
        self.sentences = SentenceRetriever(snap, n)

    def search(self, query: str, top_k: int | None = None) -> list[Passage]:
        k = top_k or self.top_k
        s = self.settings
        bundle = QueryBundle(query)
        if s.vector_weight > 0 and s.sentence_weight > 0 and self.snap.sentence_vectors is not None:
            bundle.embedding = self.snap.embedder.get_query_embedding(query)  # once, for both dense lists
        keywords = bundle
        if s.term_expansion and text_language(query) != self.snap.language:
            extra = translate_terms(query, self.snap.terms)
            if extra:
                keywords = QueryBundle(f"{query} {extra}")
        translated = self.translation(query)
        if translated:
            keywords = QueryBundle(f"{keywords.query_str} {translated}")
        ranked = {name: (r.hits(b), w) for name, r, b, w in (
            ("dense", self.dense, bundle, s.vector_weight), ("words", self.keyword, keywords, s.keyword_weight),
            ("chars", self.chars, keywords, s.char_weight),
            ("sentences", self.sentences, bundle, s.vector_weight * s.sentence_weight)) if w > 0}
        if translated and s.vector_weight > 0:
            # the translation embedded too: e5 matches it with the notes' own language
            ranked["translated"] = (self.dense.hits(QueryBundle(translated)), s.vector_weight)
        return fuse(ranked, s, k, query, self.snap.duplicates_of)

    def translation(self, query: str) -> str:
        """The question's words in the notes' language when it is asked in the other one and
        the settings translate that direction (``crosslang``); else empty."""
        s = self.settings
        wanted = s.translate_questions if self.snap.language == "en" else s.translate_to_chinese
        if wanted and self.snap.chunks and text_language(query) != self.snap.language:
            from .crosslang import Dictionary  # loaded (~1 s) on the first question that needs it

            return Dictionary.packaged().translate(query, self.snap.language)
        return ""

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


def fuse(ranked: dict[str, tuple[Sequence[Hit], float]], settings: Settings, k: int, query: str = "",
         duplicates_of: Callable[[StoredChunk], list[StoredChunk]] | None = None) -> list[Passage]:
    """Weighted reciprocal-rank fusion of ranked lists of ``(chunk, score)``, ``{name: (hits, weight)}``.
    The ``dense`` list's scores (cosine) and the ``words`` list's (BM25) are kept on each passage;
    ``duplicates_of(chunk)`` names the identical passages that stand in other files."""
    rrf_k = settings.rrf_k
    by_id = {c.id: c for hits, _ in ranked.values() for c, _ in hits}
    scores: dict[str, float] = {}
    for hits, weight in ranked.values():
        for rank, (c, _) in enumerate(hits):
            scores[c.id] = scores.get(c.id, 0.0) + weight / (rrf_k + rank + 1)
    if "chars" in ranked and "words" in ranked:
        # the character list cannot see a passage without Chinese characters (an English note
        # or a code listing): it abstains, and the word list's rank stands in for it, so a
        # Chinese question about an English note is not pulled towards Chinese passages
        char_w = ranked["chars"][1]
        for rank, (c, _) in enumerate(ranked["words"][0]):
            if not HAN_COMPAT_CHAR.search(c.embed_text):
                scores[c.id] += char_w / (rrf_k + rank + 1)
    sim: dict[str, float] = {}
    for name in ("dense", "translated"):  # a passage found through the question's translation
        for c, score in ranked.get(name, ([], 0))[0]:  # keeps that (same-language) cosine too
            sim[c.id] = max(sim.get(c.id, -1.0), float(score))
    kws = {c.id: float(score) for c, score in ranked.get("words", ([], 0))[0]}
    # 1.0 = first in every list that found anything
    best = sum(w for hits, w in ranked.values() if hits) / (rrf_k + 1) or 1.0
    if settings.code_penalty != 1.0 and not asks_about_code(query):
        # code listings share many terms with the prose around them; unless the question
        # is about code they should not push prose out of the results
        for cid in scores:
            if by_id[cid].kind == "code":
                scores[cid] *= settings.code_penalty
    if settings.question_penalty != 1.0:
        for cid in scores:
            if is_exercise(by_id[cid]):
                scores[cid] *= settings.question_penalty
    order = sorted(scores, key=lambda i: -scores[i])
    out: list[Passage] = []
    by_text: dict[str, Passage] = {}
    for cid in order:
        c = by_id[cid]
        key = text_key(c)
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
        for c in duplicates_of(p.chunk) if duplicates_of else ():
            if all(o.id != c.id for o in p.others):
                p.others.append(c)
                p.locations.append(Location(c.file, c.line_start, c.line_end))
    for p in out:
        p.locations.sort(key=lambda l: (l.file != p.chunk.file, l.file, l.line_start))
    return out
