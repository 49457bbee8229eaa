"""The text rules that ingest, retrieval and answering share: which characters are Chinese,
which words carry no topic, which language a text is in, where sentences end, and the
terms a sentence is compared by.

Every module that needs one of these imports it from here, so a rule changes in one
place; the keyword index's tokens are built on them in :mod:`ingest.keywords`. Where two
call sites use different character ranges, each range has its own name below.
"""

from __future__ import annotations

import re

# --- character classes (the body of a regex ``[...]``) ---------------------------------

HAN_FIRST, HAN_LAST = "\u3400", "\u9fff"
HAN = f"{HAN_FIRST}-{HAN_LAST}"  # CJK Unified Ideographs and Extension A: Chinese characters
HAN_COMPAT = HAN + "\uf900-\ufaff"  # the same and the CJK Compatibility Ideographs
CJK_SCRIPTS = "\u3040-\u30ff" + HAN_COMPAT + "\uac00-\ud7af"  # Han, Japanese kana and Korean Hangul
ZH_PUNCT = "，。、；：（）“”"  # Chinese punctuation: Chinese text joins it without a space

HAN_CHAR = re.compile(f"[{HAN}]")
HAN_RUN = re.compile(f"[{HAN}]+")
HAN_COMPAT_CHAR = re.compile(f"[{HAN_COMPAT}]")
HAN_COMPAT_RUN = re.compile(f"[{HAN_COMPAT}]+")
CJK_SCRIPT_CHAR = re.compile(f"[{CJK_SCRIPTS}]")
HAN_OR_ZH_PUNCT = re.compile(f"[{HAN}{ZH_PUNCT}]")
LATIN_WORD = re.compile(r"[A-Za-z]+")


# --- stop words -------------------------------------------------------------------------

# function words that carry no topic (Chinese particles and question words, English stop words)
STOPWORDS = set(
    """的 了 是 在 和 与 及 或 也 都 而 就 又 被 把 对 从 到 为 以 于 上 中 下 之 其 这 那 这个 那个 这些 那些
    一个 一种 我们 你 我 他 她 它 它们 什么 怎么 怎样 如何 为什么 为何 哪 哪些 哪个 吗 呢 吧 啊 呀 么 多少 几
    是否 能否 可以 有 没有 会 要 说 讲 请 请问 一下 通过 使用 用 进行 可能 这样 那样 所以 因为 但是 如果 然后
    还是 以及 并 等 等等 个 些 种 次 做 得 地 着 过 给 让 向 比 中的 里 时 时候 问题 笔记 提到 介绍 根据 下面
    a an the of to in on for and or is are was were be been being by with as at from that this these those it its
    what which who whom whose why how when where do does did can could should would will shall may might must
    about into than then there their they them we you your our i me my he she his her not no yes if so
    according notes note say says said mention mentioned explain describe tell please""".split()
)


# English function words beyond the list above (the usual search-engine set): with
# stemming they would otherwise match every English passage
STOPWORDS |= set(
    """also am any because before between both but each few further here hers herself him himself
    itself just more most much myself nor now once only other ought ours ourselves out over own same
    some such theirs themselves through too under until up very while whenever whether yours yourself
    yourselves get gets got use used uses using one two""".split()
) - {"one", "two"}  # numbers are facts people ask for

# single Chinese characters dropped from keyword tokens
PARTICLES = "的了是在和与及或也都而就又被把对从到为以于上中下之其"
# characters left out of the character index (``ingest.keywords.char_ngrams``)
FUNCTION_CHARS = set(PARTICLES + "这那个吗呢吧啊么")

# what a claim check (``assistant.cite``) compares an answer sentence with a passage by:
# Chinese character pairs and ASCII words, without these
CLAIM_WORD = re.compile(r"[A-Za-z][A-Za-z0-9\-]+|\d+(?:\.\d+)?")
CLAIM_STOP_BIGRAMS = {"可以", "我们", "这个", "一个", "进行", "通过", "使用", "因为", "所以", "就是", "的是", "是一"}
# English function words: an English answer over Chinese notes shares only its terms (MAE, 75,
# mask) with the passage, so "of", "during", "is" must not count against its support
CLAIM_STOP_WORDS = {"the", "and", "for", "with", "that", "this", "are", "was", "from", "which", "its", "into", "use",
                    "uses", "used", "notes", "note", "passage", "according", "of", "in", "on", "to", "at", "by", "is",
                    "as", "an", "or", "it", "be", "we", "during", "over", "under", "about", "between", "than", "also",
                    "has", "have", "had", "were", "been", "being", "do", "does", "did", "their", "there", "these",
                    "those", "can", "could", "would", "should", "may", "might", "will", "such", "each", "other", "more",
                    "most", "very", "not", "no", "only", "so", "then", "when", "where", "while", "who", "what", "how",
                    "why", "they", "them", "it's", "both", "all", "any", "some", "one"}


def terms(text: str) -> set[str]:
    """CJK character bigrams plus ASCII words: robust to how a model re-segments Chinese."""
    out: set[str] = set()
    for run in HAN_RUN.findall(text):
        if len(run) == 1:
            out.add(run)
        out.update(run[i:i + 2] for i in range(len(run) - 1))
    out.update(w.lower() for w in CLAIM_WORD.findall(text))
    return {t for t in out if t not in CLAIM_STOP_BIGRAMS and t not in CLAIM_STOP_WORDS}


# --- language ---------------------------------------------------------------------------

def text_language(text: str, neither: str = "en") -> str:
    """``zh`` when CJK characters are at least as many as English words, else ``en``;
    ``neither`` when the text has no letters of either kind. The one language rule, for
    questions, passages and whole notes folders alike."""
    cjk = len(HAN_CHAR.findall(text))
    words = len(LATIN_WORD.findall(text))
    if not cjk and not words:
        return neither
    return "zh" if cjk >= words else "en"


# --- sentences --------------------------------------------------------------------------

_SENT_END = set("。！？；!?;")
_NEW_SENTENCE = re.compile(r"[ \t]+[A-Z][a-z]")
_BEGIN_ENV = re.compile(r"\\begin\{([A-Za-z]+\*?)\}")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Cut points at sentence ends outside math; returns (start, end) offsets."""
    spans = []
    start = 0
    i = 0
    n = len(text)
    math_close: str | None = None
    while i < n:
        if math_close:
            if text.startswith(math_close, i):
                i += len(math_close)
                math_close = None
                continue
            i += 1
            continue
        opened = False
        env = _BEGIN_ENV.match(text, i)
        if env and text.find(f"\\end{{{env.group(1)}}}", env.end()) != -1:
            math_close = f"\\end{{{env.group(1)}}}"
            i = env.end()
            continue
        for opener, closer in (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")):
            if not text.startswith(opener, i):
                continue
            if opener == "$":
                # a lone "$" only opens math when it closes on the same line
                nl = text.find("\n", i + 1)
                if text.find("$", i + 1, nl if nl != -1 else n) == -1:
                    break
            elif text.find(closer, i + len(opener)) == -1:
                break  # an opener that never closes is not math
            math_close = closer
            i += len(opener)
            opened = True
            break
        if opened:
            continue
        ch = text[i]
        end = None
        if ch in _SENT_END:
            end = i + 1
        elif ch == "." and (i + 1 == n or text[i + 1] in " \n") and i > 0 and (
                not text[i - 1].isdigit() or _NEW_SENTENCE.match(text, i + 1)):
            end = i + 1  # after a figure too when a new sentence starts ("… = 1e-8. Adam also …")
        elif ch == "\n":
            end = i + 1
        if end is not None:
            while end < n and text[end] in " \t\n”’\"')）】」":
                end += 1
            spans.append((start, end))
            start = end
            i = end
            continue
        i += 1
    if start < n:
        spans.append((start, n))
    return [s for s in spans if text[s[0] : s[1]].strip()]


# a line that starts a new block, so the line before it ended its sentence
_BLOCK_START = re.compile(r"^\s*(#{1,6}\s|[*+-]\s|\d+[.)]\s|\$\$|```|~~~|:\w+:|!\[|>|\|)")
_TERMINAL = set("。！？；!?;:：.")


def prose_sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentence spans of Markdown prose, with sentences that a line break cut in two joined
    again: notes written one clause per line (common in English and Chinese Markdown) break
    lines inside sentences. A line ends its sentence when it ends with a sentence mark, or
    when the next line starts a block (a heading, list item, formula or fence). The splitter
    cuts long paragraphs here, and the answer path ranks these sentences."""
    out: list[list[int]] = []
    for s, e in sentence_spans(text):
        piece = text[s:e]
        if out:
            prev = text[out[-1][0]:out[-1][1]]
            body = prev.rstrip()
            cut_by_line = (prev.endswith("\n") and "\n\n" not in prev[len(body):] and body
                           and body[-1] not in _TERMINAL and not _BLOCK_START.match(piece)
                           and not _BLOCK_START.match(prev))
            if cut_by_line:
                out[-1][1] = e
                continue
        out.append([s, e])
    return [(s, e) for s, e in out]
