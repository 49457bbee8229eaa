"""From ``[n]`` markers to checked citations: file, lines and a verbatim quote.

A marker is kept only when it names a passage that was in the prompt and that
passage supports the sentence it ends (enough of the sentence's terms stand in
it). Unsupported or out-of-range markers are removed from the answer and reported.
When the model wrote no marker at all, each sentence that one passage clearly
supports gets that passage's marker, under the same check.
The quote is the passage sentence closest to the answer sentence, taken from the
chunk's verbatim text and checked against the file as it is on disk now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ingest.text import HAN_CHAR, sentence_spans, terms

_MARKER = re.compile(r"\s*[\[【]\s*(\d{1,2}(?:\s*[,，、]\s*\d{1,2})*)\s*[\]】]")
SUPPORT_MIN = 0.3
INFER_MIN = 0.5

def support(sentence: str, passage: str) -> float:
    a = terms(sentence)
    if not a:
        return 1.0  # nothing checkable ("是的。"): the marker stands on the passage
    b = terms(passage)
    return len(a & b) / len(a)


@dataclass
class Citation:
    n: int
    file: str
    line_start: int
    line_end: int
    quote: str
    score: float
    support: float

    def to_json(self) -> dict:
        return {"n": self.n, "file": self.file, "line_start": self.line_start, "line_end": self.line_end,
                "quote": self.quote, "score": self.score}


@dataclass
class CitedAnswer:
    text: str
    citations: list[Citation]
    dropped: list[str]  # human-readable notes on markers removed


def split_sentences(answer: str) -> list[str]:
    """Answer sentences, each with the markers that follow it."""
    out: list[str] = []
    buf = ""
    i = 0
    while i < len(answer):
        ch = answer[i]
        buf += ch
        i += 1
        if ch in "。！？!?\n" or (ch == "." and (i == len(answer) or answer[i] in " \n[【")):
            m = _MARKER.match(answer, i)
            while m:  # markers right after the full stop belong to this sentence
                buf += m.group(0)
                i = m.end()
                m = _MARKER.match(answer, i)
            out.append(buf)
            buf = ""
    if buf.strip():
        out.append(buf)
    return out


def _best_quote(answer_sentence: str, chunk_text: str) -> str:
    spans = sentence_spans(chunk_text)
    if not spans:
        return chunk_text.strip()
    best, best_s = None, -1.0
    numbers = set(_NUMBER.findall(answer_sentence))
    for s, e in spans:
        piece = chunk_text[s:e].strip()
        sc = support(answer_sentence, piece) if piece else -1
        if piece and numbers:  # a stated number is the strongest sign of where a claim comes from
            sc += len(numbers & set(_NUMBER.findall(piece))) / len(numbers)
        if sc > best_s:
            best, best_s = piece, sc
    return best or chunk_text.strip()


def _locate(notes_dir: Path, file: str, line_start: int, line_end: int, quote: str) -> tuple[int, int] | None:
    """Lines of ``file`` that hold ``quote`` now: the indexed lines, or where it moved."""
    try:
        from ingest.load import decode
        from ingest.paths import note_path  # the one rule for what is inside the notes folder

        text, _ = decode(note_path(notes_dir, file).read_bytes())
    except (OSError, ValueError):
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if "\n".join(lines[line_start - 1:line_end]).find(quote) != -1:
        return line_start, line_end
    full = "\n".join(lines)
    pos = full.find(quote)
    if pos == -1:
        return None
    start = full.count("\n", 0, pos) + 1
    return start, start + quote.count("\n")


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_NAME = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\b")
_LATIN_WORD = re.compile(r"[A-Za-z0-9\-]+")
SUBJECT_MIN = 0.2  # share of a figure-stating sentence's other terms that its passage sentence must hold


def claim_holds(sentence: str, chunk_text: str) -> bool:
    """A sentence that states a figure is supported only by a passage sentence that holds
    the same figure *and* what the answer says it belongs to: every name the sentence uses
    (BERT, ViT-Huge: words with a capital), in that sentence or the one before it, and,
    without names, some of its other terms.
    "BERT masks 75%" cited to a passage where 75% is MAE's fails, though every word stands
    somewhere in the passage. Sentences without figures pass."""
    body = _MARKER.sub("", sentence)
    numbers = set(_NUMBER.findall(body))
    if not numbers:
        return True
    rest = _NUMBER.sub(" ", body)
    names = {n.lower() for n in _NAME.findall(rest) if len(n) > 1}
    flat = re.sub(r"\s*\n\s*", " ", chunk_text)  # a sentence that a line break cut is one sentence
    spans = sentence_spans(flat)
    for i, (s, e) in enumerate(spans):
        piece = flat[s:e]
        if not numbers <= set(_NUMBER.findall(piece)):
            continue
        if names:
            words = {w.lower() for w in _LATIN_WORD.findall(piece)}
            if names <= words:
                return True
            # a figure whose sentence names nobody may belong to the name of the sentence before
            # ("MAE … 。包括 … 掩码率(75%)。"); one that names another ("BERT … 15%") may not
            if i and not {n.lower() for n in _NAME.findall(piece) if len(n) > 1} - names:
                before = flat[spans[i - 1][0]:spans[i - 1][1]]
                if names <= words | {w.lower() for w in _LATIN_WORD.findall(before)}:
                    return True
        elif not terms(rest) or support(rest, piece) >= SUBJECT_MIN:
            return True
    return False


ECHO_NOVELTY = 0.3  # an answer with fewer new terms than this share of its own restates the question


def restates(answer: str, question: str) -> bool:
    """True when the answer (markers aside) only restates the question: under 30% of its
    terms are new, and none of them is a number. "0.001" or "因为内存按 2 的幂分配" add terms;
    "叠再多层没有用" does not."""
    a = terms(_MARKER.sub("", answer))
    if not a:
        return False
    new = a - terms(question)
    if any(ch.isdigit() for term in new for ch in term):
        return False  # a number the question did not hold is an answer ("beam width 1")
    return len(new) / len(a) < ECHO_NOVELTY


class SentenceChecker:
    """Checks a streamed answer one sentence at a time: ``feed()`` returns the sentences
    that completed and check against the passages (markers checked as ``cite`` does), and
    holds back those that do not, so nothing shown is withdrawn later; ``answer()`` is the
    checked whole."""

    def __init__(self, passages: Sequence, notes_dir: Path, question: str = ""):
        self.question = question
        self.passages = passages
        self.notes_dir = notes_dir
        self.buf = ""
        self.citations: dict[int, Citation] = {}  # of the sentences shown; the first sentence's [n] stands
        self.shown = ""
        self.dropped: list[str] = []

    def feed(self, piece: str) -> list[str]:
        self.buf += piece
        parts = split_sentences(self.buf)
        if len(parts) <= 1:
            return []
        done, self.buf = parts[:-1], parts[-1]
        return [x for x in (self._check(d) for d in done) if x]

    def flush(self) -> list[str]:
        rest, self.buf = self.buf, ""
        out = self._check(rest) if rest.strip() else None
        return [out] if out else []

    def _check(self, sentence: str) -> str | None:
        if self.question and restates(sentence, self.question):
            self.dropped.append(f"restates the question: {sentence.strip()[:60]}")
            return None
        c = cite(sentence, self.passages, self.notes_dir)
        self.dropped.extend(c.dropped)
        if not c.citations:
            return None
        for cit in c.citations:
            self.citations.setdefault(cit.n, cit)
        text = (" " if self.shown and not HAN_CHAR.search(self.shown[-1:]) else "") + c.text
        self.shown += text
        return text

    def answer(self) -> CitedAnswer:
        """What was shown, with the citations each sentence was checked with (the files are
        not read again)."""
        return CitedAnswer(self.shown.strip(), [self.citations[n] for n in sorted(self.citations)], self.dropped)


def cite(answer: str, passages: Sequence, notes_dir: Path, infer_missing: bool = True) -> CitedAnswer:
    """Check the markers of ``answer`` against ``passages`` (the prompt's, in order)."""
    sentences = split_sentences(answer)
    citations: dict[int, Citation] = {}
    dropped: list[str] = []
    out_sentences: list[str] = []

    def make(n: int, sentence: str, sc: float) -> Citation | None:
        p = passages[n - 1]
        c = p.chunk
        quote = _best_quote(sentence, c.text)
        where = _locate(notes_dir, c.file, c.line_start, c.line_end, quote)
        if where is None:
            dropped.append(f"[{n}] {c.file} changed since the last ingest")
            return None
        # the quote's own lines inside the chunk, so the citation is as narrow as it can be
        ls, le = where
        if ls == c.line_start and le == c.line_end and c.line_end > c.line_start:
            off = c.text.find(quote)
            if off >= 0:
                ls = c.line_start + c.text.count("\n", 0, off)
                le = ls + quote.count("\n")
        return Citation(n, c.file, ls, le, quote, round(float(p.score), 4), round(sc, 3))

    for sent in sentences:
        body = _MARKER.sub("", sent)
        if _MARKER.search(sent) and not re.search(r"\w", body):
            # a marker with no claim before it ("[1]", the 1.5B model's whole answer to some
            # questions): it would cite a passage for nothing said
            dropped.append(f"{sent.strip()[:20]} cites no claim")
            continue
        kept: list[int] = []
        for m in _MARKER.finditer(sent):
            for tok in re.split(r"[,，、]", m.group(1)):
                n = int(tok)
                if not 1 <= n <= len(passages):
                    dropped.append(f"[{n}] names no passage")
                    continue
                sc = support(body, passages[n - 1].chunk.clean or passages[n - 1].chunk.text)
                if sc < SUPPORT_MIN:
                    dropped.append(f"[{n}] does not support: {body.strip()[:60]}")
                    continue
                if not claim_holds(body, passages[n - 1].chunk.text):
                    dropped.append(f"[{n}] holds the figure, not with what the sentence says of it: "
                                   f"{body.strip()[:60]}")
                    continue
                if n not in citations:
                    cit = make(n, body, sc)
                    if cit is None:
                        continue
                    citations[n] = cit
                if n not in kept:
                    kept.append(n)
        if not kept and infer_missing and body.strip() and len(terms(body)) >= 2:
            # no marker, or none that holds: cite the passage that clearly supports the
            # sentence, if one does (small models often forget or misnumber markers)
            scored = [(support(body, p.chunk.clean or p.chunk.text), -i, i + 1) for i, p in enumerate(passages)
                      if claim_holds(body, p.chunk.text)]
            sc, _, n = max(scored) if scored else (0.0, 0, 0)
            if sc >= INFER_MIN:
                if n not in citations:
                    cit = make(n, body, sc)
                    if cit is not None:
                        citations[n] = cit
                if n in citations:
                    kept.append(n)
        out_sentences.append(_with_markers(body, kept))
    text = "".join(out_sentences).strip()
    return CitedAnswer(text, [citations[n] for n in sorted(citations)], dropped)


def _with_markers(body: str, ns: list[int]) -> str:
    if not ns:
        return body
    tail = ""
    stripped = body.rstrip()
    trailing_ws = body[len(stripped):]
    # markers go before the sentence's final punctuation mark, as people write them
    if stripped and stripped[-1] in "。！？!?.;；":
        tail = stripped[-1]
        stripped = stripped[:-1]
    return stripped + "".join(f"[{n}]" for n in ns) + tail + trailing_ws
