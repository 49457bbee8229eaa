"""Human-readable terminal output for the CLI (JSON output lives in query.Answer)."""

from __future__ import annotations

import sys
from typing import Any, Sequence

from . import safe_text
from .safe_text import one_line as _name
from .safe_text import text as T


def _console(stderr: bool = False):
    return safe_text.console(stderr)  # no markup, no emoji codes: every string here is untrusted


def _short(text: str, n: int = 160) -> str:
    t = " ".join(safe_text.one_line(text).split())
    return t if len(t) <= n else t[: n - 1] + "…"


def _lines(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


def render_answer_tail(ans: Any, streamed_text: str = "") -> None:
    """After the streamed answer: the checked answer if it differs, then Sources."""
    out = _console()
    err = _console(stderr=True)
    if streamed_text:
        sys.stdout.write("\n")
        if ans.answer and ans.answer.strip() != streamed_text.strip() and not ans.refused:
            # markers were checked: show the answer as it stands after the check
            out.print(T(("\nChecked answer:", "bold")))
            out.print(T(ans.answer))
    elif ans.answer:
        out.print(T(ans.answer))
    if ans.error:
        err.print(T(("error:", "red"), " ", (ans.error, None), newlines=False))
    if ans.incomplete:
        err.print(T(("(answer incomplete)", "yellow")))
    if ans.refused:
        pass  # the refusal text already lists the nearest notes
    elif ans.citations:
        out.print(T(("\nSources:", "bold")))
        for c in ans.citations:
            out.print(T(f"  [{c.n}] {_name(c.file)}:{_lines(c.line_start, c.line_end)}  \"{_short(c.quote)}\""))
    elif ans.sources:
        out.print(T(("\nRetrieved (not cited):" if ans.answer else "\nRetrieved sources:", "bold")))
        for i, p in enumerate(ans.sources[:5], 1):
            out.print(T(f"  {i}. {_name(p.chunk.file)}:{_lines(p.chunk.line_start, p.chunk.line_end)}  "
                        f"\"{_short(p.chunk.text, 100)}\""))
    sys.stdout.flush()
    for w in ans.warnings:
        if not w.startswith("evidence gate"):
            err.print(T((f"note: {_name(w)}", "dim")))
    llm = ans.llm or "no LLM (the notes do not cover it)" if ans.refused else ans.llm
    t = ans.timings_ms.get("total")
    err.print(T((f"answered by {llm or 'no model'} in {t / 1000:.1f} s", "dim")) if t is not None else "")


def render_passages(passages: Sequence[Any]) -> None:
    out = _console()
    if not passages:
        out.print(T("nothing found"))
        return
    for i, p in enumerate(passages, 1):
        c = p.chunk
        where = ", ".join(f"{_name(l.file)}:{_lines(l.line_start, l.line_end)}" for l in p.locations)
        head = f"  ({_name(c.heading_path)})" if c.heading else ""
        out.print(T(f"{i}. {where}  score {p.score:.2f}{head}"))
        out.print(T(f"   {_short(c.text, 200)}"))


def render_status(info: dict) -> None:
    out = _console()
    s = info["settings"]
    out.print(T(("Settings", "bold"), "  (defaults < config file < environment < flags)"))
    out.print(T(f"  {'config file':<22} {_name(info['config_file'])}{'' if info['config_file_exists'] else '  (none)'}"))
    for k in ("data_dir", "model_dir", "notes_dir", "llm", "embed", "ollama_host", "ollama_model", "context_window",
              "request_timeout", "chroma_url", "chunk_chars", "top_k", "prompt_passages"):
        out.print(T(f"  {k:<22} {_name(s.get(k))}"))
    out.print(T(("Index", "bold")))
    for k, v in info["index"].items():
        out.print(T(f"  {k:<22} {_name(v)}"))
    out.print(T(("Answering model", "bold")))
    for k, v in info["llm"].items():
        out.print(T(f"  {k:<22} {_name(v)}"))
