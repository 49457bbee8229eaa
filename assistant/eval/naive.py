"""The pipeline a newcomer writes in five lines, graded beside ours by `assistant eval --compare naive`.

    docs = SimpleDirectoryReader(notes, recursive=True).load_data()
    index = VectorStoreIndex.from_documents(docs, embed_model=E5Embedding())
    engine = index.as_query_engine(llm=llm)
    response = engine.query(question)
    print(response, [n.metadata["file_path"] for n in response.source_nodes])

LlamaIndex defaults throughout: ``SentenceSplitter`` (1,024 tokens, 200 overlap),
vector search only, the default ``similarity_top_k`` (2) and answer prompt; no
keyword side, no evidence gate, no citation markers or checks. Only two things
are pinned so the comparison is about the pipeline and nothing else: the same
files as ingest reads, decoded as ingest decodes them (``SimpleDirectoryReader``
would mangle a GBK file), and the same embedding model and LLM as the product.

The index lives in memory and never touches the product's index. What it
returns has the shape of ``Answer.to_json()`` so the grader treats both alike:
``sources`` are the top ``top_k`` of a vector search (for hit@k and MRR) and
``citations`` are the response's ``source_nodes`` - what a newcomer shows as
"Sources" under the answer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

# phrases with which the default LlamaIndex prompt's answers say the context has no answer
_NO_ANSWER = ("does not provide", "doesn't provide", "not provided", "does not mention", "doesn't mention",
              "no information", "not mentioned", "does not contain", "doesn't contain", "cannot be determined",
              "can't be determined", "not specified", "no mention", "没有提供", "未提供",
              "没有提到", "未提及", "无法确定", "无法回答", "没有相关")


class NaivePipeline:
    def __init__(self, notes_dir: Path, llm: Any, top_k: int = 5, embed_model: Any = None):
        self.notes_dir = Path(notes_dir)
        self.loaded = llm  # a LoadedLLM (assistant.llm) or a LlamaIndex LLM
        self.top_k = top_k
        self.embed_model = embed_model
        self.index = None
        self._texts: dict[str, str] = {}
        self.node_count = 0

    def describe(self) -> str:
        return ("LlamaIndex VectorStoreIndex (in memory), default SentenceSplitter, e5 embeddings, vector search "
                f"only (top {self.top_k} graded for retrieval), default query engine (top 2, default prompt), "
                "no evidence gate, no citation check; its citations are the response's source nodes")

    def build(self) -> None:
        from llama_index.core import Document, VectorStoreIndex
        from llama_index.core.readers.file.base import default_file_metadata_func

        from ingest.load import DecodeError, decode, walk

        from ..embeddings import E5Embedding

        docs = []
        for note in walk(self.notes_dir).notes:
            try:
                text, _ = decode(note.path.read_bytes())
            except (OSError, DecodeError):
                continue
            self._texts[note.rel] = text
            meta = default_file_metadata_func(str(note.path))
            meta["file"] = note.rel
            # what SimpleDirectoryReader keeps out of the embedding and the prompt
            hidden = ["file_name", "file_type", "file_size", "creation_date", "last_modified_date",
                      "last_accessed_date", "file"]
            docs.append(Document(text=text, metadata=meta, excluded_embed_metadata_keys=hidden,
                                 excluded_llm_metadata_keys=hidden))
        self.index = VectorStoreIndex.from_documents(docs, embed_model=self.embed_model or E5Embedding())
        self.node_count = len(self.index.docstore.docs)
        llm = getattr(self.loaded, "llm", self.loaded)
        self.retriever = self.index.as_retriever(similarity_top_k=self.top_k)
        self.engine = self.index.as_query_engine(llm=llm)

    def _where(self, node: Any) -> dict[str, Any]:
        rel = node.metadata.get("file", "")
        text = self._texts.get(rel, "")
        start = node.start_char_idx
        if start is None or text[start:start + len(node.text)] != node.text:
            found = text.find(node.text)
            start = found if found >= 0 else None
        if start is None:
            return {"file": rel, "line_start": 0, "line_end": 0}
        ls = text.count("\n", 0, start) + 1
        return {"file": rel, "line_start": ls, "line_end": ls + node.text.count("\n")}

    def ask(self, question: str) -> dict[str, Any]:
        if self.index is None:
            self.build()
        t0 = time.perf_counter()
        hits = self.retriever.retrieve(question)
        t1 = time.perf_counter()
        sources = [{**self._where(h.node), "text": h.node.text, "score": round(float(h.score or 0), 4)}
                   for h in hits]
        error = None
        try:
            response = self.engine.query(question)
            answer = str(response).strip()
            used = response.source_nodes
        except Exception as exc:  # noqa: BLE001 - graded as an error, like the product's
            answer, used, error = "", [], f"{type(exc).__name__}: {exc}"
        t2 = time.perf_counter()
        citations = [{"n": i, **self._where(n.node), "quote": n.node.text, "score": round(float(n.score or 0), 4)}
                     for i, n in enumerate(used, 1)]
        head = answer.lower()[:150]  # where such answers say it, as the product's own check looks
        refused = not answer or any(p in head for p in _NO_ANSWER)
        out = {"question": question, "answer": answer, "citations": citations, "sources": sources,
               "refused": refused, "llm": getattr(self.loaded, "name", None),
               "timings_ms": {"retrieve": int((t1 - t0) * 1000), "generate": int((t2 - t1) * 1000),
                              "total": int((t2 - t0) * 1000)}, "warnings": []}
        if error:
            out["error"] = error
        return out
