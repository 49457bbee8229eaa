"""Grading one result against its case, and the metrics over many.

Matching of ``must_include``/``must_not_include`` is case-insensitive, folds
full-width and half-width forms (Unicode NFKC) and ignores whitespace.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any, Iterable, Sequence

from .suite import KINDS, Case

_MARKER = re.compile(r"\s*[\[【]\s*\d{1,2}(?:\s*[,，、]\s*\d{1,2})*\s*[\]】]")



# --- matching --------------------------------------------------------------------------

def normalize(text: str) -> str:
    """Case-folded, NFKC (full-width == half-width), all whitespace removed."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "").casefold())


def strip_markers(answer: str) -> str:
    return _MARKER.sub("", answer or "")


def matches(alt: str, normalized_answer: str) -> bool:
    """``alt`` stands in the answer; ``re:PATTERN`` is a regular expression over the normalized
    answer (for numbers: ``re:(?<![\\d.])8(?![\\d.])`` matches 8 but not 0.8 or 2018)."""
    if alt.startswith("re:"):
        return re.search(alt[3:], normalized_answer) is not None
    n = normalize(alt)
    return bool(n) and n in normalized_answer


def facts_found(answer: str, facts: Sequence[Sequence[str]]) -> list[bool]:
    a = normalize(strip_markers(answer))
    return [any(matches(alt, a) for alt in fact) for fact in facts]


PASTE_CHARS = 120  # the line: no verbatim note span over 120 characters in an answer


def pasted(answer: str, note_texts: Iterable[str]) -> bool:
    """Is a piece of the answer (the text between two ``[n]`` markers) a verbatim note span
    of over ``PASTE_CHARS`` characters? Compared normalized (case, width, whitespace)."""
    pieces = [normalize(p) for p in _MARKER.split(answer or "")]
    long = [p.strip("。.，,；;") for p in pieces if len(p) > PASTE_CHARS]
    if not long:
        return False
    texts = [normalize(t) for t in note_texts if t]
    return any(p in t for p in long for t in texts)


def forbidden_found(answer: str, forbidden: Sequence[str]) -> list[str]:
    a = normalize(strip_markers(answer))
    return [f for f in forbidden if matches(f, a)]


class NoteFiles:
    """The notes as they are on disk now, decoded the way ingest decodes them."""

    def __init__(self, notes_dir: Path):
        self.notes_dir = Path(notes_dir)
        self._text: dict[str, str | None] = {}

    def text(self, rel: str) -> str | None:
        if rel not in self._text:
            from ingest.load import DecodeError

            from ..notes_access import read_note_text

            try:
                self._text[rel] = read_note_text(self.notes_dir / rel)
            except (OSError, DecodeError):
                self._text[rel] = None
        return self._text[rel]

    def lines(self, rel: str, start: int, end: int) -> str | None:
        t = self.text(rel)
        if t is None or start < 1 or end < start:
            return None
        lines = t.split("\n")
        if end > len(lines):
            return None
        return "\n".join(lines[start - 1:end])

    def all_files(self) -> list[str]:
        from ingest.load import walk

        return [n.rel for n in walk(self.notes_dir).notes]


# --- grading one case ------------------------------------------------------------------

def _files_of(source: dict) -> set[str]:
    return {source["file"], *(l["file"] for l in source.get("also_in", []))}


def grade_retrieval(case: Case, result: dict) -> dict[str, Any]:
    """Where the first expected source ranks among the result's ``sources`` (answerable cases)."""
    if not case.answerable:
        return {}
    expected = set(case.sources)
    rank = None
    for i, s in enumerate(result.get("sources", []), 1):
        if _files_of(s) & expected:
            rank = i
            break
    return {"rank": rank, "hit_at_1": rank == 1, "hit_at_5": rank is not None and rank <= 5,
            "rr": 1.0 / rank if rank else 0.0}


def grade(case: Case, result: dict, notes: NoteFiles) -> dict[str, Any]:
    """Grades of one result (``Answer.to_json()`` shaped) against its case."""
    expected = set(case.sources)
    g: dict[str, Any] = {"refused": bool(result.get("refused")), "error": bool(result.get("error"))}
    g.update(grade_retrieval(case, result))
    cits = result.get("citations", [])
    valid = []
    for c in cits:
        lines = notes.lines(c["file"], int(c["line_start"]), int(c["line_end"]))
        valid.append(bool(c.get("quote")) and lines is not None and c["quote"] in lines)
    g["citations"] = len(cits)
    g["citations_valid"] = sum(valid)
    g["invalid_citations"] = [f"{c['file']}:{c['line_start']}-{c['line_end']}" for c, ok in zip(cits, valid) if not ok]
    # an answer cut short by an error still counts with what it said; no answer at all does not
    answered = not g["refused"] and bool((result.get("answer") or "").strip())
    g["answered"] = answered
    if case.answerable:
        if cits:
            g["precision"] = sum(1 for c in cits if c["file"] in expected) / len(cits)
        else:
            g["precision"] = None
        covered: set[str] = set()
        for c in cits:
            if c["file"] in expected:
                covered.add(c["file"])
            q = c.get("quote") or ""
            if q:  # a passage repeated verbatim in several files stands for each of them
                covered.update(f for f in expected if q in (notes.text(f) or ""))
        g["recall"] = len(covered) / len(expected) if answered else 0.0
        found = facts_found(result.get("answer", ""), case.must_include) if answered else \
            [False] * len(case.must_include)
        g["facts"] = found
        g["coverage"] = sum(found) / len(found) if found else (1.0 if answered else 0.0)
        g["false_refusal"] = g["refused"]
    else:
        g["refusal_correct"] = g["refused"]
    g["violations"] = forbidden_found(result.get("answer", ""), case.must_not_include) if not g["refused"] else []
    if answered:
        files = dict.fromkeys([c["file"] for c in cits] + list(case.sources))
        g["pasted"] = pasted(result.get("answer", ""), (notes.text(f) or "" for f in files))
    return g


# --- aggregates ------------------------------------------------------------------------

def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def aggregate(rows: Sequence[tuple[Case, dict]]) -> dict[str, Any]:
    """Metrics over (case, grades) pairs."""
    ans = [(c, g) for c, g in rows if c.answerable]
    una = [(c, g) for c, g in rows if not c.answerable]
    answered = [(c, g) for c, g in ans if g.get("answered", not g["refused"] and not g["error"])]
    total_cits = sum(g["citations"] for _, g in rows)
    m: dict[str, Any] = {"cases": len(rows), "answerable": len(ans), "unanswerable": len(una)}
    m["hit_at_1"] = _mean(g["hit_at_1"] for _, g in ans)
    m["hit_at_5"] = _mean(g["hit_at_5"] for _, g in ans)
    m["mrr"] = _mean(g["rr"] for _, g in ans)
    m["citation_precision"] = _mean(g["precision"] for _, g in answered)
    m["citation_recall"] = _mean(g["recall"] for _, g in answered)
    m["citation_validity"] = round(sum(g["citations_valid"] for _, g in rows) / total_cits, 4) if total_cits else None
    m["cited"] = _mean(g["citations"] > 0 for _, g in answered)
    m["coverage"] = _mean(g["coverage"] for _, g in ans)
    m["violations"] = _mean(bool(g["violations"]) for c, g in rows if c.must_not_include) if any(
        c.must_not_include for c, _ in rows) else None
    m["pasted"] = _mean(g["pasted"] for _, g in rows if "pasted" in g)
    m["refusal_accuracy"] = _mean(g["refusal_correct"] for _, g in una)
    m["false_refusal"] = _mean(g["false_refusal"] for _, g in ans)
    m["errors"] = _mean(g["error"] for _, g in rows)
    judged = [g["judge"] for _, g in rows if g.get("judge")]
    if judged:
        m["judge_correctness"] = _mean(j.get("correctness") for j in judged)
        m["judge_faithfulness"] = _mean(j.get("faithful") for j in judged if j.get("faithful") is not None)
    return m


def aggregate_retrieval(rows: Sequence[tuple[Case, dict]]) -> dict[str, Any]:
    """hit@1, hit@5 and MRR over (case, grades) pairs: what --retrieval-only grades."""
    ans = [g for c, g in rows if c.answerable]
    return {"cases": len(rows), "answerable": len(ans), "unanswerable": len(rows) - len(ans),
            "hit_at_1": _mean(g["hit_at_1"] for g in ans), "hit_at_5": _mean(g["hit_at_5"] for g in ans),
            "mrr": _mean(g["rr"] for g in ans)}


def metrics_by_kind(rows: Sequence[tuple[Case, dict]], retrieval_only: bool = False) -> dict[str, Any]:
    """Metrics overall and per kind; a retrieval-only run adds them per question language."""
    agg = aggregate_retrieval if retrieval_only else aggregate
    out: dict[str, Any] = {"overall": agg(rows), "by_kind": {}}
    for kind in KINDS:
        sub = [(c, g) for c, g in rows if c.kind == kind]
        if sub:
            out["by_kind"][kind] = agg(sub)
    if retrieval_only:
        from ..answer import question_language

        langs: dict[str, list[tuple[Case, dict]]] = {}
        for c, g in rows:
            langs.setdefault(question_language(c.question), []).append((c, g))
        out["by_language"] = {lang: agg(sub) for lang, sub in sorted(langs.items())}
    return out
