"""What the LLM reads: the top passages, with adjacent chunks of one section merged.

A Markdown section is often cut into several chunks, and the one that ranks best is not
always the one that holds the whole answer (the definition in one chunk, the number in
the next). Two retrieved chunks that sit next to each other in one section become one
passage, which frees a prompt slot for the next-ranked passage; and the best passages get
their section neighbours while the passage budget allows.

Why our own code: LlamaIndex's ``PrevNextNodePostprocessor`` follows node relationships
stored in a docstore, which this index does not keep (chunks live in the snapshot), and it
appends neighbours as separate nodes, so the model would see, and cite, three passages for
one paragraph. Here a merged passage is one ``[n]`` with one file and one line range, and
its text stays a verbatim copy of those lines, so citations are checked as before.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

from ingest.index import StoredChunk
from ingest.snapshot import SectionIndex, part_ids

from .retrieve import Location, Passage, asks_about_code

if TYPE_CHECKING:
    from .settings import Settings


def _join(first: StoredChunk, second: StoredChunk) -> StoredChunk:
    """Two chunks of one section, in file order, as one chunk over both line ranges.

    The gap between them is kept as newlines, so a quote's line number inside the merged
    text stays right; chunks cut from one long line (at a sentence end) join on that line."""
    gap = max(0, second.line_start - first.line_end)
    if gap:
        sep, clean_sep = "\n" * gap, "\n"
    else:
        # one line cut at a sentence end: the cut dropped the whitespace after it, which an
        # English full stop always has ("." ends a sentence only before a space) and Chinese
        # punctuation usually lacks; without it "one.Two" is one "sentence" no file holds
        end = first.text.rstrip("”’\"')）】」")[-1:]
        sep = clean_sep = " " if end.isascii() else ""
    return replace(first, id=f"{first.id}+{second.id}", line_end=max(first.line_end, second.line_end),
                   text=first.text + sep + second.text,
                   clean=(first.clean or first.text) + clean_sep + (second.clean or second.text),
                   text_hash=f"{first.text_hash}+{second.text_hash}", tokens=first.tokens + second.tokens)


def _merge(p: Passage, c: StoredChunk, before: bool) -> Passage:
    """``p`` with the neighbouring chunk ``c`` joined before it (``c`` is its previous chunk)
    or after it. The side is given, not read from line numbers: pieces of one long line
    all start on the same line."""
    chunk = _join(c, p.chunk) if before else _join(p.chunk, c)
    return replace(p, chunk=chunk, locations=[Location(chunk.file, chunk.line_start, chunk.line_end)], others=[])


def prompt_passages(passages: Sequence[Passage], sections: SectionIndex, settings: Settings,
                    question: str = "") -> list[Passage]:
    """The passages the prompt holds, in rank order, adjacent chunks of a section merged."""
    n = settings.prompt_passages
    limit = settings.merge_chars
    chosen: list[Passage] = []
    for p in passages:
        if len(chosen) >= n:
            break
        for i, q in enumerate(chosen):
            prev, nxt = sections.neighbours(q.chunk)
            touching = [x for x in (prev, nxt) if x is not None and x.id in part_ids(p.chunk)]
            if touching and len(q.chunk.text) + len(p.chunk.text) <= limit:
                chosen[i] = _merge(q, p.chunk, before=touching[0] is prev)
                break
        else:
            chosen.append(p)
    if limit <= 0:
        return chosen
    # the best passages get their section neighbours while the budget allows: the
    # following chunk first (a definition is usually followed by its detail)
    code_ok = asks_about_code(question)
    left = settings.prompt_chars - sum(len(p.chunk.clean or p.chunk.text) for p in chosen)
    for i in range(min(settings.expand_passages, len(chosen))):
        # only inside a real section: in a plain-text note, neighbouring lines are often
        # unrelated excerpts, and they would cost prompt time for nothing
        grown = bool(chosen[i].chunk.heading)
        while grown:  # one chunk at a time on each side, nearest first
            grown = False
            prev, nxt = sections.neighbours(chosen[i].chunk)
            for c, before in ((nxt, False), (prev, True)):
                if c is None or (c.kind == "code" and not code_ok):
                    continue
                size = len(c.clean or c.text)
                if size > left or len(chosen[i].chunk.text) + len(c.text) > limit:
                    continue
                if any(c.id in part_ids(q.chunk) for q in chosen):
                    continue
                chosen[i] = _merge(chosen[i], c, before)
                left -= size
                grown = True
    return chosen
