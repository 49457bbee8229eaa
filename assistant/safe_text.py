"""The one way the CLI prints text it did not write: note text, file names, quotes,
model output, server messages, warnings.

* no Rich markup and no emoji codes are interpreted (``[draft]``, ``[/]``, ``:x:`` are
  shown as written): text goes out as :class:`rich.text.Text` on a console made with
  ``markup=False, emoji=False``;
* control characters are shown escaped, never written raw: C0 other than tab and
  newline (so ESC, BEL, CR, backspace), DEL, C1 (U+0080-U+009F, e.g. the 8-bit CSI), and
  the bidirectional overrides that make a line read differently from its bytes. An
  ``ESC ] 52 ;`` clipboard write becomes the visible text ``\\x1b]52;``.
* ``--json`` keeps the exact text: :func:`json_dumps` escapes only what JSON escapes
  anyway plus C1 and the bidi controls, as ``\\u....`` (the parsed strings are exact).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

# C0 but tab and newline, DEL, C1; bidi embeddings/overrides/isolates; line/paragraph separators
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_CONTROL_NL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def clean(text: Any, newlines: bool = True) -> str:
    """``text`` with every control character shown escaped. ``newlines=False`` escapes
    newlines (and tabs) too, for what must stay on one line: a file name, a warning."""
    s = "" if text is None else str(text)
    if newlines:
        return _CONTROL.sub(_escape, s)
    return _CONTROL_NL.sub(_escape, s).replace("\t", "\\t")


def one_line(text: Any) -> str:
    return clean(text, newlines=False)


def text(*parts: Any, newlines: bool = True):
    """A :class:`rich.text.Text` from ``parts``: plain strings are cleaned (never parsed as
    markup); ``(string, style)`` pairs are cleaned and styled."""
    from rich.text import Text

    out = Text()
    for p in parts:
        if isinstance(p, tuple):
            s, style = p
            out.append(clean(s, newlines), style=style)
        else:
            out.append(clean(p, newlines))
    return out


def console(stderr: bool = False):
    """A console that never reads markup or emoji codes out of what it prints."""
    from rich.console import Console

    if stderr:
        sys.stdout.flush()  # keep stdout and stderr lines in order in a terminal
    return Console(stderr=stderr, highlight=False, soft_wrap=True, markup=False, emoji=False)


def echo(message: Any, err: bool = False) -> None:
    """A plain line (no Rich), its control characters escaped, newlines kept."""
    stream = sys.stderr if err else sys.stdout
    if err:
        sys.stdout.flush()
    stream.write(clean(message) + "\n")
    stream.flush()


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def json_dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps(obj, ensure_ascii=False)`` that a terminal can show safely: the C0
    characters JSON always escapes, and C1 and the bidi controls as ``\\u....``. Parsing
    the output gives the exact strings back."""
    kw.setdefault("ensure_ascii", False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", json.dumps(obj, **kw))
