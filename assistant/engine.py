"""The product as a LlamaIndex query engine.

    engine = NotesQueryEngine.from_settings(settings)
    response = engine.query("MAE 的掩码率是多少？")
    response.response                  # the checked answer, with [n] markers
    response.source_nodes              # the retrieved passages (file, lines, heading in metadata)
    response.metadata["citations"]     # the checked citations, as in `assistant ask --json`
    response.metadata["answer"]        # the whole Answer (its to_json() is the JSON contract)

A thin wrapper: every stage lives in ``NotesAssistant`` (query.py), which the CLI, the web
chat and the graded suite call too, so the engine answers exactly as they do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llama_index.core.base.response.schema import Response
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import NodeWithScore, TextNode

from .query import NotesAssistant

if TYPE_CHECKING:
    from .settings import Settings


class NotesQueryEngine(CustomQueryEngine):
    assistant: Any  # a NotesAssistant (pydantic cannot validate it: it holds models and locks)

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> "NotesQueryEngine":
        return cls(assistant=NotesAssistant(settings, **kw))

    def custom_query(self, query_str: str) -> Response:
        ans = self.assistant.ask(query_str)
        nodes = [NodeWithScore(node=TextNode(id_=p.chunk.id, text=p.chunk.text,
                                             metadata={"file": p.chunk.file, "line_start": p.chunk.line_start,
                                                       "line_end": p.chunk.line_end,
                                                       "heading": p.chunk.heading_path}),
                               score=p.score) for p in ans.sources]
        return Response(response=ans.answer, source_nodes=nodes,
                        metadata={"answer": ans, "refused": ans.refused,
                                  "citations": [c.to_json() for c in ans.citations]})
