"""The one query API that the CLI, the web UI and the graded suite call.

    qa = NotesAssistant(settings)
    qa.search("MAE 的掩码率")          -> list[Passage]
    qa.ask("MAE 的掩码率是多少？")      -> Answer (JSON contract: Answer.to_json())
    for event in qa.stream(question):  -> ("token", str) ... then ("answer", Answer)
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .answer import ThinkFilter, build_prompt, evidence, generate, is_refusal, prompt, question_language
from .extract import extractive_answer, says_nothing
from .cite import Citation, cite
from .context import prompt_passages
from .errors import LLMUnavailableError, UserError
from .retrieve import HybridRetriever, IndexSnapshot, Passage

MAX_QUESTION_CHARS = 2000


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[Citation]
    sources: list[Passage]
    refused: bool
    llm: str | None
    timings_ms: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    incomplete: bool = False
    error: str | None = None
    standalone_question: str | None = None

    def sources_json(self) -> list[dict[str, Any]]:
        return sources_json(self.sources)

    def to_json(self) -> dict[str, Any]:
        out = {"question": self.question, "answer": self.answer,
               "citations": [c.to_json() for c in self.citations],
               "sources": self.sources_json(), "refused": self.refused, "llm": self.llm,
               "timings_ms": self.timings_ms}
        if self.warnings:
            out["warnings"] = self.warnings
        if self.incomplete:
            out["incomplete"] = True
        if self.error:
            out["error"] = self.error
        if self.standalone_question:
            out["standalone_question"] = self.standalone_question
        return out


def sources_json(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    out = []
    for p in passages:
        d = {"file": p.chunk.file, "line_start": p.chunk.line_start, "line_end": p.chunk.line_end,
             "text": p.chunk.text, "score": p.score}
        if p.chunk.heading:
            d["heading"] = p.chunk.heading_path
        if len(p.locations) > 1:
            d["also_in"] = [{"file": l.file, "line_start": l.line_start, "line_end": l.line_end}
                            for l in p.locations[1:]]
        out.append(d)
    return out


class NotesAssistant:
    """Retrieval + answering over one ingested notes folder."""

    def __init__(self, settings: Any, notes_dir: Path | None = None, llm: Any = None):
        self.settings = settings
        self._notes_dir = notes_dir
        self._snap: IndexSnapshot | None = None
        self._retriever: HybridRetriever | None = None
        self._llm = llm  # a LoadedLLM, loaded on first need
        self._lock = threading.RLock()

    # --- index ----------------------------------------------------------------------
    @property
    def snapshot(self) -> IndexSnapshot:
        with self._lock:
            if self._snap is None or self._snap.is_stale():
                snap = IndexSnapshot(self.settings, self._notes_dir)
                if self._snap is not None and self._snap._embedder is not None:
                    snap._embedder = self._snap._embedder  # keep the loaded model
                self._snap = snap
                self._retriever = HybridRetriever(snap, self.settings)
            return self._snap

    @property
    def notes_dir(self) -> Path:
        return self.snapshot.notes_dir

    def search(self, question: str, top_k: int | None = None) -> list[Passage]:
        question = _check_question(question)
        self.snapshot  # noqa: B018 - loads or refreshes the view
        return self._retriever.search(question, top_k or self.settings.top_k)

    # --- model ----------------------------------------------------------------------
    @property
    def llm(self):
        with self._lock:
            if self._llm is None:
                from .llm import load_llm

                self._llm = load_llm(self.settings)
            return self._llm

    # --- answers --------------------------------------------------------------------
    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A follow-up rewritten as a standalone question, using the conversation."""
        if not history:
            return question
        lang = question_language(question)
        turns = []
        for q, a in list(history)[-3:]:
            turns.append(f"用户：{q}\n助手：{a[:300]}" if lang == "zh" else f"User: {q}\nAssistant: {a[:300]}")
        text = prompt(self.settings, "condense", lang).format(history="\n".join(turns), question=question)
        from llama_index.core.llms import ChatMessage

        try:
            out = self.llm.llm.chat([ChatMessage(role="user", content=text)]).message.content or ""
        except Exception:  # the rewrite is a nicety: fall back to the question plus the last topic
            out = ""
        think = ThinkFilter()  # a reasoning model's inline <think>…</think> is not the question
        out = think.feed(out) + think.flush()
        out = out.strip().split("\n")[0].strip().strip("\"“”")
        if not out or len(out) > 4 * len(question) + 200:
            last_q = history[-1][0]
            return f"{last_q} {question}"
        return out

    def ask(self, question: str, top_k: int | None = None, history: Sequence[tuple[str, str]] = (),
            on_token: Callable[[str], None] | None = None) -> Answer:
        question = _check_question(question)
        timings: dict[str, int] = {}
        t0 = time.perf_counter()
        standalone = None
        if history:
            standalone = self.condense(question, history)
            timings["condense"] = int((time.perf_counter() - t0) * 1000)
        q = standalone or question
        t1 = time.perf_counter()
        passages = self.search(q, top_k)
        timings["retrieve"] = int((time.perf_counter() - t1) * 1000)
        lang = question_language(question)
        ev = evidence(q, passages, self.settings, lang)
        warnings: list[str] = []
        if not ev.enough:
            text = self._refusal_text(lang, passages)
            if on_token:
                on_token(text)
            timings["total"] = int((time.perf_counter() - t0) * 1000)
            return Answer(question, text, [], passages, True, None, timings, [f"evidence gate: {ev.reason}"],
                          standalone_question=standalone)
        try:
            loaded = self.llm
        except UserError as exc:
            timings["total"] = int((time.perf_counter() - t0) * 1000)
            return Answer(question, "", [], passages, False, None, timings, [], error=str(exc),
                          standalone_question=standalone)
        context = prompt_passages(passages, self._retriever.snap.sections, self.settings, q)
        plan = build_prompt(q if lang == question_language(q) else question, context, self.settings, lang,
                            loaded.count_tokens, loaded.context_window)
        if plan.dropped_for_window:
            warnings.append(f"{plan.dropped_for_window} lower-ranked passage(s) left out to fit the "
                            f"{loaded.context_window}-token context window")
        t2 = time.perf_counter()
        try:
            gen = generate(loaded.llm, plan.messages, on_token)
        except LLMUnavailableError as exc:
            timings["generate"] = int((time.perf_counter() - t2) * 1000)
            timings["total"] = int((time.perf_counter() - t0) * 1000)
            return Answer(question, "", [], passages, False, loaded.name, timings, warnings, error=str(exc),
                          standalone_question=standalone)
        timings["generate"] = int((time.perf_counter() - t2) * 1000)
        if gen.first_token_s is not None:
            timings["first_token"] = int((t2 - t0 + gen.first_token_s) * 1000)
        if gen.incomplete:
            warnings.append(f"answer incomplete: {gen.error}")
        if is_refusal(gen.text, self.settings):
            text = self._refusal_text(lang, passages)
            timings["total"] = int((time.perf_counter() - t0) * 1000)
            return Answer(question, text, [], passages, True, loaded.name, timings, warnings,
                          incomplete=gen.incomplete, error=gen.error, standalone_question=standalone)
        cited = cite(gen.text, plan.passages, self.snapshot.notes_dir)
        warnings.extend(f"citation removed: {d}" for d in cited.dropped)
        echo = says_nothing(gen.text, q)
        if (echo or not cited.citations) and not gen.incomplete:
            # the model restated the question, or nothing it said could be checked against a
            # passage: show the note sentences that answer the question best instead
            ex = extractive_answer(q, plan.passages, lang, self.snapshot.embedder)
            if ex is not None:
                checked = cite(ex.text, plan.passages, self.snapshot.notes_dir, infer_missing=False)
                if checked.citations:
                    why = "restated the question" if echo else "could not be checked against the notes"
                    warnings.append(f"the model's answer {why}; showing the note sentences that answer it best "
                                    f"instead (model said: {gen.text[:120]})")
                    cited = checked
        timings["total"] = int((time.perf_counter() - t0) * 1000)
        return Answer(question, cited.text, cited.citations, passages, False, loaded.name, timings, warnings,
                      incomplete=gen.incomplete, error=gen.error, standalone_question=standalone)

    def stream(self, question: str, top_k: int | None = None,
               history: Sequence[tuple[str, str]] = ()) -> Iterator[tuple[str, Any]]:
        """Events: ``("token", text)`` while generating, then ``("answer", Answer)``.

        Errors the user can fix come as ``("error", message)``.
        """
        q: queue.Queue = queue.Queue()

        def run():
            try:
                ans = self.ask(question, top_k, history, on_token=lambda t: q.put(("token", t)))
                q.put(("answer", ans))
            except UserError as exc:
                q.put(("error", str(exc)))
            except Exception as exc:  # noqa: BLE001 - reported, never a traceback in the UI
                q.put(("error", f"unexpected error: {type(exc).__name__}: {exc}"))
            q.put(None)

        threading.Thread(target=run, daemon=True).start()
        while True:
            item = q.get()
            if item is None:
                return
            yield item

    def _refusal_text(self, lang: str, passages: Sequence[Passage]) -> str:
        head = prompt(self.settings, "refuse", lang).strip()
        near: list[str] = []
        for p in passages:
            line = f"- {p.chunk.file}:{p.chunk.line_start}-{p.chunk.line_end}"
            if line not in near:
                near.append(line)
            if len(near) == 3:
                break
        return head + ("\n" + "\n".join(near) if near else "")


def _check_question(question: str) -> str:
    from .errors import UserError

    q = (question or "").strip()
    if not q:
        raise UserError("the question is empty: ask something, e.g. assistant ask \"MAE 的掩码率是多少？\"")
    if len(q) > MAX_QUESTION_CHARS:
        raise UserError(f"the question is {len(q)} characters long; keep it under {MAX_QUESTION_CHARS}")
    return q
