"""The one query API that the CLI, the web UI and the graded suite call.

    qa = NotesAssistant(settings)
    qa.search("MAE 的掩码率")          -> list[Passage]
    qa.ask("MAE 的掩码率是多少？")      -> Answer (JSON contract: Answer.to_json())
    for kind, value in qa.stream(question):  -> ("retrieved", …) … ("token", str) … ("answer", Answer)

What the front ends need besides answers (implemented in their own modules):
    qa.status()        qa.indexed_files()     qa.notes_folder()
    qa.reingest(progress)                     qa.open_note("dir/note.md:12-14")
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .answer import (Evidence, ThinkFilter, TokenStream, build_prompt, build_sentence_prompt, evidence, is_refusal,
                     prompt, question_language)
from .cite import Citation, SentenceChecker, cite, restates
from .compose import answers, extractive
from .sentences import rank_sentences
from .context import prompt_passages
from .errors import LLMUnavailableError, UserError
from .guards import drop_stale, inside_only, nothing_to_look_up, unknown_names
from .retrieve import HybridRetriever, IndexSnapshot, Passage

if TYPE_CHECKING:
    from .settings import Settings

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

    def __init__(self, settings: Settings, notes_dir: Path | None = None, llm: Any = None, embedder: Any = None):
        self.settings = settings
        self._notes_dir = notes_dir
        self._embedder = embedder  # a LlamaIndex embedding model; default: the one settings.embed names
        self._snap: IndexSnapshot | None = None
        self._retriever: HybridRetriever | None = None
        self._llm = llm  # a LoadedLLM, loaded on first need
        self._lock = threading.RLock()

    # --- index ----------------------------------------------------------------------
    @property
    def snapshot(self) -> IndexSnapshot:
        with self._lock:
            if self._snap is None or self._snap.is_stale():
                snap = IndexSnapshot(self.settings, self._notes_dir, embedder=self._embedder)
                self._embedder = snap.embedder  # kept across refreshes: the model stays loaded
                self._snap = snap
                self._retriever = HybridRetriever(snap, self.settings)
            return self._snap

    @property
    def notes_dir(self) -> Path:
        return self.snapshot.notes_dir

    def search(self, question: str, top_k: int | None = None) -> list[Passage]:
        question = _check_question(question)
        self.snapshot  # noqa: B018 - loads or refreshes the view
        # an index written before a note became a link out of the folder never shows it (guards.py)
        return inside_only(self._retriever.search(question, top_k or self.settings.top_k), self.snapshot.notes_dir)

    @property
    def retriever(self) -> HybridRetriever:
        """The retrievers behind :meth:`search` (benchmarks time them one by one)."""
        self.snapshot  # noqa: B018 - loads or refreshes the view
        return self._retriever

    # --- what the front ends need besides answers ----------------------------------
    def notes_folder(self) -> Path | None:
        """The notes folder this assistant asks, without failing (None: none known yet)."""
        from ingest.index import notes_folder

        try:
            folder = notes_folder(self.settings.data_dir, self._notes_dir, self.settings.notes_dir)
        except UserError:  # a damaged pointer file: no folder known (the index status says why)
            return None
        return folder.resolve() if folder is not None else None

    def indexed_files(self) -> set[str] | None:
        """The notes the index holds (None: no index yet)."""
        try:
            return set(self.snapshot.manifest.files)
        except UserError:
            return None

    def status(self) -> dict[str, Any]:
        """Settings, index and answering model, as `assistant status --json` prints them."""
        from .status import status_info

        return status_info(self.settings, lambda: self.snapshot.stats())

    def reingest(self, progress: Any = None, rebuild: bool = False):
        """Bring the index of the notes folder up to date (an ingest.pipeline.IngestSummary)."""
        from .errors import NotesFolderError
        from .indexing import ingest_notes

        folder = self.notes_folder()
        if folder is None:
            raise NotesFolderError("no notes folder known: pass one (--notes FOLDER) or run `assistant ingest FOLDER`")
        try:
            embedder = self.snapshot.embedder  # the model already loaded here, if any
        except UserError:
            embedder = self._embedder
        return ingest_notes(self.settings, folder, progress=progress, embedder=embedder, rebuild=rebuild)

    def open_note(self, ref: str):
        """The note ``ref`` (``file[:a[-b]]``) names, if it is an indexed note inside the notes
        folder (a notes_access.NoteView), else NoteAccessError."""
        from .notes_access import NoteAccessError, open_note

        folder = self.notes_folder()
        if folder is None:
            raise NoteAccessError("no notes folder yet")
        return open_note(folder, ref, self.indexed_files())

    # --- model ----------------------------------------------------------------------
    @property
    def llm_loaded(self) -> bool:
        """Whether the answering model is loaded already (status: "loaded" / "loads on the first question")."""
        return self._llm is not None

    @property
    def llm(self):
        with self._lock:
            if self._llm is None:
                from .models import load_llm

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

    def answer_style(self) -> str:
        """How answers are made: ``extract`` (the best note sentences, no model), ``phrase``
        (the model rewords the few best sentences) or ``passages`` (the model reads whole
        passages). ``auto`` follows the model, as measured (benchmarks/README.md, "Answer
        ablation"): the embedded models quote, whatever the question's language. A question in
        the other language than the notes is quoted in the notes' language too: the 0.5B
        model's answers to such questions seldom checked against the passages (5 of 41 on
        tune; the rest fell back to the same quotes after ~6 s, or were refused)."""
        style = self.settings.answer_style
        if style != "auto":
            return style
        if self._llm is not None:
            name = self._llm.name
        else:
            from .models import resolve_llm  # what would answer, without loading it

            name = resolve_llm(self.settings, probe=False).name
        return style_for_model(name)

    def ask(self, question: str, top_k: int | None = None, history: Sequence[tuple[str, str]] = (),
            on_token: Callable[[str], None] | None = None) -> Answer:
        """The whole answer (``on_token`` sees each checked piece of it as it comes)."""
        for kind, value in self._events(question, top_k, history):
            if kind == "token" and on_token:
                on_token(value)
            elif kind == "answer":
                return value
        raise AssertionError("the answer stages ended without an answer")  # pragma: no cover

    def stream(self, question: str, top_k: int | None = None,
               history: Sequence[tuple[str, str]] = ()) -> Iterator[tuple[str, Any]]:
        """The stages as events ``(kind, value)``: ``condensed`` (the standalone question),
        ``retrieved`` (passages), ``gated`` (Evidence), ``planned`` (the style and the
        evidence sentences), ``token`` (checked answer text, in order: nothing shown is
        withdrawn later), then ``answer`` (the Answer). An error the user can fix ends the
        stream as ``("error", message)``."""
        try:
            yield from self._events(question, top_k, history)
        except UserError as exc:
            yield ("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - reported, never a traceback in the UI
            yield ("error", f"unexpected error: {type(exc).__name__}: {exc}")

    def _events(self, question: str, top_k: int | None, history: Sequence[tuple[str, str]]):
        question = _check_question(question)
        t0 = time.perf_counter()
        run = _Run(question, t0)
        if history:
            run.standalone = self.condense(question, history)
            run.timings["condense"] = run.ms()
            yield ("condensed", run.standalone)
        q = run.standalone or question
        t1 = time.perf_counter()
        passages = self.search(q, top_k)
        # hostile input (guards.py): never quote a note that changed since the ingest
        passages, stale, run.changed = drop_stale(passages, self.snapshot)
        run.warnings.extend(stale)
        run.passages = passages
        run.timings["retrieve"] = int((time.perf_counter() - t1) * 1000)
        yield ("retrieved", passages)
        lang = question_language(question)
        ev = evidence(q, passages, self.settings, lang)
        if ev.enough and nothing_to_look_up(q):  # emoji, symbols or a formula only
            ev = Evidence(False, ev.overlap, ev.similarity, "the question has no word to look up")
        # the user's own words only: a follow-up rewritten with the last question would
        # inherit that question's refusal
        unknown = unknown_names(question, self.snapshot) if ev.enough and self.settings.refuse_unknown_names else []
        if unknown:  # a near miss: the notes discuss the topic, never the thing named
            ev = Evidence(False, ev.overlap, ev.similarity, f"the notes never mention {', '.join(unknown)}")
        yield ("gated", ev)
        if not ev.enough:
            yield from self._refuse(run, lang, f"evidence gate: {ev.reason}", unknown=unknown)
            return
        style = self.answer_style()
        # sentences of the retrieved passages themselves (not the merged prompt passages): each
        # [n] of an extractive answer is a retrieved passage, cited against ``passages``.
        # The passages style needs them only if the model's answer does not check.
        ranked = self._ranked(q, passages) if style != "passages" else None
        best = ranked[: self.settings.evidence_sentences] if ranked is not None else []
        yield ("planned", {"style": style, "sentences": best})
        if style == "extract" and (not best or not answers(q, best[0])):
            why = "no sentence holds what the question asks for" if best else "no sentence to answer from"
            yield from self._refuse(run, lang, f"sentence evidence: {why}")
            return
        if style == "extract":
            yield from self._extract(run, q, lang, ranked, None)
            return
        try:
            loaded = self.llm
        except UserError as exc:
            yield ("answer", run.answer("", [], False, None, error=str(exc)))
            return
        asked = q if lang == question_language(q) else question  # in the language the answer is written in
        if style == "phrase":
            messages = build_sentence_prompt(asked, best, self.settings, lang)
            shown = passages
        else:
            context = prompt_passages(passages, self.snapshot.sections, self.settings, q)
            plan = build_prompt(asked, context, self.settings, lang, loaded.count_tokens, loaded.context_window)
            if plan.dropped_for_window:
                run.warnings.append(f"{plan.dropped_for_window} lower-ranked passage(s) left out to fit the "
                                    f"{loaded.context_window}-token context window")
            messages, shown = plan.messages, plan.passages
        yield from self._generate(run, q, lang, loaded, messages, shown, ranked)

    def _ranked(self, q: str, passages: Sequence[Passage]) -> list[Any]:
        return rank_sentences(q, passages, self.snapshot.embedder, limit=self.settings.prompt_passages)

    def _generate(self, run: "_Run", q: str, lang: str, loaded: Any, messages: list[Any],
                  shown: Sequence[Passage], ranked: Sequence[Any] | None):
        """Stream the model's answer sentence by sentence, each shown only once it checks."""
        t2 = time.perf_counter()
        tokens = TokenStream(loaded.llm, messages)
        checker = SentenceChecker(shown, self.snapshot.notes_dir, q)
        try:
            for piece in tokens:
                for checked in checker.feed(piece):
                    if run.first_token is None:
                        run.first_token = int((time.perf_counter() - run.t0) * 1000)
                    yield ("token", checked)
        except LLMUnavailableError as exc:
            run.timings["generate"] = int((time.perf_counter() - t2) * 1000)
            yield ("answer", run.answer("", [], False, loaded.name, error=str(exc)))
            return
        gen = tokens.result
        for checked in checker.flush():
            if run.first_token is None:
                run.first_token = int((time.perf_counter() - run.t0) * 1000)
            yield ("token", checked)
        run.timings["generate"] = int((time.perf_counter() - t2) * 1000)
        if run.first_token is not None:
            run.timings["first_token"] = run.first_token
        if gen.incomplete:
            run.warnings.append(f"answer incomplete: {gen.error}")
        if is_refusal(gen.text, self.settings):
            yield from self._refuse(run, lang, "the model found no answer in the passages", llm=loaded.name,
                                    incomplete=gen.incomplete, error=gen.error)
            return
        cited = checker.answer()
        run.warnings.extend(f"citation removed: {d}" for d in cited.dropped)
        echo = restates(gen.text, q)
        if echo or not cited.citations:
            # nothing the model said checks against a passage (or it restated the question):
            # the best note sentences answer instead
            why = "restated the question" if echo else "could not be checked against the notes"
            run.warnings.append(f"the model's answer {why}; showing the note sentences that answer best "
                                f"instead (model said: {gen.text[:120]})")
            if ranked is None:
                ranked = self._ranked(q, run.passages)
            yield from self._extract(run, q, lang, ranked, loaded.name, shown_before=checker.shown,
                                     incomplete=gen.incomplete, error=gen.error)
            return
        yield ("answer", run.answer(cited.text, cited.citations, False, loaded.name, incomplete=gen.incomplete,
                                    error=gen.error))

    def _extract(self, run: "_Run", q: str, lang: str, ranked: Sequence[Any], llm_name: str | None,
                 shown_before: str = "", **kw):
        text = extractive(q, ranked, self.snapshot.embedder)
        cited = cite(text, run.passages, self.snapshot.notes_dir, infer_missing=False) if text else None
        if cited is None or not cited.citations:
            yield from self._refuse(run, lang, "no note sentence answers the question", llm=llm_name, **kw)
            return
        if not shown_before:
            yield ("token", cited.text)
        yield ("answer", run.answer(cited.text, cited.citations, False, llm_name or "extractive", **kw))

    def _refuse(self, run: "_Run", lang: str, why: str, llm: str | None = None, unknown: Sequence[str] = (),
                **kw):
        text = self._refusal_text(lang, run.passages) if run.passages or not run.changed else ""
        if unknown:  # say what the notes lack, then where they come closest
            text = prompt(self.settings, "unknown", lang).strip().format(names=", ".join(unknown)) + "\n" + text
        if run.changed:  # the notes that would answer changed since the ingest: say so
            text = f"{text}\n{run.changed}".strip()
        yield ("token", text)
        run.warnings.append(why)
        yield ("answer", run.answer(text, [], True, llm, **kw))

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


# measured on the report part of every suite (benchmarks/README.md, "Sentence evidence and extractive answers"): the small
# embedded models keep more facts quoting the best sentence than writing; a model served
# by Ollama (7B-class for most users) reads whole passages
STYLE_BY_BACKEND = {"embedded": "extract", "ollama": "passages"}


def style_for_model(name: str) -> str:
    return STYLE_BY_BACKEND.get(name.split(":", 1)[0], "passages")


@dataclass
class _Run:
    """What one ask has gathered so far (the events' shared state)."""
    question: str
    t0: float
    standalone: str | None = None
    passages: list[Passage] = field(default_factory=list)
    timings: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    first_token: int | None = None
    changed: str | None = None  # notes that changed since the ingest (guards.drop_stale)

    def ms(self) -> int:
        return int((time.perf_counter() - self.t0) * 1000)

    def answer(self, text: str, citations: list[Citation], refused: bool, llm: str | None, **kw) -> Answer:
        self.timings["total"] = self.ms()
        return Answer(self.question, text, citations, self.passages, refused, llm, dict(self.timings),
                      list(self.warnings), standalone_question=self.standalone, **kw)


def _check_question(question: str) -> str:
    from .errors import UserError

    q = (question or "").strip()
    if not q:
        raise UserError("the question is empty: ask something, e.g. assistant ask \"MAE 的掩码率是多少？\"")
    if len(q) > MAX_QUESTION_CHARS:
        raise UserError(f"the question is {len(q)} characters long; keep it under {MAX_QUESTION_CHARS}")
    return q
