"""The ranking rules that need no model: character n-grams, exercise sections, and the
weighted rank fusion of three lists (with real chunks from the real splitter)."""

from __future__ import annotations

import pytest

from assistant.retrieve import fuse, is_exercise, is_question_list
from conftest import make_settings
from ingest.index import StoredChunk
from ingest.keywords import char_ngrams, tokenize
from ingest.split import split_text


def test_character_ngrams_match_where_word_segmentation_differs():
    question, note = "每个词的向量是多少维？", "字向量维度被设置为100。"
    assert not ({t for t in tokenize(question)} & {"维度"})  # the word index cannot see it
    shared = set(char_ngrams(question)) & set(char_ngrams(note))
    assert {"维", "向量"} <= shared
    assert "的" not in char_ngrams(question)  # function characters carry no topic
    assert char_ngrams("only English words here") == []


def _hits(*chunks: StoredChunk) -> list[tuple[StoredChunk, float]]:
    """A ranked list as ``fuse`` takes it: chunks with scores, best first."""
    return [(c, 1.0) for c in chunks]


def _chunk(md: str, needle: str) -> StoredChunk:
    (c,) = [StoredChunk.from_chunk(c) for c in split_text(md, "x.md") if needle in c.text]
    return c


@pytest.mark.parametrize("heading", ["练习", "习题", "Exercises", "思考题"])
def test_exercise_sections_are_recognised_by_their_heading(heading):
    md = f"# 多层感知机\n\n## {heading}\n\n1. 描述一下如何实现权重衰减。\n1. 试着调整超参数，看看结果如何变化。\n"
    assert is_exercise(_chunk(md, "权重衰减"))


def test_numbered_questions_are_a_question_list_but_question_and_answer_notes_are_not():
    assert is_question_list("1. 为什么要用非线性激活函数？\n2. 如何选择隐藏层的宽度？\n3. 学习率太大会怎样？")
    assert is_question_list("1. Why does dropout help?\n2. What happens with a large learning rate?")
    assert not is_question_list("问：为什么要用激活函数？\n答：没有它，多层等价于一层。\n问：学习率呢？\n答：太大会发散。")
    assert not is_question_list("Q: Why dropout? A: It regularises. Q: Why not? A: It slows training.\nAnswer: both.")
    assert not is_question_list("学习率决定步长。学习率太大时损失会震荡。那么应该怎么选？常见做法是逐步衰减。")
    prose = "# 优化\n\n## 动量\n\n动量法累积过去梯度的指数加权平均，动量系数通常取 0.9。\n"
    assert not is_exercise(_chunk(prose, "动量法"))


def test_fusion_weights_each_list_and_ranks_exercises_and_code_down(tmp_path):
    md = ("# T\n\n## 正文\n\nalpha beta gamma prose passage one.\n\n## 练习\n\n1. 为什么 alpha？\n1. 如何 beta？\n\n"
          "## 代码\n\n```python\nalpha = beta\n```\n\n## 其他\n\nanother prose passage two.\n")
    chunks = [StoredChunk.from_chunk(c) for c in split_text(md, "t.md")]
    prose, exercise, code, other = (next(c for c in chunks if n in c.text) for n in
                                     ("passage one", "为什么 alpha", "alpha = beta", "passage two"))

    s = make_settings(tmp_path / "d")
    # every list ranks the exercise and the code first: the penalties put the prose first
    ranked = {"dense": (_hits(exercise, code, prose), 1.0), "words": (_hits(code, exercise, prose), 1.0)}
    order = [p.chunk.id for p in fuse(ranked, s, 5, "alpha 是什么？")]
    assert order[0] == prose.id
    # ... unless the question is about code
    order = [p.chunk.id for p in fuse(ranked, s, 5, "alpha 的代码怎么写？")]
    assert order.index(code.id) < order.index(prose.id)
    # a list's weight decides between two passages it disagrees on
    two = {"dense": (_hits(prose, other), 1.0), "words": (_hits(other, prose), 0.5)}
    assert fuse(two, s, 5)[0].chunk.id == prose.id
    two = {"dense": (_hits(prose, other), 0.5), "words": (_hits(other, prose), 1.0)}
    assert fuse(two, s, 5)[0].chunk.id == other.id
    # the top passage of every list that found something scores 1
    assert fuse({"dense": (_hits(prose), 1.0), "chars": ([], 0.25)}, s, 5)[0].score == 1.0


def test_the_character_list_abstains_on_passages_without_chinese(tmp_path):
    md = ("# Optim\n\n## Adam\n\nAdam uses a default learning rate of 0.001.\n\n"
          "## 归一化\n\n批量归一化让每层输入的分布稳定，学习率可以设得更大。\n")
    chunks = [StoredChunk.from_chunk(c) for c in split_text(md, "o.md")]
    adam, norm = (next(c for c in chunks if n in c.text) for n in ("Adam uses", "批量归一化"))

    s = make_settings(tmp_path / "d")
    # "Adam 的默认学习率是多少？": first for vectors and words; the character list only sees the Chinese note
    ranked = {"dense": (_hits(adam, norm), 1.0), "words": (_hits(adam, norm), 1.0), "chars": (_hits(norm), 1.0)}
    order = fuse(ranked, s, 5, "Adam 的默认学习率是多少？")
    assert [p.chunk.id for p in order] == [adam.id, norm.id]
    assert order[0].score == 1.0
