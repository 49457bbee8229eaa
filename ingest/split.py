"""Split one note into chunks that know their file, lines and heading path.

Why our own splitter: LlamaIndex's ``MarkdownNodeParser`` splits on headings but
keeps no line numbers, and ``SentenceSplitter`` breaks inside ``$$`` math and code
fences and does not know Chinese sentence ends. Every chunk here carries
``line_start``/``line_end`` (1-based, inclusive) and its ``text`` is a verbatim
substring of those lines, so a citation can always be checked against the file.

Rules:
- never across a Markdown heading; the heading path travels with the chunk;
- never inside a code fence or a display-math block (``$$ … $$``, ``\\[ … \\]``);
- code fences are chunks of their own (``kind="code"``);
- prose units (a paragraph in Markdown, a line in plain text, where one line is
  one excerpt) are merged within a section up to ``max_chars``; a longer unit is
  cut at sentence ends, Chinese (。！？；) and English, never inside inline math;
- layout markup (``:label:``, ``:numref:``, image lines, ...) is kept out of the
  text that is embedded and keyword-indexed, not out of the verbatim text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from .text import HAN_CHAR, prose_sentence_spans, sentence_spans, text_language

DEFAULT_MAX_CHARS = 400
_FENCED_CODE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.M | re.S)
MAX_CODE_CHARS = 3000

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_LAYOUT_LINE = re.compile(
    r"^\s*(:(label|width|height|begin_tab|end_tab|numref|eqlabel)[:`].*|!\[[^\]]*\]\([^)]*\)\s*(:width:`[^`]*`)?\s*|<!--.*-->)\s*$"
)
_INLINE_ROLE = re.compile(r":(numref|ref|eqref|label|width):`[^`]*`")
_CITE_ROLE = re.compile(r"[ \t]*:(cite|citet|citep):`([^`]*)`")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?:[^)]*)\)")
_WIKILINK = re.compile(r"\[\[([^\]|#]+)(?:#[^\]|]*)?(?:\|([^\]]+))?\]\]")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]{0,200}>")


class HeadedText:
    """What a chunk, as split or as stored, embeds: its heading path, then its clean text.
    A chunk with ``embed_headings`` off (``StoredChunk``) embeds the clean text alone."""

    embed_headings = True

    @property
    def heading_path(self) -> str:
        return " > ".join(self.heading)

    @property
    def embed_text(self) -> str:
        """What is embedded and keyword-indexed: heading path, then the clean text."""
        body = self.clean or self.text
        return f"{self.heading_path}\n{body}" if self.heading and self.embed_headings else body


@dataclass
class Chunk(HeadedText):
    file: str
    line_start: int
    line_end: int
    text: str  # verbatim substring of lines line_start..line_end
    heading: list[str] = field(default_factory=list)
    kind: str = "prose"  # prose | code
    clean: str = ""  # text with layout markup removed (what the LLM reads)
    section: int = 0  # heading lines before it: two sections of one file may share a heading path

    @property
    def text_hash(self) -> str:
        return hashlib.sha1(self.embed_text.encode("utf-8")).hexdigest()[:16]

    @property
    def id(self) -> str:
        key = f"{self.file}\x00{self.line_start}\x00{self.line_end}\x00{self.text}"
        return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def _cite_text(keys: str) -> str:
    """A citation role as the authors and year it names (people ask "what did Bishop show?"):
    ``Glorot.Bengio.2010`` -> ``(Glorot, Bengio 2010)``; ``ea`` (et al.) is dropped; a key
    of another shape (``vaswani2017attention``) is kept as it is."""
    out = []
    for key in re.split(r"[,;\s]+", keys.strip()):
        parts = [x for x in key.split(".") if x and x != "ea"]
        if len(parts) >= 2 and parts[-1].isdigit():
            out.append(", ".join(parts[:-1]) + " " + parts[-1])
        elif key:
            out.append(key)
    return f" ({'; '.join(out)})" if out else ""


def clean_markup(text: str) -> str:
    """Remove cross-reference and layout markup; keep link and wikilink text."""
    lines = [ln for ln in text.split("\n") if not _LAYOUT_LINE.match(ln)]
    out = "\n".join(lines)
    out = _INLINE_ROLE.sub("", out)
    out = _CITE_ROLE.sub(lambda m: _cite_text(m.group(2)), out)
    out = _IMAGE.sub("", out)
    out = _WIKILINK.sub(lambda m: m.group(2) or m.group(1), out)
    out = _LINK.sub(r"\1", out)
    out = _HTML_TAG.sub("", out)
    out = re.sub(r"[ \t]+\n", "\n", out)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip()


# --- the block scanner -------------------------------------------------------------


@dataclass
class _Unit:
    start: int  # 1-based line
    end: int
    text: str
    kind: str  # prose | code
    heading: tuple[str, ...]
    section: int = 0  # how many heading lines precede the unit: two sections may share a path


def _front_matter_end(lines: list[str]) -> int:
    """Index of the line after YAML front matter, or 0 when there is none."""
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


def parse_front_matter(text: str) -> dict:
    lines = text.split("\n")
    end = _front_matter_end(lines)
    if not end:
        return {}
    try:
        import yaml

        data = yaml.safe_load("\n".join(lines[1 : end - 1]))
    except Exception:  # malformed front matter is just text we skip
        return {}
    return data if isinstance(data, dict) else {}


def _math_opens(line: str) -> str | None:
    """The closing delimiter a line leaves open, if it opens display math."""
    s = line.strip()
    # display math opens a block only at the start of a line; a formula cut off
    # mid-line (excerpts truncated with "...") must not swallow the lines after it
    if not s.startswith(("$$", "\\[", "\\begin{")):
        return None
    if s.count("$$") % 2 == 1:
        return "$$"
    if s.count("\\[") > s.count("\\]"):
        return "\\]"
    if re.search(r"\\begin\{(equation|align|aligned|gather|multline)\*?\}", s) and not re.search(
        r"\\end\{(equation|align|aligned|gather|multline)\*?\}", s
    ):
        return "\\end{"
    return None


def _units(lines: list[str], markdown: bool) -> list[_Unit]:
    units: list[_Unit] = []
    heading: list[tuple[int, str]] = []
    section = 0
    i = _front_matter_end(lines) if markdown else 0
    para: list[int] = []  # line indexes of the open paragraph

    def path() -> tuple[str, ...]:
        return tuple(t for _, t in heading)

    def flush():
        if para:
            text = "\n".join(lines[j] for j in para)
            if text.strip():
                units.append(_Unit(para[0] + 1, para[-1] + 1, text, "prose", path(), section))
            para.clear()

    n = len(lines)
    while i < n:
        line = lines[i]
        if markdown:
            m = _HEADING.match(line)
            if m:
                flush()
                level = len(m.group(1))
                while heading and heading[-1][0] >= level:
                    heading.pop()
                heading.append((level, clean_markup(m.group(2)) or m.group(2)))
                section += 1
                i += 1
                continue
            f = _FENCE.match(line)
            if f:
                flush()
                mark = f.group(1)
                j = i + 1
                while j < n and not lines[j].strip().startswith(mark[0] * len(mark)):
                    j += 1
                end = min(j, n - 1)
                units.append(_Unit(i + 1, end + 1, "\n".join(lines[i : end + 1]), "code", path(), section))
                i = end + 1
                continue
        if not line.strip():
            flush()
            i += 1
            continue
        closer = _math_opens(line)
        if closer:
            # a display-math block joins the paragraph it belongs to, whole
            j = i + 1
            limit = min(n, i + 80)
            while j < limit:
                if closer == "\\end{":
                    if re.search(r"\\end\{", lines[j]):
                        break
                elif closer in lines[j]:
                    break
                j += 1
            if j >= limit:  # never closed: treat the line as ordinary text
                j = i
            end = min(j, n - 1)
            para.extend(range(i, end + 1))
            i = end + 1
            continue
        if not markdown:
            # plain text: one line is one excerpt
            flush()
            para.append(i)
            flush()
        else:
            para.append(i)
        i += 1
    flush()
    return units


# --- sentences ---------------------------------------------------------------------


def _bounded_sentences(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Sentences with line-broken ones joined (``prose_sentence_spans``), except that a
    "sentence" of several lines longer than ``max_chars`` falls back to its lines: lines that
    never end with a sentence mark (a word list, key: value lines, pasted output) would
    otherwise join into one chunk of any size."""
    raw = sentence_spans(text)  # every line end is a cut here
    out: list[tuple[int, int]] = []
    for s, e in prose_sentence_spans(text):
        if e - s > max_chars and "\n" in text[s:e].rstrip("\n"):
            out.extend((a, b) for a, b in raw if s <= a and b <= e)
        else:
            out.append((s, e))
    return out


def _split_long(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Group sentences into pieces of at most ``max_chars`` (a single longer sentence
    stays whole rather than being cut mid-formula or mid-sentence)."""
    pieces: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for s, e in _bounded_sentences(text, max_chars):
        if cur is None:
            cur = (s, e)
        elif e - cur[0] <= max_chars:
            cur = (cur[0], e)
        else:
            pieces.append(cur)
            cur = (s, e)
    if cur:
        pieces.append(cur)
    # avoid a tiny tail: fold it into the previous piece when that stays reasonable
    if len(pieces) >= 2 and pieces[-1][1] - pieces[-1][0] < max_chars // 5:
        a, b = pieces[-2], pieces[-1]
        pieces[-2:] = [(a[0], b[1])]
    return pieces


def _lines_of(unit: _Unit, s: int, e: int) -> tuple[int, int]:
    before = unit.text.count("\n", 0, s)
    inside = unit.text.count("\n", s, len(unit.text[s:e].rstrip("\n")) + s)
    return unit.start + before, unit.start + before + inside


def _trim(unit: _Unit, s: int, e: int) -> tuple[int, int]:
    while s < e and unit.text[s] in " \t\n":
        s += 1
    while e > s and unit.text[e - 1] in " \t\n":
        e -= 1
    return s, e


def split_text(text: str, file: str, markdown: bool | None = None, max_chars: int = DEFAULT_MAX_CHARS,
               max_chars_en: int | None = None) -> list[Chunk]:
    """Chunks of one note. ``markdown`` defaults to the file's suffix. ``max_chars_en``, when
    given, is the size for a note written in English: a Chinese character carries about as
    much as two or three English ones, and English notes retrieved better at twice the size
    (benchmarks/README.md, "Chunk size by language")."""
    if max_chars_en and text_language(_FENCED_CODE.sub("", text)) == "en":  # prose decides, not code
        max_chars = max_chars_en
    if markdown is None:
        markdown = file.lower().endswith((".md", ".markdown"))
    lines = text.split("\n")
    chunks: list[Chunk] = []
    group: list[_Unit] = []

    def emit_group():
        if not group:
            return
        start, end = group[0].start, group[-1].end
        verbatim = "\n".join(lines[start - 1 : end])
        chunks.append(Chunk(file, start, end, verbatim, list(group[0].heading), "prose", clean_markup(verbatim),
                            group[0].section))
        group.clear()

    for unit in _units(lines, markdown):
        if unit.kind == "code":
            emit_group()
            for piece in _split_code(unit):
                chunks.append(piece)
            continue
        clean = clean_markup(unit.text)
        if not clean:
            continue  # pure layout markup: nothing to embed or quote
        if len(unit.text) > max_chars:
            emit_group()
            for s, e in _split_long(unit.text, max_chars):
                s, e = _trim(unit, s, e)
                if s >= e:
                    continue
                ls, le = _lines_of(unit, s, e)
                piece = unit.text[s:e]
                c = clean_markup(piece)
                if c:
                    chunks.append(Chunk(file, ls, le, piece, list(unit.heading), "prose", c, unit.section))
            continue
        if group and (group[0].section != unit.section
                      or sum(len(u.text) for u in group) + len(unit.text) > max_chars):
            emit_group()
        group.append(unit)
    emit_group()
    for c in chunks:
        c.file = file
    # a lone link or label ("[Discussions](https://…)" -> "Discussions") is not a passage
    # anyone asks about, but short texts rank high in dense search: keep them out
    return [c for c in chunks if c.kind == "code" or _has_content(c.clean)]


def _has_content(clean: str) -> bool:
    compact = re.sub(r"\s+", "", clean)
    return len(compact) >= 12 or bool(re.search(r"\d", compact)) or len(HAN_CHAR.findall(compact)) >= 4


def _split_code(unit: _Unit) -> list[Chunk]:
    heading = list(unit.heading)
    if len(unit.text) <= MAX_CODE_CHARS:
        return [Chunk("", unit.start, unit.end, unit.text, heading, "code", unit.text, unit.section)]
    # a very long listing: cut at blank lines so no piece is unreadably large
    out: list[Chunk] = []
    lines = unit.text.split("\n")
    cur: list[int] = []
    size = 0
    for k, ln in enumerate(lines):
        cur.append(k)
        size += len(ln) + 1
        if size >= MAX_CODE_CHARS and (not ln.strip() or size >= 2 * MAX_CODE_CHARS):
            t = "\n".join(lines[cur[0] : cur[-1] + 1])
            out.append(Chunk("", unit.start + cur[0], unit.start + cur[-1], t, heading, "code", t, unit.section))
            cur, size = [], 0
    if cur:
        t = "\n".join(lines[cur[0] : cur[-1] + 1])
        out.append(Chunk("", unit.start + cur[0], unit.start + cur[-1], t, heading, "code", t, unit.section))
    return [c for c in out if c.text.strip()]
