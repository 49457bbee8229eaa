"""ingest/sentence_index.py: every prose sentence has a vector in the snapshot; a re-ingest
embeds only new sentences; retrieval ranks a chunk by its best sentence; an index written
before sentence vectors were kept still answers and the next ingest adds them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from conftest import make_settings
from ingest.index import Manifest, index_dir_for, load_snapshot_chunks
from ingest.pipeline import run_ingest
from ingest.sentence_index import KEYS_FILE, OWNER_FILE, SENTENCES_FILE, SentenceVectors, sentence_texts

NOTE_A = """# Optimisers

## Momentum

Momentum keeps a running average of past gradients.
The average smooths the direction of each step.
A coefficient of 0.9 is the usual choice for the momentum term.
Plain gradient descent has no such memory of earlier steps.

```python
velocity = 0.9 * velocity + grad
```
"""

NOTE_B = """# 正则化

## 暂退法

暂退法在训练时随机把一部分隐藏单元置零。
测试时不再丢弃任何单元。
丢弃概率常取 0.5，输入层取得更小。
"""


def _snapshot_dir(settings, notes: Path) -> tuple[Path, list]:
    idx = index_dir_for(settings.data_dir, notes)
    m = Manifest.load(idx)
    return idx / "snapshots" / m.snapshot, load_snapshot_chunks(idx, m.snapshot)


def _write(notes: Path, a: str = NOTE_A, b: str = NOTE_B) -> None:
    notes.mkdir(exist_ok=True)
    (notes / "optim.md").write_text(a, encoding="utf-8")
    (notes / "reg.md").write_text(b, encoding="utf-8")


def _ingested(tmp_path: Path, embedder):
    """The two notes ingested once: (settings, notes folder, summary)."""
    notes = tmp_path / "notes"
    _write(notes)
    s = make_settings(tmp_path / "data")
    return s, notes, run_ingest(s, notes, embedder=embedder)


def test_every_prose_sentence_has_a_unit_vector_and_code_has_none(tmp_path, embedder):
    s, notes, summary = _ingested(tmp_path, embedder)
    folder, chunks = _snapshot_dir(s, notes)
    sv = SentenceVectors.load(folder, len(chunks), keys=True)
    expected = [(row, t) for row, c in enumerate(chunks) for t in sentence_texts(c)]
    assert summary.sentences_embedded == len(expected) > 0
    assert [int(o) for o in sv.owner] == [row for row, _ in expected]
    assert all(chunks[row].kind != "code" for row, _ in expected)
    assert np.allclose(np.linalg.norm(sv.vectors, axis=1), 1.0, atol=1e-4)
    # each row is the embedding of its own text (heading path, then the sentence)
    row_text = expected[2][1]
    assert row_text.startswith("Optimisers > Momentum\n")
    want = np.asarray(embedder.get_text_embedding(row_text), dtype=np.float32)
    assert float(sv.vectors[2] @ (want / np.linalg.norm(want))) > 0.999


def test_a_reingest_embeds_only_the_new_sentences(tmp_path, embedder):
    s, notes, _ = _ingested(tmp_path, embedder)
    _, before = _snapshot_dir(s, notes)
    old_texts = {t for c in before for t in sentence_texts(c)}
    _write(notes, b=NOTE_B.replace("测试时不再丢弃任何单元。", "测试时不再丢弃任何单元，输出也不用再缩放。"))
    summary = run_ingest(s, notes, embedder=embedder)
    folder, after = _snapshot_dir(s, notes)
    new_texts = [t for c in after for t in sentence_texts(c) if t not in old_texts]
    assert summary.sentences_embedded == len(set(new_texts)) >= 1
    assert len(SentenceVectors.load(folder, len(after))) == sum(len(sentence_texts(c)) for c in after)
    assert run_ingest(s, notes, embedder=embedder).sentences_embedded == 0  # unchanged: nothing to embed


def test_a_chunk_is_found_by_its_best_sentence(tmp_path, embedder):
    from llama_index.core.schema import QueryBundle

    from assistant.query import NotesAssistant

    s, notes, _ = _ingested(tmp_path, embedder)
    qa = NotesAssistant(s, notes_dir=notes, embedder=embedder)
    q = "What value is usually chosen for the momentum coefficient?"
    hits = qa.retriever.sentences.hits(QueryBundle(q))
    top, sim = hits[0]
    assert top.file == "optim.md" and "0.9 is the usual choice" in top.text
    # the score is the cosine of the best sentence, which beats the chunk's own cosine
    chunk_sim = dict((c.id, v) for c, v in qa.snapshot.dense_hits(q, 10))[top.id]
    assert sim > chunk_sim


def test_an_index_without_sentence_vectors_answers_and_the_next_ingest_adds_them(tmp_path, embedder):
    from assistant.query import NotesAssistant

    s, notes, _ = _ingested(tmp_path, embedder)
    folder, chunks = _snapshot_dir(s, notes)
    for name in (SENTENCES_FILE, OWNER_FILE, KEYS_FILE):
        (folder / name).unlink()
    qa = NotesAssistant(s, notes_dir=notes, embedder=embedder)
    assert qa.snapshot.sentence_vectors is None
    assert qa.search("丢弃概率常取多少？")[0].file == "reg.md"
    summary = run_ingest(s, notes, embedder=embedder)  # the folder is unchanged, the index is not complete
    folder, chunks = _snapshot_dir(s, notes)
    assert summary.chunks_embedded == 0 and summary.sentences_embedded == sum(len(sentence_texts(c)) for c in chunks)
    assert SentenceVectors.load(folder, len(chunks)) is not None


def test_torn_sentence_files_are_no_index(tmp_path, embedder):
    s, notes, _ = _ingested(tmp_path, embedder)
    folder, chunks = _snapshot_dir(s, notes)
    shutil.copy(folder / OWNER_FILE, tmp_path / "owner.npy")
    (folder / OWNER_FILE).write_bytes((tmp_path / "owner.npy").read_bytes()[:20])
    assert SentenceVectors.load(folder, len(chunks)) is None
    np.save(folder / OWNER_FILE, np.full(len(np.load(tmp_path / "owner.npy")), len(chunks), dtype=np.int32))
    assert SentenceVectors.load(folder, len(chunks)) is None  # rows that point past the chunks
