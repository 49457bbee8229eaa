"""Sentence evidence: the sentences of the retrieved passages, ranked for the question.

This is the answer-selection step of classic extractive QA. The fact a question asks for
is almost always among a handful of retrieved sentences (measured: among the 8 best 93%
of the time on the seed notes, 75% on real Markdown); a small model loses it when it
writes over whole passages. So the answer path ranks sentences first, and the model (if
any) phrases only the few that answer.

Each sentence is scored by a weighted sum of features (``FEATURES``): its e5 similarity
to the question, the share of the question's terms it holds, the share the heading path
of its passage holds, whether it holds the kind of thing asked for (a number for 多少 /
how many, a reason for 为什么 / why, a name), the retrieval rank of its passage, and
whether it is the passage's first sentence. After the best sentence, the others keep to its
note unless another note's is clearly better (an answer cites one note where it can). The
weights were chosen on the `tune` part of the suites (benchmarks/sentences.py) and are
reported on the `report` part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from ingest.split import clean_markup

from .cite import support, terms
from .extract import answer_cues, note_sentences, one_line
from .retrieve import Passage

# chosen on the tune part of every suite by benchmarks/sentences.py --fit
WEIGHTS = {"dense": 1.0, "lexical": 0.3, "heading": 0.0, "cue": 0.1, "rank": 0.05, "first": 0.0, "short": -0.05}
FEATURES = tuple(WEIGHTS)
MIN_PLAIN_CHARS = 8
T = TypeVar("T")
_SPACE_BEFORE_MARK = re.compile(r"(?<=\w) +(?=[,.;:])")


@dataclass
class Sentence:
    n: int  # 1-based number of its passage in the list it was ranked from
    passage: Passage
    verbatim: str  # exact text of the chunk (so of the file)
    plain: str  # without Markdown / LaTeX markup
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0

    @property
    def one_line(self) -> str:
        """The sentence as a reader wants it: on one line, without layout markup
        (``:numref:`fig_x```, image lines); the citation still quotes the file verbatim."""
        return _SPACE_BEFORE_MARK.sub("", one_line(self.plain))  # "in :numref:`x`, we" left "in , we"


_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.S)
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+\*?")
ASKS_FORMULA = re.compile(r"公式|表达式|式子|formula|equation|expression for", re.I)


def words_outside_math(plain: str) -> set[str]:
    """The terms of a sentence once its formulas and LaTeX commands are taken out: a display
    formula, or a piece of one that a sentence end cut ("… \\longrightarrow f_{t+1} $$"), is
    no answer in words (measured on tune: e5 ranked such pieces first for many questions)."""
    return terms(_LATEX_COMMAND.sub(" ", _MATH.sub(" ", plain)))


def candidates(passages: Sequence[Passage], limit: int, formulas: bool = False) -> list[Sentence]:
    """The prose sentences of the first ``limit`` passages (labels, image lines and, unless
    ``formulas``, sentences with fewer than three words outside their formulas left out)."""
    out: list[Sentence] = []
    seen: set[str] = set()
    for n, p in enumerate(passages[:limit], 1):
        if p.chunk.kind == "code":
            continue
        text = p.chunk.text
        for i, (s, e) in enumerate(note_sentences(text)):
            verbatim = text[s:e].strip()
            plain = clean_markup(verbatim).strip()
            if len(plain) < MIN_PLAIN_CHARS or len(terms(plain)) < 3:
                continue
            if not formulas and len(words_outside_math(plain)) < 3:
                continue
            key = re.sub(r"\s+", "", plain)
            if key in seen:  # the same sentence in two passages: keep the better-ranked one
                continue
            seen.add(key)
            out.append(Sentence(n, p, verbatim, plain, {"first": 1.0 if i == 0 else 0.0}))
    return out


MAX_EMBEDDED = 16  # sentences embedded per question (e5 on 2 cores: ~40 short sentences/s)


def featurize(question: str, sents: list[Sentence], embedder: Any = None) -> list[Sentence]:
    """Fill in each sentence's features; returns the sentences kept. Only the
    ``MAX_EMBEDDED`` best by words and passage rank are embedded (the rest are dropped):
    embedding every sentence of four passages costs more than the rest of an answer."""
    cues = answer_cues(question)
    for s in sents:
        s.features["lexical"] = support(question, s.plain)
        s.features["rank"] = 1.0 / s.n
    if len(sents) > MAX_EMBEDDED:
        keep = sorted(sents, key=lambda s: -(s.features["lexical"] + s.features["rank"]))[:MAX_EMBEDDED]
        sents = [s for s in sents if s in keep]
    if embedder is not None and sents:
        q = embedder.get_query_embedding(question)
        vecs = embedder.get_text_embedding_batch([s.plain for s in sents])
        dense = [sum(x * y for x, y in zip(q, v)) for v in vecs]
    else:
        dense = [0.0] * len(sents)
    heading_cache: dict[int, float] = {}
    for s, d in zip(sents, dense):
        s.features["dense"] = float(d)
        if s.n not in heading_cache:
            h = s.passage.chunk.heading_path
            heading_cache[s.n] = support(question, h) if h else 0.0
        s.features["heading"] = heading_cache[s.n]
        s.features["cue"] = float(sum(1 for cue in cues if cue.search(s.plain)))
        s.features["short"] = 1.0 if len(s.plain) < 20 else 0.0
    return sents


# A sentence from another note file than the best sentence's ranks as if it scored this much
# lower: an answer's sentences come from the note the answer is in unless another note's
# sentence is clearly better. Chosen on tune as the largest weight that lost no fact on any
# suite (benchmarks/sentences.py --variants file0.02; README, fifth session): the sentences
# shown stood in a file the question names more often on every suite, tune and report.
OTHER_FILE = 0.02


def score(sents: list[Sentence], weights: dict[str, float] | None = None) -> list[Sentence]:
    """The sentences best first: by the weighted sum of their features, then kept to the best
    one's note (``one_note_first``)."""
    w = weights or WEIGHTS
    for s in sents:
        s.score = sum(w.get(k, 0.0) * v for k, v in s.features.items())
    return one_note_first(sorted(sents, key=lambda s: -s.score), lambda s: s.score, lambda s: s.passage.chunk.file)


def one_note_first(ranked: list[T], score_of: Callable[[T], float], file_of: Callable[[T], str],
                   other_file: float = OTHER_FILE) -> list[T]:
    """``ranked`` (best first) with the best one first, then the others, each from another file
    than the best one's ranked as if it scored ``other_file`` lower."""
    if not ranked or not other_file:
        return ranked
    file = file_of(ranked[0])
    return ranked[:1] + sorted(ranked[1:], key=lambda s: -(score_of(s) - other_file * (file_of(s) != file)))


def rank_sentences(question: str, passages: Sequence[Passage], embedder: Any = None, limit: int = 4,
                   weights: dict[str, float] | None = None) -> list[Sentence]:
    """The sentences of the first ``limit`` passages, best first."""
    sents = featurize(question, candidates(passages, limit, bool(ASKS_FORMULA.search(question))), embedder)
    return score(sents, weights)
