"""From ranked evidence sentences to a short answer, or to an honest refusal.

The extractive answer is the best sentence, cut to the clause that answers when it is
long (no paste over ``MAX_CLAIM_CHARS``), and the second best beside it; each ends with
the ``[n]`` of its passage, so ``cite()`` checks and locates it like any model answer.

A near miss (the notes discuss the topic, not the detail asked) is refused when the best
sentence does not hold the kind of thing the question asks for (a number for 多少 / how
many). Choices were made on the `tune` part of the suites (benchmarks/sentences.py) and
are reported on the `report` part.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ingest.text import HAN_CHAR

from .cite import support
from .extract import ANSWER_TYPES, answer_cues
from .sentences import Sentence

MAX_CLAIM_CHARS = 120
# measured on the tune part (benchmarks/sentences.py, 2026-12-05): the three best sentences
# hold the fact more often than the two best on every suite (seed 0.85 vs 0.81, Markdown zh
# 0.68 vs 0.54, zh-basics 0.61 vs 0.55, en 0.69 vs 0.65), as the two did over the best alone;
# a second or third sentence only when it scores close held fewer; a minimum score refused
# more answerable questions than near misses at every threshold tried
SENTENCES = 3
_INLINE_MATH = re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.S)
# a question for the formula itself (not one that mentions a formula: "softmax 公式里的分母叫什么")
ASKS_FOR_FORMULA = re.compile(r"(公式|表达式|式子)(是什么|长什么样|怎么写|如何写|是怎样)|什么(样的)?(公式|表达式)|写出.{0,8}"
                              r"(公式|表达式)|\b(formula|equation|expression) (for|of)\b|what (is|are) the (formula|equation)"
                              r"|write (down )?the (formula|equation)", re.I)
# what a sentence that gives a formula holds: LaTeX math, or an equation written plainly
_FORMULA = re.compile(r"\$|\\\(|\\\[|\\begin\{|\S\s*=\s*\S")
_CLAUSE_END = re.compile(r"(?<=[，；：,;:])\s*|(?<=[。！？!?])\s*")


def trim(sentence: str, question: str, limit: int = MAX_CLAIM_CHARS, embedder: Any = None) -> str:
    """``sentence`` when it fits in ``limit`` characters; else the verbatim run of it, within
    the limit, that holds the most of the question's terms and of the answer type asked for.
    A run starts at a clause (or, in English, at a word) and ends at a clause end or at the
    last word that fits: English sentences run long, and a clause-only cut left "In 1995," of
    "In 1995, Bishop proved that training with input noise is equivalent to Tikhonov ..."."""
    text = " ".join(sentence.split()) if not HAN_CHAR.search(sentence) else sentence.strip()
    if len(text) <= limit:
        return text
    # never inside a formula ("$(\mathbf{x}_i, y_i)$" holds a comma)
    math = [m.span() for m in _INLINE_MATH.finditer(text)]
    outside = lambda k: not any(a < k < b for a, b in math)  # noqa: E731
    clause = [0] + [m.end() for m in _CLAUSE_END.finditer(text) if 0 < m.end() < len(text) and outside(m.end())]
    clause.append(len(text))
    words = [] if HAN_CHAR.search(text) else [m.end() for m in re.finditer(r" ", text) if outside(m.end())]
    starts = sorted(set(clause[:-1]) | set(words))
    ends = sorted(set(clause[1:]) | {k - 1 for k in words})  # a word end: just before the space
    pieces: dict[str, float] = {}  # piece -> bonus for reading whole (starts and ends at a clause)
    for a in starts:
        fitting = [b for b in ends if a < b <= a + limit]
        for b in ([x for x in fitting if x in clause] + fitting[-1:]):
            piece = text[a:b].strip()
            if piece:
                pieces[piece] = max(pieces.get(piece, 0.0), 0.05 * (a in clause) + 0.05 * (b in clause))
    # a run too short to say anything ("In other words,") is no answer: at least half the
    # limit when the sentence has a run that long
    if any(len(p) >= limit // 2 for p in pieces):
        pieces = {p: v for p, v in pieces.items() if len(p) >= limit // 2}
    if not pieces:  # one formula longer than the limit
        return text[:limit]
    cues = answer_cues(question)
    lexical = {p: bonus + support(question, p) + 0.5 * sum(1 for c in cues if c.search(p)) + len(p) / (10 * limit)
               for p, bonus in pieces.items()}
    top = sorted(lexical, key=lambda p: -lexical[p])[:DENSE_PIECES]
    dense = [0.0] * len(top)
    if embedder is not None:  # a question in the other language shares no words with the note
        q = embedder.get_query_embedding(question)
        dense = [sum(x * y for x, y in zip(q, v)) for v in embedder.get_text_embedding_batch(top)]
    return max(zip(top, dense), key=lambda pd: pd[1] + lexical[pd[0]])[0]


DENSE_PIECES = 8  # the runs embedded per sentence, best by words first (e5: ~40 short texts/s on 2 cores)


def answers(question: str, s: Sentence) -> bool:
    """Does the sentence answer the question at all? In the question's own language it must
    share at least one of its terms (e5 alone finds *some* sentence close to any question:
    "红烧肉怎么做" reached a formula); a question that asks for a number (多少 / how many)
    needs a sentence with one."""
    same_script = bool(HAN_CHAR.search(question)) == bool(HAN_CHAR.search(s.plain))
    if same_script and support(question, s.plain) == 0:
        return False
    asks_number, number = ANSWER_TYPES[0]
    return not asks_number.search(question) or bool(number.search(s.plain))


def extractive(question: str, ranked: Sequence[Sentence], embedder: Any = None,
               sentences: int = SENTENCES) -> str | None:
    """The answer text with ``[n]`` markers, or None when no sentence answers."""
    if not ranked or not answers(question, ranked[0]):
        return None
    chosen = list(ranked[:sentences])
    if ASKS_FOR_FORMULA.search(question) and not any(_FORMULA.search(s.verbatim) for s in chosen):
        return None  # a near miss: the notes discuss it, but never write the formula asked for
    parts = []
    for s in chosen:
        claim = trim(s.one_line, question, embedder=embedder).rstrip().rstrip("，,;；:：、")
        end = claim[-1:] if claim[-1:] in "。！？!?.;；" else ""
        body = claim[:-1] if end else claim
        parts.append(f"{body} [{s.n}]{end or ('。' if HAN_CHAR.search(body) else '.')}")
    return " ".join(parts)
