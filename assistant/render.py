"""Human-readable terminal output for the CLI (JSON output lives in query.Answer)."""

from __future__ import annotations

import sys
from typing import Any, Sequence


def _console(stderr: bool = False):
    from rich.console import Console

    if stderr:
        sys.stdout.flush()  # keep stdout and stderr lines in order in a terminal
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _short(text: str, n: int = 160) -> str:
    t = " ".join(text.split())
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
            out.print("\n[bold]Checked answer:[/]")
            out.print(ans.answer, markup=False)
    elif ans.answer:
        out.print(ans.answer, markup=False)
    if ans.error:
        err.print(f"[red]error:[/] {ans.error}", markup=True)
    if ans.incomplete:
        err.print("[yellow](answer incomplete)[/]")
    if ans.refused:
        pass  # the refusal text already lists the nearest notes
    elif ans.citations:
        out.print("\n[bold]Sources:[/]")
        for c in ans.citations:
            out.print(f"  [{c.n}] {c.file}:{_lines(c.line_start, c.line_end)}  \"{_short(c.quote)}\"", markup=False)
    elif ans.sources:
        out.print("\n[bold]Retrieved (not cited):[/]" if ans.answer else "\n[bold]Retrieved sources:[/]")
        for i, p in enumerate(ans.sources[:5], 1):
            out.print(f"  {i}. {p.chunk.file}:{_lines(p.chunk.line_start, p.chunk.line_end)}  "
                      f"\"{_short(p.chunk.text, 100)}\"", markup=False)
    sys.stdout.flush()
    for w in ans.warnings:
        if not w.startswith("evidence gate"):
            err.print(f"[dim]note: {w}[/]")
    llm = ans.llm or "no LLM (the notes do not cover it)" if ans.refused else ans.llm
    t = ans.timings_ms.get("total")
    err.print(f"[dim]answered by {llm or 'no model'} in {t / 1000:.1f} s[/]" if t is not None else "")


def render_passages(passages: Sequence[Any]) -> None:
    out = _console()
    if not passages:
        out.print("nothing found")
        return
    for i, p in enumerate(passages, 1):
        c = p.chunk
        where = ", ".join(f"{l.file}:{_lines(l.line_start, l.line_end)}" for l in p.locations)
        head = f"  ({c.heading_path})" if c.heading else ""
        out.print(f"{i}. {where}  score {p.score:.2f}{head}", markup=False)
        out.print(f"   {_short(c.text, 200)}", markup=False)


def render_status(info: dict) -> None:
    out = _console()
    s = info["settings"]
    out.print("[bold]Settings[/]  (defaults < config file < environment < flags)")
    out.print(f"  {'config file':<22} {info['config_file']}{'' if info['config_file_exists'] else '  (none)'}", markup=False)
    for k in ("data_dir", "model_dir", "notes_dir", "llm", "embed", "ollama_host", "ollama_model", "context_window",
              "request_timeout", "chroma_url", "chunk_chars", "top_k", "prompt_passages"):
        out.print(f"  {k:<22} {s.get(k)}", markup=False)
    out.print("[bold]Index[/]")
    for k, v in info["index"].items():
        out.print(f"  {k:<22} {v}", markup=False)
    out.print("[bold]Answering model[/]")
    for k, v in info["llm"].items():
        out.print(f"  {k:<22} {v}", markup=False)
