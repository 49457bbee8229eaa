"""Tokens for keyword search: jieba words for Chinese, lower-cased words for English.

The same function tokenizes notes at ingest and questions at query time, so the
two always agree. LlamaIndex's BM25Retriever ignores a custom tokenizer and
cannot split Chinese, which is why the keyword side is ours (see DESIGN.md).
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache

from .text import FUNCTION_CHARS, HAN, HAN_COMPAT, HAN_COMPAT_CHAR, HAN_COMPAT_RUN, PARTICLES, STOPWORDS

_lock = threading.Lock()
_ready = False

_WORD = re.compile(r"[a-z][a-z0-9\-\+]*|\d+(?:\.\d+)?%?|" + f"[{HAN_COMPAT}]+")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The English stem of a lower-cased ASCII word (``networks`` -> ``network``,
    ``regularization`` -> ``regular``); other words unchanged.

    Snowball (Porter2) through NLTK, which llama-index-core already depends on and which
    needs no downloaded data for stemming; bm25s's own stemmer hook wants PyStemmer, an
    extra compiled dependency for the same algorithm."""
    if not word.isascii() or not word[:1].isalpha() or len(word) <= 3:
        return word
    return _stemmer().stem(word)


@lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english")


def _init():
    global _ready
    with _lock:
        if not _ready:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _ready = True


# changes whenever tokenize() gives other tokens for the same text: part of the index
# options, so an upgrade re-tokenizes the notes (their embeddings are reused)
TOKENIZER_VERSION = 2


def tokenize(text: str, drop_stopwords: bool = True, stem_english: bool = False) -> list[str]:
    """Keyword tokens of ``text`` (duplicates kept: BM25 needs term frequency).

    ``stem_english`` (Snowball) is off: measured on the tune part of the suites it lowered
    MRR on English notes (0.588 -> 0.552) and on English questions over Chinese notes, and
    changed nothing on Chinese ones (benchmarks/ablation.py, "baseline+stem")."""
    import jieba

    _init()
    out: list[str] = []
    for m in _WORD.finditer(text.lower()):
        piece = m.group(0)
        if HAN_COMPAT_CHAR.match(piece):
            # search mode also yields the short words inside long compounds
            # (自监督学习 -> 监督, 学习, 自监督学习), which paraphrased questions need
            words = [w for w in jieba.cut_for_search(piece) if w.strip()]
        else:
            words = [piece.rstrip("%")] if piece.endswith("%") else [piece]
            if "-" in piece:
                words += [p for p in piece.split("-") if p]
        for w in words:
            if drop_stopwords and w in STOPWORDS:
                continue
            if len(w) == 1 and HAN_COMPAT_CHAR.match(w) and w in PARTICLES:
                continue
            out.append(stem(w) if stem_english else w)
    return out




def char_ngrams(text: str) -> list[str]:
    """Every Chinese character (function characters aside) and character pair of ``text``,
    for the character index that sits beside the word index.

    Why: jieba segments a question and a note differently when they word a thing
    differently ("词元来" in a question where the note has "词元"; "多少维" against "维度"),
    and the word index then misses the passage. Character n-grams match whatever the
    segmentation (the classic remedy of Chinese full-text search, as in Lucene's CJK
    analyzer). Mixed into the word index they blur its ranking, so they are a third,
    lighter list in the fusion (``char_weight``): measured on the Markdown suite, hit@5
    0.945 -> 0.964 and MRR 0.893 -> 0.897, with the seed-notes suite unchanged
    (benchmarks/ablation.py).
    """
    out: list[str] = []
    for run in HAN_COMPAT_RUN.findall(text):
        out.extend(ch for ch in run if ch not in FUNCTION_CHARS)
        out.extend(run[i:i + 2] for i in range(len(run) - 1))
    return out


def content_terms(text: str) -> set[str]:
    """The distinct topic-bearing terms of a text (for overlap checks, not ranking)."""
    return {t for t in tokenize(text) if len(t) > 1 or t.isdigit() or not t.isascii()}


_ZH_THEN_EN = re.compile(f"([{HAN}]{{2,24}})" + r"\s*[（(]\s*([A-Za-z][A-Za-z0-9 \-']{1,48}?)\s*[,，;；)）]")
_EN_THEN_ZH = re.compile(r"([A-Za-z][A-Za-z0-9\-']*(?: [A-Za-z][A-Za-z0-9\-']*){0,4})\s*[（(]\s*" + f"([{HAN}]{{2,12}})"
                         r"\s*[,，;；)）]")


_EMPHASIS = re.compile(r"[*_`]+")


def bilingual_terms(texts) -> dict[str, set[str]]:
    """A term table mined from notes that write a term in both languages, as textbooks and
    study notes do: "自注意力（self-attention）", "dropout（暂退法）". Maps each lower-cased
    English term to its Chinese names and each Chinese term to its English names.

    Why: a question in one language over notes in the other shares no keyword with them,
    and the keyword half of hybrid search then only adds noise; the notes themselves say
    how their terms translate."""
    import jieba

    _init()
    table: dict[str, set[str]] = {}
    for text in texts:
        if ("（" not in text and "(" not in text) or not HAN_COMPAT_CHAR.search(text):
            continue  # a pair needs a bracket and some Chinese: English notes cost nothing here
        text = _EMPHASIS.sub("", text)  # "*词元*（token）": Markdown emphasis around the term
        for m in _ZH_THEN_EN.finditer(text):
            zh_run, en = m.group(1), " ".join(m.group(2).lower().split())
            # the Chinese term is the tail of the run before the bracket: its last word or two
            words = [w for w in jieba.cut(zh_run) if w.strip()]
            zh = words[-1] if words else ""
            if len(zh) < 2 and len(words) >= 2:
                zh = words[-2] + zh
            elif len(words) >= 2 and len(words[-2]) + len(zh) <= 6 and words[-2] not in STOPWORDS:
                zh = words[-2] + zh
            _add_pair(table, zh, en)
        for m in _EN_THEN_ZH.finditer(text):
            _add_pair(table, m.group(2), " ".join(m.group(1).lower().split()))
    return table


_NAMING = re.compile(r"^(称之为|称为|叫做|叫作|也叫|简称|即|就是|或者|或|的|是)")


def _add_pair(table: dict[str, set[str]], zh: str, en: str) -> None:
    zh = _NAMING.sub("", zh)
    if len(zh) < 2 or len(en) < 3 or en in STOPWORDS or zh in STOPWORDS:
        return
    table.setdefault(en, set()).add(zh)
    table.setdefault(zh, set()).add(en)


def translate_terms(question: str, table: dict[str, set[str]]) -> str:
    """The other-language names (from ``bilingual_terms``) of the terms that the question
    uses, as one string to add to the question's keyword side; empty when none match."""
    if not table:
        return ""
    q = question.lower()
    extra: list[str] = []
    for en_or_zh, names in table.items():
        if en_or_zh.isascii():
            if re.search(r"(?<![a-z])" + re.escape(en_or_zh) + r"(?:s|es)?(?![a-z])", q):
                extra.extend(sorted(names))
        elif en_or_zh in question:
            extra.extend(sorted(names))
    return " ".join(dict.fromkeys(extra))
