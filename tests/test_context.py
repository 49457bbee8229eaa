"""The prompt's passages: adjacent chunks of one section merged, neighbours added within
the budget, and citations into a merged passage still pointing at the exact file lines.

No model is needed: chunks come from the real splitter, citations from the real checker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.cite import cite
from assistant.context import SectionIndex, prompt_passages
from assistant.retrieve import Location, Passage
from conftest import make_settings
from ingest.index import StoredChunk
from ingest.split import split_text

NOTE = """# 优化

## 学习率

学习率决定了每一步沿梯度方向走多远。学习率太大时，损失会来回震荡甚至发散。

学习率太小时，训练收敛很慢，可能停在很差的局部区域。常见的做法是先用较大的学习率，再逐步衰减。

余弦退火把学习率按余弦曲线从初始值降到接近零，总步数通常设为 1000 步。

## 动量

动量法累积过去梯度的指数加权平均，动量系数通常取 0.9。

```python
v = 0.9 * v + g
w = w - lr * v
```

动量能减小震荡，在峡谷形的损失面上尤其有效。
"""


@pytest.fixture
def chunks(tmp_path) -> tuple[Path, list[StoredChunk]]:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "opt.md").write_text(NOTE, encoding="utf-8")
    # a small chunk size, so that each paragraph of a section is a chunk of its own
    return notes, [StoredChunk.from_chunk(c) for c in split_text(NOTE, "opt.md", max_chars=60)]


def _passage(c: StoredChunk, score: float) -> Passage:
    return Passage(c, score, locations=[Location(c.file, c.line_start, c.line_end)])


def _find(chunks: list[StoredChunk], needle: str) -> StoredChunk:
    (c,) = [c for c in chunks if needle in c.text]
    return c


def _file_lines(notes: Path, a: int, b: int) -> str:
    return "\n".join((notes / "opt.md").read_text(encoding="utf-8").split("\n")[a - 1:b])


def test_two_retrieved_neighbours_become_one_passage_and_free_a_slot(tmp_path, chunks):
    notes, cs = chunks
    first, second = _find(cs, "学习率决定了"), _find(cs, "学习率太小时")
    other, third = _find(cs, "动量法累积"), _find(cs, "余弦退火")
    s = make_settings(tmp_path / "d", prompt_passages=2, expand_passages=0)
    got = prompt_passages([_passage(first, 1.0), _passage(second, 0.9), _passage(other, 0.8), _passage(third, 0.7)],
                          SectionIndex(cs), s)
    assert len(got) == 2  # the freed slot went to the next-ranked passage
    merged = got[0].chunk
    assert (merged.line_start, merged.line_end) == (first.line_start, second.line_end)
    assert merged.text == _file_lines(notes, merged.line_start, merged.line_end)  # still verbatim
    assert got[1].chunk.id == other.id


def test_chunks_of_different_sections_are_never_merged(tmp_path, chunks):
    _, cs = chunks
    last_lr, first_mom = _find(cs, "余弦退火"), _find(cs, "动量法累积")
    s = make_settings(tmp_path / "d", prompt_passages=4)
    got = prompt_passages([_passage(last_lr, 1.0), _passage(first_mom, 0.9)], SectionIndex(cs), s)
    assert [p.chunk.heading for p in got] == [last_lr.heading, first_mom.heading]
    assert first_mom.text not in got[0].chunk.text


def test_the_best_passage_gets_its_section_neighbours_but_not_code(tmp_path, chunks):
    notes, cs = chunks
    mid = _find(cs, "学习率太小时")
    s = make_settings(tmp_path / "d", prompt_passages=3, expand_passages=1)
    got = prompt_passages([_passage(mid, 1.0)], SectionIndex(cs), s, "学习率太小会怎样？")
    merged = got[0].chunk
    for needle in ("学习率决定了", "学习率太小时", "余弦退火"):
        assert needle in merged.text
    assert merged.text == _file_lines(notes, merged.line_start, merged.line_end)
    mom = _find(cs, "动量法累积")
    got = prompt_passages([_passage(mom, 1.0)], SectionIndex(cs), s, "动量系数一般取多少？")
    assert "w = w - lr * v" not in got[0].chunk.text  # the code fence is not prose's neighbour


def test_neighbours_stop_at_the_size_limit(tmp_path, chunks):
    _, cs = chunks
    mid = _find(cs, "学习率太小时")
    s = make_settings(tmp_path / "d", expand_passages=1, merge_chars=len(mid.text) + 10)
    got = prompt_passages([_passage(mid, 1.0)], SectionIndex(cs), s, "学习率太小会怎样？")
    assert got[0].chunk.id == mid.id
    off = make_settings(tmp_path / "d", merge_chars=0)
    got = prompt_passages([_passage(mid, 1.0), _passage(_find(cs, "余弦退火"), 0.9)], SectionIndex(cs), off)
    assert [p.chunk.id for p in got] == [mid.id, _find(cs, "余弦退火").id]


def test_a_citation_into_a_merged_passage_names_the_quoted_line(tmp_path, chunks):
    notes, cs = chunks
    first = _find(cs, "学习率决定了")
    s = make_settings(tmp_path / "d", expand_passages=1)
    got = prompt_passages([_passage(first, 1.0)], SectionIndex(cs), s, "余弦退火的总步数是多少？")
    assert "余弦退火" in got[0].chunk.text
    answer = cite("余弦退火的总步数通常设为 1000 步[1]。", got, notes)
    (c,) = answer.citations
    line = NOTE.split("\n").index("余弦退火把学习率按余弦曲线从初始值降到接近零，总步数通常设为 1000 步。") + 1
    assert (c.file, c.line_start, c.line_end) == ("opt.md", line, line)
    assert "1000" in c.quote and c.quote in _file_lines(notes, c.line_start, c.line_end)


@pytest.mark.parametrize("sentence", ["学习率第{}次调整时，损失下降了{}个百分点。",
                                      "The learning rate was changed {} times and the loss fell {} points."])
def test_pieces_of_one_long_line_join_in_file_order(tmp_path, sentence):
    # a long paragraph on one line is cut at sentence ends into pieces that all start on
    # that line: the middle piece's neighbours join before and after it, verbatim
    line = " ".join(sentence.format(i, i + 1) for i in range(8)) if sentence[0].isascii() else \
        "".join(sentence.format(i, i + 1) for i in range(8))
    note = f"# T\n\n## S\n\n{line}\n"
    (tmp_path / "n.md").write_text(note, encoding="utf-8")
    cs = [StoredChunk.from_chunk(c) for c in split_text(note, "n.md", max_chars=len(line) // 3)]
    assert len(cs) >= 3 and len({c.line_start for c in cs}) == 1
    s = make_settings(tmp_path / "d", expand_passages=1, merge_chars=10 * len(line))
    got = prompt_passages([_passage(cs[1], 1.0)], SectionIndex(cs), s, "")
    merged = got[0].chunk
    assert merged.id.split("+") == [c.id for c in cs]
    assert merged.text == line


def test_two_sections_with_the_same_heading_path_are_never_merged(tmp_path):
    note = "# A\n\n## S\n\nfirst section text about topic one.\n\n## S\n\nsecond section text about topic two.\n"
    notes = tmp_path / "n"
    notes.mkdir()
    (notes / "s.md").write_text(note, encoding="utf-8")
    cs = [StoredChunk.from_chunk(c) for c in split_text(note, "s.md")]
    assert len(cs) == 2 and cs[0].heading == cs[1].heading and cs[0].section != cs[1].section
    s = make_settings(tmp_path / "d", expand_passages=1)
    got = prompt_passages([_passage(cs[0], 1.0), _passage(cs[1], 0.9)], SectionIndex(cs), s)
    assert [p.chunk.id for p in got] == [cs[0].id, cs[1].id]  # the "## S" line between them stays a border


def test_a_plain_text_note_gets_no_neighbours(tmp_path):
    text = "\n".join(f"第 {i} 条摘录：互不相关的一句笔记内容，编号 {i}。" for i in range(12))
    cs = [StoredChunk.from_chunk(c) for c in split_text(text, "t.txt", max_chars=60)]
    assert len(cs) > 3 and not cs[1].heading
    s = make_settings(tmp_path / "d", expand_passages=1)
    got = prompt_passages([_passage(cs[1], 1.0)], SectionIndex(cs), s, "第 1 条摘录说了什么？")
    assert got[0].chunk.id == cs[1].id
    # two retrieved chunks that touch are still one passage
    got = prompt_passages([_passage(cs[1], 1.0), _passage(cs[2], 0.9)], SectionIndex(cs), s)
    assert len(got) == 1 and got[0].chunk.line_start == cs[1].line_start and got[0].chunk.line_end == cs[2].line_end
