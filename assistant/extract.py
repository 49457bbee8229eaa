"""Answers in the notes' own words, for when the model's answer says nothing checkable.

A small model sometimes gives back the question as its answer ("为什么常取 2 的整数次幂？。"),
copies its worked example, or writes sentences no passage supports. Then the honest
answer is the note sentences that answer the question best, each cited.

Why our own code and not LlamaIndex's ``SentenceEmbeddingOptimizer`` (which also ranks
sentences by embedding similarity): its default sentence splitter is NLTK's, whose data
would be fetched on the query path, and it returns pruned nodes, not the line-exact
sentences a citation needs. Notes written with a line break inside a sentence (common in
Chinese Markdown, one clause per line) are also joined back into whole sentences here.
"""

from __future__ import annotations

import re

from ingest.text import HAN_OR_ZH_PUNCT, prose_sentence_spans


# What kind of answer a question wants, and the cue a sentence holding such an answer has:
# the answer-type step of classic extractive QA. A number for "多少 / how many", a reason for
# "为什么 / why", a name for "叫什么 / called". A sentence with the cue gets a small bonus.
ANSWER_TYPES = [
    (re.compile(r"多少|几[个层种次维年倍位]|多大|多长|多高|哪一?年|年代|比例|比率|how (many|much|large|long|big|often)"
                r"|what (value|number|size|ratio|percentage|fraction)|which year|\b(ratio|rate|percentage|proportion|fraction)\b"
                r"|\bnumber of\b", re.I),
     re.compile(r"\d|[一二两三四五六七八九十百千万亿]+[个层种次维倍年位成]|percent", re.I)),
    (re.compile(r"为什么|为何|原因|图的是什么|有什么用|什么作用|目的|\bwhy\b|what for|purpose|reason", re.I),
     re.compile(r"因为|由于|所以|因此|为了|以便|以免|避免|防止|导致|使得|原因|目的|\bbecause\b|\bsince\b|so that"
                r"|to avoid|prevent|in order to", re.I)),
    (re.compile(r"叫什么|叫做什么|称为什么|什么名字|\bcalled\b|\bnamed\b|term for", re.I),
     re.compile(r"称为|叫做|称作|被称|\*[^*\s][^*]*\*|\bcalled\b|known as|\bnamed\b", re.I)),
]


def note_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of a passage's verbatim text, with sentences that a line break cut in
    two joined again (``ingest.text.prose_sentence_spans``: the chunker cuts at the same ends)."""
    return prose_sentence_spans(text)


def answer_cues(question: str) -> list[re.Pattern]:
    """The sentence cues of the answer types the question asks for."""
    return [cue for asks, cue in ANSWER_TYPES if asks.search(question)]


def one_line(text: str) -> str:
    """A sentence that a line break cut, on one line: no space where the break fell
    between two Chinese characters, one space elsewhere."""
    def join(m: re.Match) -> str:
        a, b = m.string[m.start() - 1:m.start()], m.string[m.end():m.end() + 1]
        return "" if HAN_OR_ZH_PUNCT.match(a) and HAN_OR_ZH_PUNCT.match(b) else " "
    return re.sub(r"[ \t]*\n\s*", join, text.strip())
