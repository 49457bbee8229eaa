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
  or ``<img onerror=...>`` is shown as text and runs nothing: the escaping and
  rendering are in :mod:`assistant.ui_render`, this module is the controller and the layout.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # local-first: no phoning home
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import gradio as gr  # noqa: E402

from .errors import UserError  # noqa: E402
from .notes_access import NoteAccessError  # noqa: E402
from .progress import CallbackProgress  # noqa: E402
from .query import Answer, NotesAssistant  # noqa: E402
from .ui_render import (  # noqa: E402
    CSS,
    LATEX,
    SOURCES_PLACEHOLDER,
    answer_markdown,
    answered_by,
    error_markdown,
    escape_markdown,
    escape_text,
    note_html,
    refused_html,
    sources_view,
)

if TYPE_CHECKING:
    from .settings import Settings

MAX_TURNS = 20  # turns kept in a session's history


# --- the controller ------------------------------------------------------------------

class ChatApp:
    """The state shared by every session: one notes folder, one index view, one model."""

    def __init__(self, settings: Settings, qa: NotesAssistant | None = None):
        self.settings = settings
        self.qa = qa or NotesAssistant(settings, settings.notes_dir)
        self._ingest_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._epochs: dict[str, int] = {}  # per browser session: bumped by New chat
        self._epoch_lock = threading.Lock()

    def notes_dir(self) -> Path | None:
        """Where the notes are, without failing."""
        return self.qa.notes_folder()

    def indexed_files(self) -> set[str] | None:
        return self.qa.indexed_files()

    def status_markdown(self) -> str:
        try:
            return self._status_markdown()
        except Exception as exc:  # noqa: BLE001 - one readable line, never a traceback
            return error_markdown(f"status unavailable: {type(exc).__name__}: {exc}")

    def _status_markdown(self) -> str:
        rows = []
        info = self.qa.status()
        st = info["index"]
        if "error" not in st:
            rows.append(f"**Notes folder** <code>{escape_text(st['notes_dir'])}</code>")
            rows.append(f"**Indexed** {st['files']} files, {st['chunks']} chunks "
                        f"(embeddings: {escape_text(st['embed_model'])})")
            from .index_files import status_markdown_rows  # totals and skipped files, with reasons

            rows.extend(status_markdown_rows(self.qa, escape_text))
        else:
            nd = self.notes_dir()
            if nd is not None:
                rows.append(f"**Notes folder** <code>{escape_text(str(nd))}</code>")
            rows.append(f"**Indexed** nothing yet: {escape_text(st['error'])}"
                        + (" (or press Re-ingest)" if nd is not None else ""))
        llm = info["llm"]
        if "error" not in llm:
            name = llm.get("answering", "?")
            if name.startswith("ollama:"):
                ok = llm.get("reachable", llm.get("ollama_running"))
                reach = (f"reachable at {llm['ollama_host']}" if ok
                         else f"**not reachable** at {llm['ollama_host']}: start it with `ollama serve`")
            else:
                reach = "runs in-process, " + ("loaded" if self.qa.llm_loaded else "loads on the first question")
            rows.append(f"**Answering model** <code>{escape_text(name)}</code>, {escape_text(reach)}")
            if llm.get("note"):
                rows.append(escape_text(llm["note"]))
        else:
            rows.append(f"**Answering model** {escape_text(llm['error'])}")
        return "  \n".join(rows)

    def reingest(self, progress: Any = None) -> tuple[str, str]:
        nd = self.notes_dir()
        if nd is None:
            return self.status_markdown(), error_markdown(
                "no notes folder known: start the UI with `assistant ui --notes FOLDER`")
        if not self._ingest_lock.acquire(blocking=False):
            return self.status_markdown(), error_markdown("an ingest is already running")
        try:
            summary = self.qa.reingest(progress=CallbackProgress(progress))
            msg = "✅ " + escape_text(summary.line())
            for w in summary.warnings:
                msg += "  \n⚠️ " + escape_text(w)
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
        quotes = (state or {}).get("quotes") or {}
        try:
            view = self.qa.open_note(ref)
        except NoteAccessError as exc:
            return refused_html(str(exc))
        except Exception as exc:  # noqa: BLE001
            return refused_html(f"cannot open {ref}: {exc}")
        return note_html(view, quotes.get(ref.strip(), ""))


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


def build_app(settings: Settings, qa: NotesAssistant | None = None) -> gr.Blocks:
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
        # multiple: a question asked while an answer is still finishing queues behind it (concurrency 1),
        # never lost; always_last deferred it in the browser until the abandoned answer's last update
        # reached the page, which after New chat it never did (the next question hung)
        send.click(core.respond, [msg, state], ask_out, api_name="ask", concurrency_id="model",
                   concurrency_limit=1, trigger_mode="multiple")
        msg.submit(core.respond, [msg, state], ask_out, api_name=False, concurrency_id="model",
                   concurrency_limit=1, trigger_mode="multiple")

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


def launch(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
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
