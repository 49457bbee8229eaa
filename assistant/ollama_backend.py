"""Everything about Ollama: probing the server, the answering client, the embedding
client, and the one line of text for each way it can fail.

Nothing here decides *whether* Ollama answers: :mod:`assistant.models` resolves a
model name to a backend and calls :func:`load_ollama` or :func:`make_ollama_embedding`.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import LLMUnavailableError, ModelError
from .llm import LoadedLLM

if TYPE_CHECKING:
    from .settings import Settings


# --- the server -----------------------------------------------------------------------

@dataclass
class OllamaProbe:
    """What ``GET /api/tags`` said: ``up`` (with the model names), ``down`` (nothing
    listens), ``timeout`` (something listens but does not answer) or ``bad`` (it
    answers, but not like Ollama)."""

    status: str
    names: list[str]
    detail: str = ""


def probe_ollama(host: str, timeout: float = 1.0) -> OllamaProbe:
    try:
        with urllib.request.urlopen(host.rstrip("/") + "/api/tags", timeout=timeout) as r:
            data = json.loads(r.read().decode("utf-8"))
        names = [m.get("name") or m.get("model") for m in data.get("models", [])]
        return OllamaProbe("up", [n for n in names if n])
    except urllib.error.HTTPError as exc:
        return OllamaProbe("bad", [], f"HTTP {exc.code} from /api/tags")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):
            return OllamaProbe("timeout", [], f"no answer within {timeout:g} s")
        return OllamaProbe("down", [], str(exc.reason))
    except (socket.timeout, TimeoutError):
        return OllamaProbe("timeout", [], f"no answer within {timeout:g} s")
    except (OSError, ValueError, AttributeError) as exc:  # reset connection, not JSON, JSON of another shape
        return OllamaProbe("bad", [], type(exc).__name__)


def ollama_version(host: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(host.rstrip("/") + "/api/version", timeout=timeout) as r:
            return str(json.loads(r.read().decode("utf-8")).get("version") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


def has_model(names: list[str], model: str) -> bool:
    want = model if ":" in model else model + ":latest"
    return any(n == model or n == want for n in names)


def unavailable_message(probe: OllamaProbe, host: str, model: str) -> str | None:
    """The one line for an Ollama that cannot answer with ``model``, or None when it can."""
    if probe.status == "down":
        return f"Ollama is not running at {host}: start it with `ollama serve` (or point OLLAMA_HOST at it)"
    if probe.status == "timeout":
        return (f"Ollama at {host} did not answer ({probe.detail}): it may be busy loading a model; "
                f"check `ollama ps` and try again")
    if probe.status == "bad":
        return f"the server at {host} does not answer like Ollama ({probe.detail}): check OLLAMA_HOST"
    if not has_model(probe.names, model):
        have = ", ".join(probe.names[:6]) or "none"
        return f"Ollama at {host} has no model '{model}': run `ollama pull {model}` (pulled: {have})"
    return None


def normalize_host(host: str) -> str:
    """``OLLAMA_HOST`` read the way Ollama reads it: ``host``, ``host:port``, ``:port``
    (port 11434 unless given), ``http://host`` (port 80), ``https://host`` (443),
    ``scheme://host:port/path``. ``0.0.0.0`` (how a server is told to listen
    everywhere) is reached at 127.0.0.1."""
    from urllib.parse import urlsplit

    host = (host or "").strip() or "127.0.0.1:11434"
    default_port = 11434
    if "://" not in host:
        host = "http://" + host
    elif host.lower().startswith("http://"):
        default_port = 80
    elif host.lower().startswith("https://"):
        default_port = 443
    hint = "set OLLAMA_HOST to HOST:PORT, e.g. 127.0.0.1:11434 (or unset it)"
    try:
        parts = urlsplit(host)
        name = parts.hostname or "127.0.0.1"
    except ValueError as exc:  # "http://[::1": one line, and only for a command that needs Ollama
        raise BadOllamaHostError(f"OLLAMA_HOST {host!r} is not a valid address ({exc}): {hint}") from None
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1"
    if ":" in name:  # IPv6 literal
        name = f"[{name}]"
    try:
        port = parts.port or default_port
    except ValueError:  # 99999 is no port: never quietly another one
        raise BadOllamaHostError(f"OLLAMA_HOST {host!r} has a port outside 1-65535: {hint}") from None
    return f"{parts.scheme or 'http'}://{name}:{port}{parts.path.rstrip('/')}"


class BadOllamaHostError(ModelError):
    """OLLAMA_HOST cannot be read as an address; raised only where Ollama is needed."""


def keep_alive_value(value: Any) -> Any:
    """Ollama wants a duration ("5m", "1h") or a number of seconds (-1: keep loaded,
    0: unload at once); a number that arrives as text is sent as a number."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        f = float(value)
        return int(f) if f.is_integer() else f
    return value



# --- the answering client -------------------------------------------------------------

class OllamaStreamIncomplete(ConnectionError):
    """The server closed the stream before its final ``done`` line."""


_OLLAMA_CLASS = None


def _ollama_class():
    """llama-index's Ollama, with a stream that notices an answer cut short.

    A connection closed cleanly in the middle of an answer (a proxy, a restarted
    server) ends the NDJSON stream without the final ``done: true`` line; the
    library would hand back the partial text as if it were the whole answer.
    The token counts of that final line are kept in ``last_usage``.
    """
    global _OLLAMA_CLASS
    if _OLLAMA_CLASS is None:
        from llama_index.core.bridge.pydantic import PrivateAttr
        from llama_index.llms.ollama import Ollama

        class CheckedOllama(Ollama):
            _last_usage: dict = PrivateAttr(default_factory=dict)

            @property
            def last_usage(self) -> dict:
                return self._last_usage

            def stream_chat(self, messages, **kwargs):
                inner = super().stream_chat(messages, **kwargs)

                def gen():
                    done = False
                    for r in inner:
                        raw = r.raw if isinstance(r.raw, dict) else {}
                        if raw.get("done"):
                            done = True
                            self._last_usage = {k: raw.get(k) for k in (
                                "prompt_eval_count", "eval_count", "done_reason", "total_duration")}
                        yield r
                    if not done:
                        raise OllamaStreamIncomplete("the stream ended before the answer was finished")

                return gen()

        _OLLAMA_CLASS = CheckedOllama
    return _OLLAMA_CLASS


def load_ollama(settings: Settings, model: str, check: bool = True) -> LoadedLLM:
    host = normalize_host(settings.ollama_host)
    model = model.strip()
    if not model:
        raise ModelError("which Ollama model? use --llm ollama:MODEL, e.g. ollama:qwen2.5:7b")
    if check:
        probe = probe_ollama(host, timeout=min(5.0, settings.request_timeout))
        message = unavailable_message(probe, host, model)
        if message:
            raise (ModelError if probe.status == "up" else LLMUnavailableError)(message)
    llm = _ollama_class()(
        model=model,
        base_url=host,
        request_timeout=settings.request_timeout,
        context_window=settings.context_window,  # sent as num_ctx: never the server's small default
        temperature=settings.temperature,
        keep_alive=keep_alive_value(settings.keep_alive),
        additional_kwargs={"num_predict": settings.max_answer_tokens},
    )
    return LoadedLLM(llm, f"ollama:{model}", "ollama", settings.context_window, None)



# --- the embedding client -------------------------------------------------------------

_EMBEDDING_CLASS = None


def _embedding_class():
    """Any Ollama embedding model (e.g. ``bge-m3``) behind LlamaIndex's ``BaseEmbedding``,
    through the official ``ollama`` client (defined on first use: llama-index is slow to import)."""
    global _EMBEDDING_CLASS
    if _EMBEDDING_CLASS is None:
        from llama_index.core.base.embeddings.base import BaseEmbedding
        from llama_index.core.bridge.pydantic import PrivateAttr

        class OllamaEmbedding(BaseEmbedding):
            model_name: str = "bge-m3"
            base_url: str = "http://localhost:11434"
            timeout: float = 120.0
            keep_alive: str | float | None = None
            embed_batch_size: int = 16
            _client: Any = PrivateAttr(default=None)

            def _c(self):
                if self._client is None:
                    import ollama

                    self._client = ollama.Client(host=self.base_url, timeout=self.timeout)
                return self._client

            def _embed(self, texts: list[str]) -> list[list[float]]:
                import httpx
                import ollama

                name, host = self.model_name, self.base_url
                try:
                    got = self._c().embed(model=name, input=texts, keep_alive=keep_alive_value(self.keep_alive))
                except (ollama.ResponseError, httpx.HTTPError, ConnectionError) as exc:
                    raise embed_error(exc, name, host, self.timeout) from None
                vectors = [list(v) for v in got.embeddings]
                if len(vectors) != len(texts):
                    raise LLMUnavailableError(f"Ollama returned {len(vectors)} embeddings for {len(texts)} texts")
                return vectors

            def _get_query_embedding(self, query: str) -> list[float]:
                return self._embed([query])[0]

            def _get_text_embedding(self, text: str) -> list[float]:
                return self._embed([text])[0]

            def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
                return self._embed(list(texts))

            async def _aget_query_embedding(self, query: str) -> list[float]:
                return self._get_query_embedding(query)

        _EMBEDDING_CLASS = OllamaEmbedding
    return _EMBEDDING_CLASS


def make_ollama_embedding(model: str, settings: Settings | None = None) -> Any:
    kw = {}
    if settings is not None:
        kw = {"base_url": normalize_host(settings.ollama_host), "timeout": settings.request_timeout,
              "keep_alive": settings.keep_alive}
    return _embedding_class()(model_name=model, **kw)


# --- error text -------------------------------------------------------------------------

def embed_error(exc: BaseException, name: str, host: str, timeout: float) -> Exception:
    """The UserError for an embedding request that failed."""
    import httpx
    import ollama

    if isinstance(exc, ollama.ResponseError):
        error = " ".join(str(exc.error or "").split())[:200]
        if exc.status_code == 404 or "not found" in error.lower():
            return ModelError(f"Ollama has no model '{name}': run `ollama pull {name}`")
        if "does not support" in error.lower():
            return ModelError(f"Ollama model '{name}' cannot embed ({error}): "
                              f"use an embedding model, e.g. --embed ollama:bge-m3")
        return LLMUnavailableError(f"Ollama embedding failed (HTTP {exc.status_code}): {error}")
    if isinstance(exc, (httpx.ConnectError, ConnectionError)):
        return LLMUnavailableError(f"Ollama is not running at {host}: start it with `ollama serve`")
    if isinstance(exc, httpx.TimeoutException):
        return LLMUnavailableError(f"Ollama did not embed within {timeout:g} s: raise request_timeout "
                                   f"(NOTES_ASSISTANT_REQUEST_TIMEOUT)")
    return LLMUnavailableError(f"the request to Ollama at {host} failed: {type(exc).__name__}")


def explain_llm_error(exc: BaseException, llm: Any) -> str:
    import httpx

    host = getattr(llm, "base_url", None) or "the server"
    model = getattr(llm, "model", None)
    timeout = getattr(llm, "request_timeout", None)
    try:
        import ollama

        if isinstance(exc, ollama.ResponseError):
            error = " ".join(str(exc.error or "").split())[:200]
            low = error.lower()
            if exc.status_code == 404 or ("not found" in low and "model" in low):
                return f"Ollama has no model '{model}': run `ollama pull {model}`"
            if "does not support" in low:
                return f"Ollama cannot answer with '{model}' ({error}): choose a chat model, e.g. --llm ollama:qwen2.5:7b"
            if exc.status_code and exc.status_code > 0:
                return f"Ollama returned an error (HTTP {exc.status_code}): {error}"
            return f"Ollama reported an error while answering: {error}"  # an {"error"} line mid-stream
    except ImportError:  # pragma: no cover - ollama is a dependency
        pass
    if isinstance(exc, OllamaStreamIncomplete):
        return f"the connection to Ollama at {host} ended before the answer was finished"
    if isinstance(exc, (httpx.ConnectError, ConnectionRefusedError)) or (
            isinstance(exc, ConnectionError) and "Failed to connect to Ollama" in str(exc)):
        return f"Ollama is not running at {host}: start it with `ollama serve`"
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        if timeout:
            return (f"Ollama did not answer within {timeout:g} s: raise request_timeout "
                    f"(--timeout / NOTES_ASSISTANT_REQUEST_TIMEOUT) or use a smaller model")
        return "the model timed out"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, ConnectionError)):
        return f"the connection to Ollama at {host} was lost while answering"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"Ollama returned HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.HTTPError):
        return f"the request to Ollama at {host} failed: {type(exc).__name__}: {str(exc).strip()[:160]}"
    return f"the model failed: {type(exc).__name__}: {str(exc).strip()[:200]}"
