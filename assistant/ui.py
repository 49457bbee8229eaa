"""The web chat: a Gradio Blocks app over the same query API as the CLI.

    assistant ui --notes ~/notes          http://127.0.0.1:7860

* answers stream through :meth:`NotesAssistant.stream`; follow-ups are rewritten with
  the conversation (``history=[(question, answer), ...]``), which lives in a
  per-browser-session ``gr.State`` and is never shared between sessions;
* the Sources panel lists the cited passages under the same ``[n]`` the answer uses,
  with the quoted text highlighted, and opens the note around a citation with line
  numbers; only notes inside the notes folder can be opened, whatever the request says;
* the Status panel shows the notes folder, what is indexed, the answering model, and
  re-ingests with progress;
* every piece of note or answer text is HTML-escaped before it reaches a Markdown or
  HTML component (and Gradio's sanitizer runs on top), so a note holding ``<script>``
  or ``<img onerror=...>`` is shown as text and runs nothing.
"""

from __future__ import annotations

import html
import ipaddress
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # local-first: no phoning home
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import gradio as gr  # noqa: E402

from .errors import UserError  # noqa: E402
from .query import Answer, NotesAssistant  # noqa: E402

LATEX = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "$", "right": "$", "display": False},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
]
CONTEXT_LINES = 8  # lines shown around a citation when a note is opened
MAX_TURNS = 20  # turns kept in a session's history
SOURCES_PLACEHOLDER = "*Sources of the answer appear here.*"
NOTE_SUFFIXES = {".md", ".markdown", ".txt"}

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


def _esc_md_plain(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)


def escape_markdown(text: str) -> str:
    """Markdown with every HTML tag shown as text; code spans and fences are left alone
    (Markdown already shows them as text) and LaTeX delimiters stay for the renderer."""
    parts = _CODE.split(text or "")
    return "".join(p if i % 2 else _esc_md_plain(p) for i, p in enumerate(parts))


def _highlight(lines: Sequence[str], quote: str, escape) -> list[str]:
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


def _lines(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


# --- opening a note, safely ----------------------------------------------------------

class NoteAccessError(UserError):
    pass


def safe_note_path(notes_dir: Path, rel: str, indexed: set[str] | None = None) -> Path:
    """The note ``rel`` inside ``notes_dir``, or NoteAccessError.

    The path is resolved (``..``, absolute paths, symlinks all followed) and must land
    inside the resolved notes folder, be a note file, and (when ``indexed`` is given) be
    one of the indexed notes.
    """
    from ingest.paths import OutsideNotesError, note_path  # the one rule, shared with the walk and readers

    root = Path(notes_dir).resolve()
    rel = (rel or "").strip()
    if not rel or "\x00" in rel:
        raise NoteAccessError("no file given")
    try:
        target = note_path(root, rel)
    except OutsideNotesError:
        raise NoteAccessError(f"refused: {rel} is outside the notes folder") from None
    rel_posix = target.relative_to(root).as_posix()
    if any(part.startswith(".") for part in target.relative_to(root).parts):
        raise NoteAccessError(f"refused: {rel} is in a hidden folder, not a note")
    if target.suffix.lower() not in NOTE_SUFFIXES or not target.is_file():
        raise NoteAccessError(f"cannot open {rel}: not a note in the notes folder")
    if indexed is not None and rel_posix not in indexed:
        raise NoteAccessError(f"cannot open {rel}: not an indexed note (re-ingest to add it)")
    return target


_REF = re.compile(r"^(?P<file>.+?)(?::(?P<a>\d+)(?:-(?P<b>\d+))?)?$", re.S)


def parse_ref(ref: str) -> tuple[str, int | None, int | None]:
    """``"dir/note.md:12-14"`` -> ("dir/note.md", 12, 14); lines are optional."""
    m = _REF.match((ref or "").strip())
    if not m:
        return "", None, None
    a = int(m.group("a")) if m.group("a") else None
    b = int(m.group("b")) if m.group("b") else a
    return m.group("file"), a, b


def note_html(notes_dir: Path, ref: str, quote: str = "", indexed: set[str] | None = None,
              context: int = CONTEXT_LINES) -> str:
    """The lines of a note around ``ref`` as escaped HTML with line numbers."""
    rel, a, b = parse_ref(ref)
    try:
        path = safe_note_path(notes_dir, rel, indexed)
        from ingest.load import DecodeError, decode

        try:
            text, _ = decode(path.read_bytes())
        except (OSError, DecodeError) as exc:
            raise NoteAccessError(f"cannot read {rel}: {exc}") from None
    except NoteAccessError as exc:
        return f'<div class="na-refused">{escape_html(str(exc))}</div>'
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    n = len(lines)
    if a is None:
        lo, hi, a, b = 1, n, 0, -1
    else:
        a, b = max(1, min(a, n)), max(1, min(max(a, b or a), n))
        lo, hi = max(1, a - context), min(n, b + context)
    shown = lines[lo - 1:hi]
    hit_lines = lines[a - 1:b] if a else []
    marked = _highlight(hit_lines, quote, escape_html) if hit_lines else []
    rows = []
    for i, ln in enumerate(shown, lo):
        hit = a <= i <= b
        body = marked[i - a] if hit else escape_html(ln)
        rows.append(f'<tr class="{"na-hit" if hit else ""}"><td class="na-ln">{i}</td>'
                    f'<td class="na-tx">{body}</td></tr>')
    where = f"lines {_lines(a, b)} · showing {lo}-{hi} of {n}" if a else f"{n} lines"
    return (f'<div class="na-head">{escape_html(path.relative_to(Path(notes_dir).resolve()).as_posix())}'
            f' · {escape_html(where)}</div><table class="na-lines">{"".join(rows)}</table>')


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
    marked = _highlight(lines, quote, _esc_md_plain)
    out = [(ln if f else m) for ln, m, f in zip(lines, marked, fenced)]
    # an HTML block around Markdown (blank lines keep the Markdown and LaTeX inside rendered)
    return '<div class="na-passage">\n\n' + "\n".join(out) + "\n\n</div>"


def _ref(file: str, a: int, b: int) -> str:
    return f"{file}:{_lines(a, b)}"


def sources_view(ans: Answer | None) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
    """(Markdown of the Sources panel, dropdown choices, quote per ref)."""
    if ans is None:
        return "", [], {}
    quotes: dict[str, str] = {}
    choices: list[tuple[str, str]] = []
    parts: list[str] = []
    if ans.standalone_question and ans.standalone_question != ans.question:
        parts.append(f"*Follow-up read as:* **{_esc_md_plain(ans.standalone_question)}**\n")
    if ans.citations:
        parts.append("#### Sources\nThe `[n]` markers in the answer point here.\n")
        for c in ans.citations:
            ref = _ref(c.file, c.line_start, c.line_end)
            src = ans.sources[c.n - 1] if 0 < c.n <= len(ans.sources) else None
            text = src.chunk.text if src is not None and src.chunk.file == c.file else c.quote
            head = src.chunk.heading_path if src is not None and src.chunk.heading else ""
            parts.append(f"**[{c.n}]** <code>{_esc_md_plain(c.file)}</code> · lines {_lines(c.line_start, c.line_end)}"
                         + (f" · {_esc_md_plain(head)}" if head else "") + "\n")
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
            ref = _ref(c.file, c.line_start, c.line_end)
            where = ", ".join(f"<code>{_esc_md_plain(l.file)}</code> · lines {_lines(l.line_start, l.line_end)}"
                              for l in (p.locations or []))
            where = where or f"<code>{_esc_md_plain(c.file)}</code> · lines {_lines(c.line_start, c.line_end)}"
            parts.append(f"- {where} · score {p.score:.2f}\n")
            parts.append(passage_markdown(c.text) + "\n")
            if ref not in dict((v, k) for k, v in choices):
                choices.append((f"· {ref}", ref))
    return "\n".join(parts), choices, quotes


def answer_markdown(ans: Answer) -> str:
    """The chat bubble for a finished answer: checked text, then a Sources line."""
    body = escape_markdown(ans.answer.strip())
    if ans.error:
        msg = f"⚠️ {_esc_md_plain(ans.error)}"
        if ans.sources:
            msg += "\n\nThe retrieved notes are in the Sources panel."
        body = (body + "\n\n" + msg) if body else msg
    if ans.incomplete and not ans.error:
        body += "\n\n*(answer incomplete)*"
    if ans.citations:
        refs = " · ".join(f"[{c.n}] <code>{_esc_md_plain(_ref(c.file, c.line_start, c.line_end))}</code>"
                          for c in ans.citations)
        body += f"\n\n**Sources:** {refs}"
    return body


def answered_by(ans: Answer) -> str:
    who = ans.llm or ("no model: the notes do not cover it" if ans.refused else "no model")
    secs = ans.timings_ms.get("total", 0) / 1000
    return f"*Answered by {_esc_md_plain(who)} in {secs:.1f} s.*"


def error_markdown(message: str) -> str:
    return f"⚠️ {_esc_md_plain(message)}"


# --- status and ingest ---------------------------------------------------------------

class _GradioProgress:
    """ingest.pipeline's Progress protocol feeding a ``gr.Progress``."""

    def __init__(self, progress: Any):
        self.progress = progress
        self.name, self.total, self.done = "", 0, 0
        self.warnings: list[str] = []

    def stage(self, name: str, total: int) -> None:
        self.name, self.total, self.done = name, max(total, 0), 0
        self._show()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._show()

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def _show(self) -> None:
        if self.progress is not None:
            self.progress((min(self.done, self.total), self.total) if self.total else 0.0,
                          desc=self.name, unit="files" if "notes" in self.name else "chunks")


class ChatApp:
    """The state shared by every session: one notes folder, one index view, one model."""

    def __init__(self, settings: Any, qa: NotesAssistant | None = None):
        self.settings = settings
        self.qa = qa or NotesAssistant(settings, settings.notes_dir)
        self._ingest_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._epochs: dict[str, int] = {}  # per browser session: bumped by New chat
        self._epoch_lock = threading.Lock()

    # where the notes are, without failing
    def notes_dir(self) -> Path | None:
        try:
            return self.qa.notes_dir
        except UserError:
            pass
        if self.settings.notes_dir:
            return Path(self.settings.notes_dir).expanduser().resolve()
        from ingest.index import last_notes_dir

        try:
            return last_notes_dir(self.settings.data_dir)
        except UserError:  # a damaged pointer file: no folder, said by the index status
            return None

    def indexed_files(self) -> set[str] | None:
        try:
            return set(self.qa.snapshot.manifest.files)
        except UserError:
            return None

    def status_markdown(self) -> str:
        try:
            return self._status_markdown()
        except Exception as exc:  # noqa: BLE001 - one readable line, never a traceback
            return error_markdown(f"status unavailable: {type(exc).__name__}: {exc}")

    def _status_markdown(self) -> str:
        rows = []
        try:
            st = self.qa.snapshot.stats()
            rows.append(f"**Notes folder** <code>{_esc_md_plain(st['notes_dir'])}</code>")
            rows.append(f"**Indexed** {st['files']} files, {st['chunks']} chunks "
                        f"(embeddings: {_esc_md_plain(st['embed_model'])})")
            from .index_files import status_markdown_rows  # totals and skipped files, with reasons

            rows.extend(status_markdown_rows(self.qa, _esc_md_plain))
        except UserError as exc:
            nd = self.notes_dir()
            if nd is not None:
                rows.append(f"**Notes folder** <code>{_esc_md_plain(str(nd))}</code>")
            rows.append(f"**Indexed** nothing yet: {_esc_md_plain(str(exc))}"
                        + (" (or press Re-ingest)" if nd is not None else ""))
        try:
            from .llm import describe_llm

            info = describe_llm(self.settings)
            name = info.get("answering", "?")
            if name.startswith("ollama:"):
                ok = info.get("reachable", info.get("ollama_running"))
                reach = (f"reachable at {info['ollama_host']}" if ok
                         else f"**not reachable** at {info['ollama_host']}: start it with `ollama serve`")
            else:
                loaded = self.qa._llm is not None
                reach = "runs in-process, " + ("loaded" if loaded else "loads on the first question")
            rows.append(f"**Answering model** <code>{_esc_md_plain(name)}</code>, {_esc_md_plain(reach)}")
            if info.get("note"):
                rows.append(_esc_md_plain(info["note"]))
        except UserError as exc:
            rows.append(f"**Answering model** {_esc_md_plain(str(exc))}")
        return "  \n".join(rows)

    def reingest(self, progress: Any = None) -> tuple[str, str]:
        from ingest.pipeline import run_ingest

        nd = self.notes_dir()
        if nd is None:
            return self.status_markdown(), error_markdown(
                "no notes folder known: start the UI with `assistant ui --notes FOLDER`")
        if not self._ingest_lock.acquire(blocking=False):
            return self.status_markdown(), error_markdown("an ingest is already running")
        try:
            embedder = None
            try:
                embedder = self.qa.snapshot.embedder
            except UserError:
                pass
            adapter = _GradioProgress(progress)
            summary = run_ingest(self.settings, nd, progress=adapter, embedder=embedder)
            msg = "✅ " + _esc_md_plain(summary.line())
            for w in summary.warnings:
                msg += "  \n⚠️ " + _esc_md_plain(w)
        except UserError as exc:
            msg = error_markdown(str(exc))
        except Exception as exc:  # noqa: BLE001 - shown as one line, never a traceback
            msg = error_markdown(f"ingest failed: {type(exc).__name__}: {exc}")
        finally:
            self._ingest_lock.release()
        return self.status_markdown(), msg

    # the chat ------------------------------------------------------------------------
    def new_chat(self, request: gr.Request | None = None) -> tuple:
        """Start over: an answer still streaming in this session stops writing into the chat."""
        sid = _session(request)
        with self._epoch_lock:
            self._epochs[sid] = self._epochs.get(sid, 0) + 1
        return ("", [], _fresh_state(), SOURCES_PLACEHOLDER, gr.update(choices=[], value=None), None, "")

    def _current(self, sid: str, epoch: int) -> bool:
        return self._epochs.get(sid, 0) == epoch

    def respond(self, message: str, state: dict | None, request: gr.Request | None = None) -> Iterator[tuple]:
        state = _fresh_state() if not state else state
        chat = list(state["chat"])
        message = (message or "").strip()
        if not message:
            yield "", chat, state, gr.skip(), gr.skip(), gr.skip()
            return
        sid = _session(request)
        epoch = self._epochs.get(sid, 0)
        chat.append({"role": "user", "content": escape_markdown(message)})
        chat.append({"role": "assistant", "content": "…"})
        yield "", chat, state, "*Searching the notes…*", gr.update(choices=[], value=None), None
        streamed = ""
        ans: Answer | None = None
        history = [tuple(t) for t in state["history"]]
        # one answer at a time on the model, even when an abandoned one (tab closed, New chat) is still
        # finishing in the background: llama.cpp must never run two generations at once
        self._model_lock.acquire()
        events = self.qa.stream(message, history=history)
        finished = False
        try:
            for kind, value in events:
                if not self._current(sid, epoch):
                    break  # New chat was pressed: this answer is no longer wanted
                if kind == "token":
                    streamed += value
                    chat[-1] = {"role": "assistant", "content": escape_markdown(streamed)}
                    yield "", chat, state, gr.skip(), gr.skip(), gr.skip()
                elif kind == "answer":
                    ans = value
                elif kind == "error":
                    hint = ""
                    if "ingest" in value and self.notes_dir() is not None:
                        hint = " (or press Re-ingest in the Status panel)"
                    chat[-1] = {"role": "assistant", "content": error_markdown(value + hint)}
            else:
                finished = True
        except Exception as exc:  # noqa: BLE001 - a readable line in the chat, never a traceback
            finished = True
            chat[-1] = {"role": "assistant", "content": error_markdown(f"unexpected error: {exc}")}
        finally:
            if finished:
                self._model_lock.release()
            else:  # closed mid-answer: let it run out, then free the model
                threading.Thread(target=_drain, args=(events, self._model_lock), daemon=True).start()
        if not self._current(sid, epoch):  # leave the new chat as New chat made it
            yield ("", [], _fresh_state(), SOURCES_PLACEHOLDER, gr.update(choices=[], value=None), None)
            return
        if ans is None:
            state = {**state, "chat": chat}
            yield "", chat, state, "*No answer, no sources.*", gr.update(choices=[], value=None), None
            return
        chat[-1] = {"role": "assistant", "content": answer_markdown(ans)}
        md, choices, quotes = sources_view(ans)
        md += "\n\n" + answered_by(ans)
        hist = list(state["history"])
        if ans.answer and not ans.error:
            hist.append((message, ans.answer))
        state = {"chat": chat, "history": hist[-MAX_TURNS:], "quotes": quotes}
        first = choices[0][1] if choices and ans.citations else None
        yield "", chat, state, md, gr.update(choices=choices, value=first), ans.to_json()

    def open_note(self, ref: str, state: dict | None) -> str:
        if not ref:
            return ""
        nd = self.notes_dir()
        if nd is None:
            return f'<div class="na-refused">{escape_html("no notes folder yet")}</div>'
        quotes = (state or {}).get("quotes") or {}
        try:
            return note_html(nd, ref, quotes.get(ref.strip(), ""), self.indexed_files())
        except Exception as exc:  # noqa: BLE001
            return f'<div class="na-refused">{escape_html(f"cannot open {ref}: {exc}")}</div>'


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "-"


def _drain(events: Iterator, lock: threading.Lock) -> None:
    try:
        for _ in events:
            pass
    except Exception:  # noqa: BLE001 - nobody is listening any more
        pass
    finally:
        lock.release()


def _fresh_state() -> dict:
    return {"chat": [], "history": [], "quotes": {}}


def build_app(settings: Any, qa: NotesAssistant | None = None) -> gr.Blocks:
    """The Blocks app; launch it with :func:`launch` (or ``.launch(css=CSS)``)."""
    core = ChatApp(settings, qa)
    with gr.Blocks(title="notes-assistant", fill_width=True) as demo:
        demo.core = core  # for tests and embedding
        state = gr.State(_fresh_state())  # per browser session: deep-copied for each one
        gr.Markdown("## notes-assistant · 问你的笔记\nAnswers come from your notes only; every `[n]` "
                    "points to the file and lines it came from.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat", elem_id="na-chat", height=520, latex_delimiters=LATEX,
                    sanitize_html=True, render_markdown=True, buttons=["copy"], feedback_options=None,
                    allow_tags=False,
                    placeholder="Ask a question about your notes, e.g. **多头注意力用了几个头？** "
                                "Follow-ups such as **它的维度呢？** use the conversation.")
                with gr.Row():
                    msg = gr.Textbox(placeholder="问你的笔记… / Ask your notes…", show_label=False,
                                     scale=5, elem_id="na-input", lines=1, max_lines=4, autofocus=True)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="na-ask")
                    new = gr.Button("New chat", scale=1, elem_id="na-new")
                with gr.Accordion("Status", open=False, elem_id="na-status-box"):
                    status = gr.Markdown(elem_id="na-status")
                    with gr.Row():
                        refresh = gr.Button("Refresh status", size="sm")
                        reingest = gr.Button("Re-ingest notes", size="sm", elem_id="na-reingest")
                    ingest_msg = gr.Markdown(elem_id="na-ingest-msg")
                with gr.Accordion("Answer as JSON", open=False):
                    answer_json = gr.JSON(label="answer", elem_id="na-json")
            with gr.Column(scale=2):
                sources = gr.Markdown(elem_id="na-sources", latex_delimiters=LATEX, sanitize_html=True,
                                      value=SOURCES_PLACEHOLDER, container=True,
                                      max_height=420)
                pick = gr.Dropdown(label="Open a source", choices=[], value=None, interactive=True,
                                   elem_id="na-pick", allow_custom_value=False)
                with gr.Row():
                    path = gr.Textbox(label="…or open a note by path", placeholder="folder/note.md:12",
                                      scale=4, elem_id="na-path")
                    open_btn = gr.Button("Open", scale=1, elem_id="na-open")
                note = gr.HTML(elem_id="na-note", js_on_load=None, min_height=60, max_height=460,
                               container=True)

        ask_out = [msg, chatbot, state, sources, pick, answer_json]
        # always_last: a question asked while an answer is still finishing waits for it, never lost
        send.click(core.respond, [msg, state], ask_out, api_name="ask", concurrency_id="model",
                   concurrency_limit=1, trigger_mode="always_last")
        msg.submit(core.respond, [msg, state], ask_out, api_name=False, concurrency_id="model",
                   concurrency_limit=1, trigger_mode="always_last")

        new.click(core.new_chat, None, ask_out + [note], api_name="new_chat")
        chatbot.clear(core.new_chat, None, ask_out + [note], api_name=False)  # the bin icon starts over too
        pick.change(core.open_note, [pick, state], note, api_name=False)
        open_btn.click(core.open_note, [path, state], note, api_name="open_note")
        path.submit(core.open_note, [path, state], note, api_name=False)

        def do_reingest(progress=gr.Progress()):
            return core.reingest(progress)

        reingest.click(do_reingest, None, [status, ingest_msg], api_name="reingest", concurrency_id="model",
                       concurrency_limit=1)
        refresh.click(core.status_markdown, None, status, api_name="status")
        demo.load(core.status_markdown, None, status, api_name=False)
    return demo


# --- serving -------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    h = (host or "").strip().strip("[]")
    if h in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def exposure_warnings(host: str, auth: tuple[str, str] | None, share: bool) -> list[str]:
    """What to tell the user before serving their notes beyond this machine."""
    out = []
    if not is_loopback(host):
        out.append(f"binding to {host}: other machines on the network can reach this UI and read your notes"
                   + ("; it is protected by --auth, but traffic is plain HTTP" if auth else
                      "; protect it with --auth user:password"))
    if share:
        out.append("--share makes a public link through Gradio's share servers: anyone with the link can read "
                   "your notes" + ("" if auth else "; use --auth user:password"))
    return out


def theme():
    system = ["ui-sans-serif", "system-ui", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "monospace"]
    return gr.themes.Default(font=system, font_mono=mono)  # no web fonts: nothing fetched from the internet


def launch(settings: Any, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
           share: bool = False, block: bool = True, quiet: bool = False, warm: bool = True,
           qa: NotesAssistant | None = None) -> tuple[gr.Blocks, str]:
    """Serve the app; returns ``(demo, local_url)`` (with ``block=False`` it keeps running
    in the background until ``demo.close()``)."""
    demo = build_app(settings, qa)
    demo.queue(default_concurrency_limit=1)
    try:
        _, local_url, _ = demo.launch(
            server_name=host, server_port=port, auth=auth, share=bool(share), prevent_thread_lock=True,
            show_error=False, quiet=quiet, inbrowser=False, ssr_mode=False, theme=theme(), css=CSS,
            footer_links=["api", "settings"], max_file_size="1mb")
    except OSError as exc:
        raise UserError(f"cannot serve on {host}:{port} ({exc}): pick another port with --port") from None
    if not quiet:
        print(f"notes-assistant: open {local_url} in your browser (Ctrl-C to stop)", flush=True)
    if warm:
        # after the URL is printed: llama.cpp silences stdout/stderr while it loads a model
        threading.Thread(target=_warm, args=(demo.core,), daemon=True).start()
    if block:
        demo.block_thread()
    return demo, local_url


def _warm(core: ChatApp) -> None:
    """Load the index view, the embedder and the LLM before the first question."""
    try:
        core.qa.snapshot.embedder  # noqa: B018
        core.qa.llm  # noqa: B018
    except Exception:  # noqa: BLE001 - the first question reports the problem properly
        pass
