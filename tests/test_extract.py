"""Answers in the notes' own words: when the model restates the question or says nothing a
passage supports, the answer becomes the note sentences that answer best, each cited at
its exact file lines.

The embedder, splitter, index and citation checker are the real ones. The only stand-in is
the answering model of the last tests: a model that echoes the question is a real fault
of the 0.5B model, but not one it makes on demand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from assistant.cite import cite
from assistant.compose import MAX_CLAIM_CHARS, extractive
from assistant.cite import restates
from assistant.extract import note_sentences, one_line
from assistant.sentences import rank_sentences
from assistant.retrieve import Location, Passage
from conftest import make_settings, read_lines
from ingest.index import StoredChunk
from ingest.split import split_text

# written the way Chinese Markdown notes often are: one clause per line
NOTE = """# 多层感知机

## 隐藏层

这个多层感知机有4个输入，3个输出，
其隐藏层包含5个隐藏单元。
输入层不涉及任何计算，
因此使用此网络产生输出只需要实现隐藏层和输出层的计算。
因此，这个多层感知机中的层数为2。

## 激活函数

* ReLU 函数保留正元素并丢弃所有负元素。
* sigmoid 函数把输入变换为区间 (0, 1) 上的输出。

由于内存在硬件中的分配和寻址方式，
隐藏单元的个数通常选择 2 的若干次幂，这样在计算上更高效。
"""


@pytest.fixture
def note(tmp_path) -> tuple[Path, list[StoredChunk]]:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mlp.md").write_text(NOTE, encoding="utf-8")
    return notes, [StoredChunk.from_chunk(c) for c in split_text(NOTE, "mlp.md")]


def _passages(chunks: list[StoredChunk]) -> list[Passage]:
    return [Passage(c, 1.0 - i / 10, locations=[Location(c.file, c.line_start, c.line_end)])
            for i, c in enumerate(chunks)]


@pytest.mark.parametrize("answer, question, expected", [
    ("全连接层之间如果不放非线性函数，叠再多层没有用[1]。", "全连接层之间如果不放非线性函数，叠再多层为什么也没用？", True),
    ("隐藏单元个数为什么常取 2 的整数次幂，比如 256？。", "隐藏单元个数为什么常取 2 的整数次幂，比如 256？", True),
    ("Why is gradient clipping used [2]?", "Why is gradient clipping used?", True),
    ("Adam 优化器的默认学习率是 0.001 [2]。", "Adam 默认的学习率是多少？", False),
    ("因为内存在硬件中按 2 的幂分配和寻址，计算上更高效 [1]。", "隐藏单元个数为什么常取 2 的整数次幂？", False),
    ("It prevents exploding gradients when training RNNs [1].", "Why is gradient clipping used?", False),
    ("Greedy search is a special case of beam search with beam width 1 [1].",
     "Greedy search is a special case of beam search with what beam width?", False),
])
def test_an_answer_that_restates_the_question_restates(answer, question, expected):
    assert restates(answer, question) is expected


def test_sentences_cut_by_line_breaks_are_joined_and_blocks_stay_apart():
    spans = note_sentences(NOTE)
    sentences = [one_line(NOTE[s:e]) for s, e in spans]
    # the note's own sentence, whole, although the file breaks it over two lines
    assert "输入层不涉及任何计算，因此使用此网络产生输出只需要实现隐藏层和输出层的计算。" in sentences
    assert "这个多层感知机有4个输入，3个输出，其隐藏层包含5个隐藏单元。" in sentences
    # list items and headings are blocks of their own, never glued to their neighbours
    assert "* ReLU 函数保留正元素并丢弃所有负元素。" in sentences
    assert not any("ReLU" in s and "sigmoid" in s for s in sentences)
    assert not any(s.startswith("# ") and "这个" in s for s in sentences)
    # spans are offsets into the verbatim text, in order and without overlap
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("question, fact", [
    ("这个多层感知机的层数是多少？", "层数为2"),
    ("为什么隐藏单元个数常取 2 的幂？", "内存在硬件中的分配和寻址方式"),
])
def test_the_sentence_that_answers_is_chosen_and_cited_at_its_lines(note, embedder, question, fact):
    notes, chunks = note
    passages = _passages([c for c in chunks if c.kind != "code"])
    ranked = rank_sentences(question, passages, embedder)
    text = extractive(question, ranked)
    assert text is not None
    assert fact in text
    assert len(re.sub(r"\s*\[\d+\]", "", text)) <= 2 * MAX_CLAIM_CHARS + 2
    checked = cite(text, passages, notes, infer_missing=False)
    assert checked.citations and not checked.dropped
    lines = read_lines(notes / "mlp.md")
    for c in checked.citations:
        assert c.quote in "\n".join(lines[c.line_start - 1:c.line_end])


def test_a_question_for_a_number_is_not_answered_by_a_sentence_without_one(note, embedder):
    chunks = [StoredChunk.from_chunk(c) for c in split_text(
        "# 激活函数\n\nReLU 函数保留正元素并丢弃所有负元素，它的导数在正区间恒定。\n", "act.md")]
    ranked = rank_sentences("ReLU 函数一共有多少个参数？", _passages(chunks), embedder)
    assert ranked and not any(ch.isdigit() for ch in ranked[0].plain)
    assert extractive("ReLU 函数一共有多少个参数？", ranked) is None


# --- through the query API, with a model that echoes the question ----------------------

class _EchoModel:
    """Answers every question by repeating it (the 0.5B model's worst habit)."""

    def stream_chat(self, messages):
        from llama_index.core.llms import ChatMessage, ChatResponse

        question = messages[-1].content.split("问题：")[-1].split("\n")[0]
        yield ChatResponse(message=ChatMessage(role="assistant", content=question), delta=question)


def test_an_echoed_answer_is_replaced_by_cited_note_sentences(tmp_path, embedder):
    from assistant.llm import LoadedLLM
    from assistant.query import NotesAssistant
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mlp.md").write_text(NOTE, encoding="utf-8")
    settings = make_settings(tmp_path / "data")
    run_ingest(settings, notes, embedder=embedder)
    qa = NotesAssistant(settings, notes, llm=LoadedLLM(_EchoModel(), "echo", "embedded", 4096))
    answer = qa.ask("隐藏单元的个数为什么通常选择 2 的若干次幂？")
    assert not answer.refused
    assert "内存在硬件中的分配和寻址方式" in answer.answer
    assert any("restated the question" in w for w in answer.warnings)
    lines = read_lines(notes / "mlp.md")
    assert answer.citations
    for c in answer.citations:
        assert c.file == "mlp.md"
        assert c.quote in "\n".join(lines[c.line_start - 1:c.line_end])


@pytest.mark.parametrize("question, sentence, wanted", [
    ("这个网络算几层？", "因此，这个多层感知机中的层数为2。", True),
    ("How many examples does the training set hold?", "训练数据集包括1460个样本。", True),
    ("为什么要把梯度裁剪？", "由于梯度可能爆炸，所以要裁剪。", True),
    ("Why do we clip gradients?", "Clipping is done so that updates stay small.", True),
    ("这种做法叫什么？", "这种做法称为强制教学。", True),
    ("这个网络算几层？", "输入层不涉及任何计算。", False),
    ("为什么要把梯度裁剪？", "梯度裁剪有一个阈值。", False),
    ("BERT 是什么？", "BERT 有 12 层。", False),  # no answer type asked: no cue counts
])
def test_the_answer_type_asked_for_is_cued_in_the_sentence(question, sentence, wanted):
    from assistant.extract import answer_cues

    assert any(cue.search(sentence) for cue in answer_cues(question)) is wanted


@pytest.mark.parametrize("note_text, answered", [
    ("# 激活函数\n\nGELU 是一种平滑的激活函数，在 Transformer 和 BERT 里很常用。\n\n"
     "它在负区间不像 ReLU 那样直接截断为零。\n", False),
    ("# 激活函数\n\nGELU 是一种平滑的激活函数，在 Transformer 和 BERT 里很常用。\n\n"
     "它的公式是 $\\mathrm{GELU}(x) = x\\Phi(x)$，其中 $\\Phi$ 是标准正态分布的分布函数。\n", True),
])
def test_a_question_for_a_formula_needs_a_sentence_that_writes_one(embedder, note_text, answered):
    chunks = [StoredChunk.from_chunk(c) for c in split_text(note_text, "act.md")]
    q = "GELU 激活函数的数学公式是什么？"
    text = extractive(q, rank_sentences(q, _passages(chunks), embedder))
    assert (text is not None) == answered
    if answered:
        assert "x\\Phi(x)" in text


def test_the_answer_stays_in_the_note_of_its_best_sentence_unless_another_is_clearly_better():
    from assistant.sentences import OTHER_FILE, Sentence, score

    a, b = (StoredChunk.from_chunk(split_text(NOTE, f)[0]) for f in ("a.md", "b.md"))
    pa, pb = _passages([a, b])

    def ranked(second_a: float, from_b: float) -> list[str]:
        sents = [Sentence(1, pa, "甲", "甲", {"dense": 0.9}), Sentence(1, pa, "乙", "乙", {"dense": second_a}),
                 Sentence(2, pb, "丙", "丙", {"dense": from_b})]
        return [s.plain for s in score(sents)]

    assert ranked(0.8, 0.8 + OTHER_FILE / 2) == ["甲", "乙", "丙"]  # a little better, from another note
    assert ranked(0.8, 0.8 + 2 * OTHER_FILE) == ["甲", "丙", "乙"]  # clearly better
    assert [s.plain for s in score([Sentence(1, pa, "乙", "乙", {"dense": 0.8}),
                                    Sentence(2, pb, "丙", "丙", {"dense": 0.9})])] == ["丙", "乙"]  # the best leads
