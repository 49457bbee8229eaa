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

from .safe_text import clean, json_dumps  # the one printing path for text the CLI did not write

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
    from .safe_text import echo, one_line

    echo(f"error: {one_line(message)}", err=True)  # one line, control characters escaped
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
    watch: bool = typer.Option(False, "--watch", help="Stay running: re-ingest whenever a note changes "
                               "(one line per update; Ctrl-C stops)"),
):
    """Index a notes folder: only new or changed files are embedded."""
    s = _settings(data_dir=data_dir, embed=embed, chroma_url=chroma_url, chunk_chars=chunk_chars,
                  notes_dir=notes_dir)
    from ingest.index import notes_folder

    folder = _guard(lambda: notes_folder(s.data_dir, notes_dir, s.notes_dir))
    if folder is None:
        _fail("which folder? run `assistant ingest NOTES_DIR`")
    if watch:
        if as_json or rebuild:
            _fail("--watch prints one line per update; it does not combine with --json or --rebuild")
        _watch(s, folder)
        return
    from .indexing import ingest_notes

    progress = None
    if not as_json:
        from .safe_text import console

        from .progress import RichProgress

        progress = RichProgress(console(stderr=True))
    try:
        summary = _guard(lambda: ingest_notes(s, folder, progress=progress, rebuild=rebuild))
    finally:
        if progress:
            progress.close()
    if as_json:
        from dataclasses import asdict

        typer.echo(json_dumps(asdict(summary)))
    else:
        from .safe_text import echo, one_line

        for w in summary.warnings:
            echo(f"warning: {one_line(w)}", err=True)
        echo(summary.line())


def _watch(s, folder: Path) -> None:
    from .watch import watch_notes

    def echo(line: str) -> None:
        typer.echo(line)
        sys.stdout.flush()

    typer.echo(f"watching {Path(folder).expanduser().resolve()} (Ctrl-C to stop)", err=True)
    from .errors import UserError

    try:
        watch_notes(s, folder, echo=echo)
    except UserError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C: the ingest under way (if any) released its lock; the index is whole
        pass
    typer.echo("watch stopped", err=True)


# ask / search -----------------------------------------------------------------------

EXIT_REFUSED = 4  # `assistant ask`: the notes do not cover the question (documented in the README)


@app.command(epilog="Exit codes: 0 answered; 1 no answer (the model failed); 2 bad input or setup; "
                    "3 another ingest is running; 4 refused: the notes do not cover the question.")
def ask(
    question: str = typer.Argument(..., help="Your question, in Chinese or English; - reads it from standard input"),
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
    if question == "-":
        question = _read_stdin_question()
    if not question.strip():  # before the slow imports
        _fail('the question is empty: ask something, e.g. assistant ask "MAE 的掩码率是多少？"')
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, notes_dir=notes,
                  context_window=context_window, request_timeout=timeout)
    from .query import NotesAssistant

    qa = NotesAssistant(s)
    streamed = []
    json_out = None
    if as_json:  # one object on stdout whatever a library prints: everything else goes to stderr
        from .stdio_guard import stdout_to_stderr

        json_out = stdout_to_stderr()

    def on_token(t: str):
        if not as_json:
            streamed.append(t)
            sys.stdout.write(clean(t))  # model output: control characters escaped
            sys.stdout.flush()

    ans = _guard(lambda: qa.ask(question, top_k=top_k, on_token=None if as_json else on_token))
    code = 1 if ans.error and not ans.answer else EXIT_REFUSED if ans.refused else 0
    if as_json:
        json_out.write(json_dumps(ans.to_json()) + "\n")
        json_out.flush()
        raise typer.Exit(code)
    from .render import render_answer_tail

    render_answer_tail(ans, streamed_text="".join(streamed))
    raise typer.Exit(code)


def _read_stdin_question() -> str:
    """`assistant ask -`: the question is all of standard input (a trailing newline is dropped)."""
    try:
        data = sys.stdin.buffer.read()
    except (OSError, AttributeError) as exc:
        _fail(f"cannot read the question from standard input ({exc})")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        _fail("the question on standard input is not UTF-8 text")


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
        typer.echo(json_dumps(sources_json(passages)))
        return
    from .render import render_passages

    render_passages(passages)


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json"),
    files: bool = typer.Option(False, "--files", help="List each file: its chunk count, or skipped and why"),
    notes: Optional[Path] = Notes,
    llm: Optional[str] = LLMOpt,
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
):
    """The settings in force, the index and the answering model (--files: what got indexed)."""
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, notes_dir=notes)
    from .query import NotesAssistant

    if files:
        from .index_files import file_report, render_file_report

        report = _guard(lambda: file_report(NotesAssistant(s)))
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        else:
            render_file_report(report)
        return

    info = NotesAssistant(s).status()
    if as_json:
        typer.echo(json_dumps(info, indent=2))
        return
    from .render import render_status

    render_status(info)


# chat / mcp -------------------------------------------------------------------------

@app.command()
def chat(
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, max=50, help="Sources to retrieve"),
    history_file: Optional[Path] = typer.Option(None, "--history-file",
                                                help="Line history kept across sessions (default: DATA_DIR/chat-history)"),
    notes: Optional[Path] = Notes,
    llm: Optional[str] = LLMOpt,
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
):
    """A chat in the terminal: streaming answers, follow-ups, /sources, /open N, /new, /quit."""
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, notes_dir=notes)
    from .chat import TerminalChat
    from .query import NotesAssistant

    qa = NotesAssistant(s, s.notes_dir)
    _guard(lambda: qa.snapshot)  # no index yet: one line, before the prompt
    hist = history_file or Path(s.data_dir) / "chat-history"
    _guard(lambda: TerminalChat(qa, history_file=hist, top_k=top_k).run())


@app.command()
def mcp(
    notes: Optional[Path] = Notes,
    llm: Optional[str] = LLMOpt,
    data_dir: Optional[Path] = DataDir,
    embed: Optional[str] = EmbedOpt,
    chroma_url: Optional[str] = ChromaOpt,
):
    """An MCP server on stdio: tools search_notes, ask_notes, read_note (see README for client setup)."""
    s = _settings(data_dir=data_dir, llm=llm, embed=embed, chroma_url=chroma_url, notes_dir=notes)
    from .mcp_server import serve

    _guard(lambda: serve(s))


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
    watch: bool = typer.Option(False, "--watch", help="Re-ingest whenever a note changes; the chat answers "
                               "from each new index without a restart"),
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
    if watch:
        from ingest.index import last_notes_dir

        from .watch import watch_in_background

        folder = s.notes_dir or last_notes_dir(s.data_dir)
        if folder is None:
            _fail("which folder? run `assistant ui --notes NOTES_DIR --watch`")
        if not Path(folder).expanduser().is_dir():
            _fail(f"notes folder {folder} does not exist: check the path")
        watch_in_background(s, folder, echo=lambda line: print(line, flush=True))
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
