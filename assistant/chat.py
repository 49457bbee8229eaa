"""`assistant chat`: a terminal chat on the same query API as the web chat.

    > MAE 的掩码率是多少？
    MAE 默认遮住 75% 的 patch [1]。
    Sources: [1] 001_mae.txt:12
    > 那 BERT 呢？                     a follow-up: rewritten with the conversation, as in the web chat
    > /sources                          the last answer's sources, with their text
    > /open 1                           the lines of source [1], with line numbers
    > /new                              forget the conversation
    > /quit                             (or Ctrl-D)

Answers stream as they are generated (:meth:`NotesAssistant.stream`, with ``history``);
the line editor is GNU readline (arrows, Ctrl-R, ...) with a history file that outlives
the session. Ctrl-C stops the answer being shown (or clears the line being typed).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Callable, TextIO

from .errors import UserError
from .index_files import printable

MAX_TURNS = 20  # as the web chat
OPEN_CONTEXT = 2  # lines shown around a cited passage by /open
HELP = ("/sources  the last answer's sources · /open N  the lines of source N · /new  start over · "
        "/quit  leave (or Ctrl-D)")


def _lines(a: int, b: int) -> str:
    return f"{a}" if a == b else f"{a}-{b}"


class TerminalChat:
    def __init__(self, qa: Any, out: TextIO | None = None, history_file: Path | None = None,
                 top_k: int | None = None, read_line: Callable[[str], str] = input):
        self.qa = qa
        self.out = out or sys.stdout
        self.history_file = history_file
        self.top_k = top_k
        self.read_line = read_line
        self.turns: list[tuple[str, str]] = []
        self.last = None  # the last Answer
        self._busy = threading.Lock()  # one generation at a time, even after Ctrl-C left one running

    # --- output ---------------------------------------------------------------------
    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(printable(text) + end)
        self.out.flush()

    # --- the loop -------------------------------------------------------------------
    def run(self) -> None:
        self._start_line_editing()
        try:
            where = self.qa.notes_dir
        except UserError as exc:
            self.say(f"error: {exc}")
            raise
        self.say(f"notes-assistant chat over {where}")
        self.say(HELP)
        try:
            while True:
                try:
                    line = self.read_line("> ")
                except EOFError:
                    self.say()
                    return
                except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh line, as in a shell
                    self.say()
                    continue
                line = line.strip()
                if not line:
                    continue
                if line.startswith("/"):
                    if self.command(line) == "quit":
                        return
                    continue
                self.ask(line)
        finally:
            self._save_history()

    def command(self, line: str) -> str | None:
        name, _, arg = line.partition(" ")
        name = name.lower()
        if name in ("/quit", "/exit", "/q"):
            return "quit"
        if name == "/new":
            self.turns, self.last = [], None
            self.say("(new conversation: earlier questions are forgotten)")
        elif name == "/sources":
            self.show_sources()
        elif name == "/open":
            self.open(arg.strip())
        elif name in ("/help", "/?"):
            self.say(HELP)
        else:
            self.say(f"unknown command {name}: {HELP}")
        return None

    # --- asking ---------------------------------------------------------------------
    def ask(self, question: str) -> None:
        with self._busy:
            pass  # an answer interrupted with Ctrl-C may still be finishing: wait for it
        self._busy.acquire()
        events = self.qa.stream(question, top_k=self.top_k, history=list(self.turns))
        streamed, ans = "", None
        try:
            for kind, value in events:
                if kind == "token":
                    streamed += value
                    self.say(value, end="")
                elif kind == "answer":
                    ans = value
                elif kind == "error":
                    self.say(("\n" if streamed else "") + f"error: {value}")
        except KeyboardInterrupt:
            self.say("\n(stopped)")
            threading.Thread(target=self._drain, args=(events,), daemon=True).start()
            return
        self._busy.release()
        if ans is None:
            return
        self.show_answer(ans, streamed)

    def _drain(self, events) -> None:
        try:
            for _ in events:
                pass
        finally:
            self._busy.release()

    def show_answer(self, ans: Any, streamed: str) -> None:
        if streamed:
            self.say()
        if ans.answer and not ans.refused and ans.answer.strip() != streamed.strip():
            self.say("Checked answer:")  # markers were checked against the notes: this is what stands
            self.say(ans.answer.strip())
        elif not streamed and ans.answer:
            self.say(ans.answer.strip())
        if ans.error:
            self.say(f"error: {ans.error}")
        if ans.standalone_question and ans.standalone_question != ans.question:
            self.say(f"(follow-up read as: {ans.standalone_question})")
        if ans.citations:
            self.say("Sources: " + "  ".join(f"[{c.n}] {c.file}:{_lines(c.line_start, c.line_end)}"
                                             for c in ans.citations))
        elif ans.sources and not ans.refused:
            self.say(f"(no citation; {len(ans.sources)} passages retrieved: /sources)")
        self.last = ans
        if ans.answer and not ans.error:
            self.turns = (self.turns + [(ans.question, ans.answer)])[-MAX_TURNS:]

    # --- sources --------------------------------------------------------------------
    def _refs(self) -> list[tuple[str, str, int, int, str]]:
        """(label, file, line_start, line_end, text) of what /open N can open, in /sources order."""
        ans = self.last
        if ans is None:
            return []
        if ans.citations:
            return [(f"[{c.n}]", c.file, c.line_start, c.line_end, c.quote) for c in ans.citations]
        return [(f"{i}.", p.chunk.file, p.chunk.line_start, p.chunk.line_end, p.chunk.text)
                for i, p in enumerate(ans.sources, 1)]

    def show_sources(self) -> None:
        refs = self._refs()
        if not refs:
            self.say("no sources yet: ask a question first")
            return
        if self.last.citations:
            self.say("Sources of the last answer (/open N shows the lines):")
        else:
            self.say("Retrieved, not cited (/open N shows the lines):"
                     if not self.last.refused else "The notes do not cover it; nearest notes (/open N):")
        for label, file, a, b, text in refs:
            short = " ".join(text.split())
            self.say(f"  {label} {file}:{_lines(a, b)}  \"{short[:150]}{'…' if len(short) > 150 else ''}\"")

    def open(self, arg: str) -> None:
        from .note_reader import read_note_lines

        refs = self._refs()
        if not arg.isdigit():
            self.say("usage: /open N  (N from /sources)" if refs else "no sources yet: ask a question first")
            return
        n = int(arg)
        pick = next((r for r in refs if r[0].strip("[].") == str(n)), None)
        if pick is None:
            self.say(f"no source {n}: the last answer has {len(refs)} (/sources)")
            return
        _, file, a, b, _ = pick
        try:
            got = read_note_lines(self.qa, file, a, b, context=OPEN_CONTEXT)
        except UserError as exc:
            self.say(f"error: {exc}")
            return
        self.say(f"{got['file']} · lines {_lines(a, b)} of {got['total_lines']}")
        width = len(str(got["last_shown"]))
        for ln in got["lines"]:
            mark = "→" if a <= ln["n"] <= b else " "
            self.say(f"{mark} {ln['n']:>{width}} │ {ln['text']}")

    # --- line editing -----------------------------------------------------------------
    def _start_line_editing(self) -> None:
        if self.read_line is not input:
            return
        try:
            import readline
        except ImportError:  # (Windows without pyreadline: plain input)
            return
        readline.set_history_length(1000)
        if self.history_file:
            try:
                readline.read_history_file(str(self.history_file))
            except (FileNotFoundError, OSError):
                pass

    def _save_history(self) -> None:
        if self.read_line is not input or not self.history_file:
            return
        try:
            import readline

            Path(self.history_file).parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(str(self.history_file))
        except (ImportError, OSError):
            pass
