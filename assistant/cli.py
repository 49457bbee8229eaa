"""`assistant`: ingest a notes folder, ask it questions, see where answers come from.

    assistant ingest ~/notes            index the folder (incremental)
    assistant ask "MAE 的掩码率是多少？"   answer with [n] citations and Sources
    assistant search "mask ratio"        retrieval only, no LLM
    assistant status                     settings, index, answering model
    assistant ui                         the web chat
    assistant eval SUITE.yaml            the graded Q&A suite
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Ask your study notes; every answer cites the file and lines it came from.")

# shared options ---------------------------------------------------------------------
DataDir = typer.Option(None, "--data-dir", help="Where the index lives (default: per-user data dir)")
Notes = typer.Option(None, "--notes", help="Notes folder to ask (default: the last one ingested)")
LLMOpt = typer.Option(None, "--llm", help="auto | embedded | embedded:1.5b | ollama:MODEL")
EmbedOpt = typer.Option(None, "--embed", help="e5 (embedded) | ollama:MODEL")
ChromaOpt = typer.Option(None, "--chroma-url", help="Use a `chroma run` server at http://HOST:PORT")


def _settings(**kw):
    from .settings import load_settings

    try:
        return load_settings(**kw)
    except Exception as exc:  # pydantic validation: one line, not a traceback
        _fail(f"bad configuration: {str(exc).splitlines()[0]} (see `assistant status`)")


def _fail(message: str, code: int = 2):
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _guard(fn):
    """Run ``fn``; a UserError becomes one line on stderr and a non-zero exit."""
    from .errors import UserError

    try:
        return fn()
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


# ingest -----------------------------------------------------------------------------

@app.command()
def ingest(
    notes_dir: Optional[Path] = typer.Argument(None, help="Folder of notes (.md, .markdown, .txt)"),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON"),
    rebuild: bool = typer.Option(False, "--rebuild", help="Drop the index of this folder and build it again"),
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
    chunk_chars: Optional[int] = typer.Option(None, "--chunk-chars", help="Target chunk size in characters"),
):
    """Index a notes folder: only new or changed files are embedded."""
    s = _settings(data_dir=data_dir, embed=embed, chroma_url=chroma_url, chunk_chars=chunk_chars,
                  notes_dir=notes_dir)
    from ingest.index import notes_folder

    folder = notes_folder(s.data_dir, notes_dir, s.notes_dir)
    if folder is None:
        _fail("which folder? run `assistant ingest NOTES_DIR`")
    from .indexing import ingest_notes

    progress = None
    if not as_json:
        from rich.console import Console

        from .progress import RichProgress

        progress = RichProgress(Console(stderr=True))
    try:
        summary = _guard(lambda: ingest_notes(s, folder, progress=progress, rebuild=rebuild))
    finally:
        if progress:
            progress.close()
    if as_json:
        from dataclasses import asdict

        typer.echo(json.dumps(asdict(summary), ensure_ascii=False))
    else:
        for w in summary.warnings:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(summary.line())


# ask / search -----------------------------------------------------------------------

@app.command()
def ask(
    question: str = typer.Argument(..., help="Your question, in Chinese or English"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (see README)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=50, help="Sources to retrieve"),
    notes: Optional[Path] = Notes,
    llm: Optional[str] = LLMOpt,
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
    context_window: Optional[int] = typer.Option(None, "--context-window", help="Ollama num_ctx"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Ollama request timeout (s)"),
):
    """Answer a question from the notes, with [n] citations and the Sources they point to."""
    if not question.strip():  # before the slow imports
        _fail('the question is empty: ask something, e.g. assistant ask "MAE 的掩码率是多少？"')
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, notes_dir=notes,
                  context_window=context_window, request_timeout=timeout)
    from .query import NotesAssistant

    qa = NotesAssistant(s)
    streamed = []

    def on_token(t: str):
        if not as_json:
            streamed.append(t)
            sys.stdout.write(t)
            sys.stdout.flush()

    ans = _guard(lambda: qa.ask(question, top_k=top_k, on_token=None if as_json else on_token))
    if as_json:
        typer.echo(json.dumps(ans.to_json(), ensure_ascii=False))
        raise typer.Exit(1 if ans.error and not ans.answer else 0)
    from .render import render_answer_tail

    render_answer_tail(ans, streamed_text="".join(streamed))
    raise typer.Exit(1 if ans.error and not ans.answer else 0)


@app.command()
def search(
    query: str = typer.Argument(..., help="What to look for"),
    as_json: bool = typer.Option(False, "--json"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=50),
    notes: Optional[Path] = Notes,
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
):
    """Retrieve the passages that match, without asking the LLM."""
    s = _settings(data_dir=data_dir, embed=embed, chroma_url=chroma_url, notes_dir=notes)
    from .query import NotesAssistant, sources_json

    qa = NotesAssistant(s)
    passages = _guard(lambda: qa.search(query, top_k))
    if as_json:
        typer.echo(json.dumps(sources_json(passages), ensure_ascii=False))
        return
    from .render import render_passages

    render_passages(passages)


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json"),
    notes: Optional[Path] = Notes,
    llm: Optional[str] = LLMOpt,
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
):
    """The settings in force, the index and the answering model."""
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, notes_dir=notes)
    from .query import NotesAssistant

    info = NotesAssistant(s).status()
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    from .render import render_status

    render_status(info)


# ui ---------------------------------------------------------------------------------

@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any but loopback prints a warning"),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to serve on"),
    auth: Optional[str] = typer.Option(None, "--auth", envvar="NOTES_ASSISTANT_UI_AUTH",
                                       help="Require this user:password to open the UI"),
    share: bool = typer.Option(False, "--share", help="Make a public Gradio share link (off unless asked)"),
    notes: Optional[Path] = Notes,
    llm: Optional[str] = LLMOpt,
    data_dir: Optional[Path] = DataDir,
    chroma_url: Optional[str] = ChromaOpt,
):
    """The web chat: streaming answers, follow-ups, sources you can open and check."""
    creds = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            _fail("--auth takes user:password (both non-empty)")
        creds = (user, password)
    s = _settings(data_dir=data_dir, llm=llm, notes_dir=notes, chroma_url=chroma_url)
    from . import ui as web  # gradio is slow to import: only for this command

    for w in web.exposure_warnings(host, creds, share):
        typer.echo(f"warning: {w}", err=True)
    _guard(lambda: web.launch(s, host=host, port=port, auth=creds, share=share))


# eval -------------------------------------------------------------------------------

@app.command(name="eval")
def eval_suite(
    suite: Path = typer.Argument(..., help="Suite file (.yaml): notes folder, thresholds, graded cases"),
    notes: Optional[Path] = typer.Option(None, "--notes", help="Notes folder (default: the suite's `notes:`)"),
    llm: Optional[str] = LLMOpt,
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A report.json to compare with"),
    out: Path = typer.Option(Path("eval-out"), "--out", help="Where report.json and report.md go"),
    compare: Optional[str] = typer.Option(None, "--compare", help="naive: grade the 5-line LlamaIndex pipeline too"),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics and gate as one JSON object"),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Run only the first N cases"),
    judge: Optional[str] = typer.Option(None, "--judge", help="LLM judge (e.g. ollama:qwen2.5:7b); never gates"),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, max=2.0,
                                      help="Answer temperature (default 0: the same code gives the same grades)"),
    part: str = typer.Option("all", "--part", help="tune | report | all: the chapters of the suite's `parts:` to run"),
    retrieval_only: bool = typer.Option(False, "--retrieval-only",
                                        help="Grade retrieval alone (hit@1, hit@5, MRR), no LLM: seconds, not minutes"),
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
):
    """Grade retrieval, citations and answers on a suite of Q&A pairs; exit 1 on a regression."""
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, temperature=temperature)
    from .eval import main as run_eval

    code = _guard(lambda: run_eval(s, suite, notes=notes, baseline=baseline, out=out, compare=compare,
                                   as_json=as_json, limit=limit, judge=judge, part=part,
                                   retrieval_only=retrieval_only))
    raise typer.Exit(code)


def main():  # console script entry point
    app()


if __name__ == "__main__":
    main()
