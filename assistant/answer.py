"""Turning retrieved passages into an answer: evidence gate, prompt, generation.

The prompt templates are files in ``prompts/`` (Chinese and English); the answer
language follows the question's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from ingest.keywords import content_terms
from ingest.text import HAN_CHAR, text_language

from .retrieve import Passage

if TYPE_CHECKING:
    from .settings import Settings

def question_language(question: str) -> str:
    """``zh`` when the question is mostly Chinese, else ``en``."""
    return text_language(question, "en")


@lru_cache(maxsize=64)
def _read_prompt(prompts_dir: str, name: str) -> str:
    from .prompt_files import read_prompt  # packaged prompts, or the user's prompts_dir

    return read_prompt(prompts_dir, name)


def prompt(settings: Settings, name: str, lang: str) -> str:
    return _read_prompt(str(settings.prompts_dir or ""), f"{name}.{lang}.txt")


def refusal_markers(settings: Settings) -> list[str]:
    text = _read_prompt(str(settings.prompts_dir or ""), "refusal_markers.txt")
    return [ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


# --- the evidence gate ---------------------------------------------------------------

@dataclass
class Evidence:
    enough: bool
    overlap: float  # share of the question's terms found in the top passages
    similarity: float  # best dense cosine among them
    reason: str


def evidence(question: str, passages: Sequence[Passage], settings: Settings, lang: str) -> Evidence:
    if not passages:
        return Evidence(False, 0.0, 0.0, "nothing retrieved")
    q_terms = content_terms(question)
    top = passages[:3]
    found: set[str] = set()
    for p in top:
        found.update(p.chunk.tokens)
        found.update(content_terms(p.chunk.heading_path))
    overlap = len(q_terms & found) / len(q_terms) if q_terms else 0.0
    sims = [p.similarity for p in top if p.similarity is not None]
    sim = max(sims) if sims else 0.0
    # e5 puts cross-lingual pairs (a question in one language, the note in the other) lower
    # on its scale, and their term overlap is low by nature: judge them by similarity alone
    cross = any(_other_language(lang, p.chunk.clean or p.chunk.text) for p in top)
    need_sim = settings.min_similarity if lang == "zh" else settings.min_similarity_en
    if overlap >= settings.min_overlap:
        return Evidence(True, overlap, sim, "question terms found in the notes")
    if overlap >= settings.min_overlap_weak and sim >= need_sim:
        return Evidence(True, overlap, sim, "some question terms found in close passages")
    if cross and sim >= settings.min_similarity_en:
        return Evidence(True, overlap, sim, "a close passage in the other language")
    return Evidence(False, overlap, sim, f"term overlap {overlap:.2f}, similarity {sim:.3f}: "
                                         f"too little of the question is in the notes")


def passage_language(text: str) -> str:
    return text_language(text, "zh")


def _other_language(lang: str, passage: str) -> bool:
    """Is the passage in the other language than the question? For an English question a
    Chinese note counts even when English terms, code names or URLs outnumber its Chinese
    characters (a Kaggle section, a BERT table): its wording is still Chinese."""
    if lang == "en":
        return len(HAN_CHAR.findall(passage)) >= 20
    return passage_language(passage) == "en"


# --- the prompt ----------------------------------------------------------------------

@dataclass
class PromptPlan:
    messages: list[Any]
    passages: list[Passage]  # in prompt order: [n] is passages[n-1]
    dropped_for_window: int = 0
    tokens: int = 0


def _passage_block(n: int, p: Passage, limit: int) -> str:
    body = (p.chunk.clean or p.chunk.text).strip()
    if len(body) > limit:
        cut = max(body.rfind(ch, 0, limit) for ch in "。！？；.!?\n")
        body = body[: cut + 1] if cut > limit // 2 else body[:limit] + "…"
    head = f"（{p.chunk.heading_path}）" if p.chunk.heading else ""
    return f"[{n}] {head}{body}"


def _shares(sizes: list[int], budget: int) -> list[int]:
    """Characters each passage may use: all of it when everything fits; else the short ones
    whole and the long ones an equal share of what is left (a merged passage may be long)."""
    out = [0] * len(sizes)
    left = budget
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    for k, i in enumerate(order):
        share = max(160, left // (len(sizes) - k))
        out[i] = min(sizes[i], share)
        left -= out[i]
    return out


def build_prompt(question: str, passages: Sequence[Passage], settings: Settings, lang: str,
                 count_tokens: Callable[[str], int], context_window: int) -> PromptPlan:
    from llama_index.core.llms import ChatMessage, MessageRole

    chosen = list(passages[: settings.prompt_passages])
    budget = settings.prompt_chars
    template = prompt(settings, "answer", lang)
    example = prompt(settings, "example", lang)
    system = prompt(settings, "system", lang).strip()

    def render(ps: list[Passage]) -> tuple[str, int]:
        heads = [len(p.chunk.heading_path) + 2 if p.chunk.heading else 0 for p in ps]
        shares = _shares([len((p.chunk.clean or p.chunk.text).strip()) for p in ps], budget - sum(heads))
        blocks = [_passage_block(i + 1, p, share) for i, (p, share) in enumerate(zip(ps, shares))]
        user = template.format(context="\n\n".join(blocks), question=question.strip())
        return user, count_tokens(system) + count_tokens(user) + count_tokens(example) + 24

    user, tokens = render(chosen)
    dropped = 0
    room = context_window - settings.max_answer_tokens - 32
    while tokens > room and len(chosen) > 1:
        chosen.pop()  # the lowest-ranked passage goes first
        dropped += 1
        user, tokens = render(chosen)
    if tokens > room:  # one passage and still too long: shorten it
        budget = max(200, int(budget * room / tokens))
        user, tokens = render(chosen)
    messages = [ChatMessage(role=MessageRole.SYSTEM, content=system)]
    # one worked example as a previous turn: small models follow a demonstration far
    # better than instructions alone (measured on the 0.5B model)
    if "===" in example:
        ex_user, ex_answer = (x.strip() for x in example.split("===", 1))
        messages += [ChatMessage(role=MessageRole.USER, content=ex_user),
                     ChatMessage(role=MessageRole.ASSISTANT, content=ex_answer)]
    messages.append(ChatMessage(role=MessageRole.USER, content=user))
    return PromptPlan(messages, chosen, dropped, tokens)


# --- generation ----------------------------------------------------------------------

class ThinkFilter:
    """Hides ``<think>…</think>`` (reasoning models that inline their thinking)."""

    def __init__(self):
        self.buf = ""
        self.inside = False

    def feed(self, delta: str) -> str:
        self.buf += delta
        out = ""
        while self.buf:
            if self.inside:
                end = self.buf.find("</think>")
                if end == -1:
                    self.buf = self.buf[-8:]
                    return out
                self.buf = self.buf[end + 8:]
                self.inside = False
            else:
                start = self.buf.find("<think>")
                if start == -1:
                    # keep a possible partial tag back
                    keep = 0
                    for k in range(1, 7):
                        if "<think>".startswith(self.buf[-k:]):
                            keep = k
                    out += self.buf[: len(self.buf) - keep]
                    self.buf = self.buf[len(self.buf) - keep:]
                    return out
                out += self.buf[:start]
                self.buf = self.buf[start + 7:]
                self.inside = True
        return out

    def flush(self) -> str:
        out = "" if self.inside else self.buf
        self.buf = ""
        return out


@dataclass
class Generation:
    text: str
    incomplete: bool = False
    error: str | None = None
    first_token_s: float | None = None
    tokens: int = 0
    extra: dict = field(default_factory=dict)


class TokenStream:
    """The model's answer as an iterator of shown text (a ``<think>`` block filtered out);
    after the loop ``result`` holds the whole ``Generation``. A connection lost mid-way
    ends the loop with the partial text, marked incomplete; lost before any text, it raises
    ``LLMUnavailableError``."""

    def __init__(self, llm: Any, messages: list[Any]):
        self.llm = llm
        self.messages = messages
        self.result: Generation | None = None

    def __iter__(self) -> Iterator[str]:
        import time

        from .errors import LLMUnavailableError
        from .ollama_backend import explain_llm_error

        t0 = time.perf_counter()
        filt = ThinkFilter()
        text = ""
        first = None
        n = 0
        try:
            for chunk in self.llm.stream_chat(self.messages):
                delta = chunk.delta or ""
                if not delta:
                    continue
                shown = filt.feed(delta)
                n += 1
                if shown:
                    if first is None:
                        first = time.perf_counter() - t0
                    text += shown
                    yield shown
            tail = filt.flush()
            if tail:
                text += tail
                yield tail
        except LLMUnavailableError as exc:
            if not text:
                raise
            self.result = Generation(text, True, str(exc), first, n)
            return
        except Exception as exc:  # noqa: BLE001 - library errors of many kinds, each explained
            message = explain_llm_error(exc, self.llm)
            if not text:
                raise LLMUnavailableError(message) from None
            self.result = Generation(text, True, message, first, n)
            return
        self.result = Generation(text.strip(), False, None, first, n)


def generate(llm: Any, messages: list[Any], on_token: Callable[[str], None] | None = None) -> Generation:
    """The whole answer at once (``on_token`` sees each piece as it comes)."""
    stream = TokenStream(llm, messages)
    for piece in stream:
        if on_token:
            on_token(piece)
    return stream.result


def build_sentence_prompt(question: str, sentences: Sequence[Any], settings: Settings, lang: str) -> list[Any]:
    """The short prompt of the ``phrase`` style: the few best note sentences, each with the
    ``[n]`` of its passage, and the question; no worked example (small models copy it)."""
    from llama_index.core.llms import ChatMessage, MessageRole

    lines = [f"[{s.n}] {s.one_line}" for s in sentences]
    user = prompt(settings, "phrase", lang).format(context="\n".join(lines), question=question.strip())
    return [ChatMessage(role=MessageRole.SYSTEM, content=prompt(settings, "system", lang).strip()),
            ChatMessage(role=MessageRole.USER, content=user)]


def is_refusal(text: str, settings: Settings) -> bool:
    low = text.lower()
    head = low[:80]
    return any(m in head for m in refusal_markers(settings))
