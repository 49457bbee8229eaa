"""How the web chat shows things: every piece of note or answer text is HTML-escaped
before it reaches a Markdown or HTML component (and Gradio's sanitizer runs on top), so
a note holding ``<script>`` or ``<img onerror=...>`` is shown as text and runs nothing.

Pure functions from answers and notes to Markdown/HTML strings; the controller and the
layout are in :mod:`assistant.ui`.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .notes_access import NoteView
    from .query import Answer

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
SOURCES_PLACEHOLDER = "*Sources of the answer appear here.*"

CSS = """
#na-sources mark, #na-note mark { background: #fde68a; color: inherit; padding: 0 1px; }
#na-note table.na-lines { border-collapse: collapse; width: 100%; font-size: 0.9em; }
#na-note td.na-ln { color: #888; text-align: right; padding: 0 8px 0 0; user-select: none;
                    vertical-align: top; font-family: ui-monospace, monospace; width: 3em; }
#na-note td.na-tx { white-space: pre-wrap; word-break: break-word; padding: 0 4px; }
#na-note tr.na-hit td { background: rgba(253, 230, 138, 0.35); }
#na-note .na-head { font-weight: 600; margin-bottom: 6px; }
#na-note .na-refused { color: #b91c1c; }
#na-sources .na-passage { border-left: 3px solid #d1d5db; padding: 0 0 0 10px; margin: 4px 0 12px 0; }
#na-note table.na-lines, #na-note table.na-lines tr, #na-note table.na-lines td { border: none !important; }
"""


# --- escaping ------------------------------------------------------------------------

def escape_html(text: str) -> str:
    """Text for an HTML component: every markup and template character as an entity."""
    out = html.escape(text or "", quote=True)
    return out.replace("{", "&#123;").replace("}", "&#125;").replace("$", "&#36;").replace("`", "&#96;")


def escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)


def escape_markdown(text: str) -> str:
    """Markdown with every HTML tag shown as text; code spans and fences are left alone
    (Markdown already shows them as text) and LaTeX delimiters stay for the renderer."""
    parts = _CODE.split(text or "")
    return "".join(p if i % 2 else escape_text(p) for i, p in enumerate(parts))


def highlight(lines: Sequence[str], quote: str, escape) -> list[str]:
    """Escape each line, wrapping the part of it inside ``quote`` in <mark>."""
    joined = "\n".join(lines)
    q = (quote or "").strip()
    pos = joined.find(q) if q else -1
    out, offset = [], 0
    for ln in lines:
        a, b = offset, offset + len(ln)
        if pos >= 0 and pos < b and pos + len(q) > a and ln:
            s, e = max(pos, a) - a, min(pos + len(q), b) - a
            out.append(escape(ln[:s]) + "<mark>" + escape(ln[s:e]) + "</mark>" + escape(ln[e:]))
        else:
            out.append(escape(ln))
        offset = b + 1
    return out


def lines_label(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


def note_html(view: NoteView | None, quote: str = "", error: str | None = None) -> str:
    """A note opened around a reference (:meth:`NotesAssistant.open_note`) as escaped HTML with
    line numbers, the referenced lines marked; ``error`` instead says why it was not opened."""
    if view is None:
        return refused_html(error or "no note")
    a, b, lo, hi, n = view.start, view.end, view.lo, view.hi, view.count
    hit_lines = view.referenced
    marked = highlight(hit_lines, quote, escape_html) if hit_lines else []
    rows = []
    for i, ln in enumerate(view.shown, lo):
        hit = a <= i <= b
        body = marked[i - a] if hit else escape_html(ln)
        rows.append(f'<tr class="{"na-hit" if hit else ""}"><td class="na-ln">{i}</td>'
                    f'<td class="na-tx">{body}</td></tr>')
    where = f"lines {lines_label(a, b)} · showing {lo}-{hi} of {n}" if a else f"{n} lines"
    return (f'<div class="na-head">{escape_html(view.rel)}'
            f' · {escape_html(where)}</div><table class="na-lines">{"".join(rows)}</table>')


def refused_html(message: str) -> str:
    return f'<div class="na-refused">{escape_html(message)}</div>'


# --- rendering answers and sources ---------------------------------------------------

def _fenced(lines: Sequence[str]) -> list[bool]:
    """For each line: is it inside (or the fence of) a ``` code block?"""
    out, inside = [], False
    for ln in lines:
        fence = ln.lstrip().startswith("```")
        out.append(inside or fence)
        if fence:
            inside = not inside
    return out


def passage_markdown(text: str, quote: str = "") -> str:
    """A note passage as Markdown: HTML escaped, the quote in <mark>, code fences as they are."""
    lines = text.split("\n")
    fenced = _fenced(lines)
    marked = highlight(lines, quote, escape_text)
    out = [(ln if f else m) for ln, m, f in zip(lines, marked, fenced)]
    # an HTML block around Markdown (blank lines keep the Markdown and LaTeX inside rendered)
    return '<div class="na-passage">\n\n' + "\n".join(out) + "\n\n</div>"


def ref_label(file: str, a: int, b: int) -> str:
    return f"{file}:{lines_label(a, b)}"


def sources_view(ans: Answer | None) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """(Markdown of the Sources panel, dropdown choices, quote per ref)."""
    if ans is None:
        return "", [], {}
    quotes: dict[str, str] = {}
    choices: list[tuple[str, str]] = []
    parts: list[str] = []
    if ans.standalone_question and ans.standalone_question != ans.question:
        parts.append(f"*Follow-up read as:* **{escape_text(ans.standalone_question)}**\n")
    if ans.citations:
        parts.append("#### Sources\nThe `[n]` markers in the answer point here.\n")
        for c in ans.citations:
            ref = ref_label(c.file, c.line_start, c.line_end)
            src = ans.sources[c.n - 1] if 0 < c.n <= len(ans.sources) else None
            text = src.chunk.text if src is not None and src.chunk.file == c.file else c.quote
            head = src.chunk.heading_path if src is not None and src.chunk.heading else ""
            parts.append(f"**[{c.n}]** <code>{escape_text(c.file)}</code> · lines {lines_label(c.line_start, c.line_end)}"
                         + (f" · {escape_text(head)}" if head else "") + "\n")
            parts.append(passage_markdown(text, c.quote) + "\n")
            quotes[ref] = c.quote
            choices.append((f"[{c.n}] {ref}", ref))
        cited = {(c.file, c.line_start) for c in ans.citations}
        rest = [p for p in ans.sources if (p.chunk.file, p.chunk.line_start) not in cited]
        rest = [p for p in rest if all(p.chunk.file != c.file or not
                                       (p.chunk.line_start <= c.line_start <= p.chunk.line_end)
                                       for c in ans.citations)]
        title = "Also retrieved (not cited)"
    else:
        rest = list(ans.sources)
        if ans.refused:
            title = "The notes do not cover this. Nearest notes"
        elif ans.error:
            title = "Retrieved notes"
        else:
            title = "Retrieved notes (the answer cites none of them)"
    if rest:
        parts.append(f"#### {title}\n")
        for p in rest:
            c = p.chunk
            ref = ref_label(c.file, c.line_start, c.line_end)
            where = ", ".join(f"<code>{escape_text(l.file)}</code> · lines {lines_label(l.line_start, l.line_end)}"
                              for l in (p.locations or []))
            where = where or f"<code>{escape_text(c.file)}</code> · lines {lines_label(c.line_start, c.line_end)}"
            parts.append(f"- {where} · score {p.score:.2f}\n")
            parts.append(passage_markdown(c.text) + "\n")
            if ref not in dict((v, k) for k, v in choices):
                choices.append((f"· {ref}", ref))
    return "\n".join(parts), choices, quotes


def answer_markdown(ans: Answer) -> str:
    """The chat bubble for a finished answer: checked text, then a Sources line."""
    body = escape_markdown(ans.answer.strip())
    if ans.error:
        msg = f"⚠️ {escape_text(ans.error)}"
        if ans.sources:
            msg += "\n\nThe retrieved notes are in the Sources panel."
        body = (body + "\n\n" + msg) if body else msg
    if ans.incomplete and not ans.error:
        body += "\n\n*(answer incomplete)*"
    if ans.citations:
        refs = " · ".join(f"[{c.n}] <code>{escape_text(ref_label(c.file, c.line_start, c.line_end))}</code>"
                          for c in ans.citations)
        body += f"\n\n**Sources:** {refs}"
    return body


def answered_by(ans: Answer) -> str:
    who = ans.llm or ("no model: the notes do not cover it" if ans.refused else "no model")
    secs = ans.timings_ms.get("total", 0) / 1000
    return f"*Answered by {escape_text(who)} in {secs:.1f} s.*"


def error_markdown(message: str) -> str:
    return f"⚠️ {escape_text(message)}"
