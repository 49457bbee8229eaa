"""ingest/split.py: chunk boundaries, line numbers, headings, math, code, markup."""

from __future__ import annotations

import re

import pytest

from conftest import assert_at_lines, read_lines
from ingest.load import walk
from ingest.split import split_text

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SENT_END_ZH = "。！？；"

# naive splitters cut at blank lines, at sentence ends and at lines that look like headings:
# every block below holds all three
DOLLAR_BLOCK = "$$\nL(\\theta) = \\sum_i \\ell_i。 Then the sum stops! Really?\n\nR(\\theta) = \\lambda \\|w\\|^2\n$$"
BRACKET_BLOCK = "\\[\nm_t = \\beta_1 m_{t-1}。 v_t = \\beta_2 v_{t-1}; done.\n\n\\hat m_t = m_t / (1-\\beta_1^t)\n\\]"
ALIGN_BLOCK = "\\begin{align}\nq &= W_q x。 k = W_k x.\n\nv &= W_v x\n\\end{align}"
CODE_BLOCK = ("```python\n# not a heading: a comment\nimport torch\n\n\ndef f(x):\n    \"\"\"Sentence one. 中文句子。\"\"\"\n"
              "    return x  # done!\n\n## still code\n$$ not math $$\n```")
TILDE_BLOCK = "~~~\n## also not a heading\n\nplain listing line.\n~~~"

LONG_EN = " ".join(f"Sentence number {i} talks about gradient descent and its step size." for i in range(6))
LONG_ZH = "".join(f"第{i}句讲的是梯度下降和它的步长{'。！？；'[i % 4]}" for i in range(12))

DOC = f"""---
title: 测试笔记
tags: [math, code]
---

# 第一章

Intro paragraph. It has two sentences.

## 公式

{LONG_EN}
{DOLLAR_BLOCK}
{LONG_EN}

{LONG_ZH}
{BRACKET_BLOCK}
More text after the bracket block. And another sentence here to make it long enough.
{ALIGN_BLOCK}
{LONG_EN}

## 代码

Some words before the code.

{CODE_BLOCK}

{TILDE_BLOCK}

## 示例

first example text.

## 示例

second example text.

### 子节

sub text :label:`sec_sub` with ![inline image](figs/x.png) and see :numref:`fig_y` for more.

:label:`fig_alone`
![diagram](figs/d.png)

A paragraph with a [link](http://example.com/page) kept as its words.

# 第二章

Chapter two text.
"""


def expected_heading_paths(lines: list[str]) -> list[tuple[str, ...] | None]:
    """The heading path in force at each line (None on heading lines), computed from the file."""
    out: list[tuple[str, ...] | None] = []
    stack: list[tuple[int, str]] = []
    fence: str | None = None
    start = 0
    if lines and lines[0].strip() == "---":
        start = next(i for i in range(1, len(lines)) if lines[i].strip() == "---") + 1
        out.extend([()] * start)
    for line in lines[start:]:
        if fence:
            if line.strip().startswith(fence):
                fence = None
            out.append(tuple(t for _, t in stack))
            continue
        f = FENCE.match(line)
        if f:
            fence = f.group(1)
            out.append(tuple(t for _, t in stack))
            continue
        m = HEADING.match(line)
        if m:
            level = len(m.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, m.group(2)))
            out.append(None)
            continue
        out.append(tuple(t for _, t in stack))
    return out


def heading_lines(lines: list[str]) -> set[int]:
    """1-based numbers of the Markdown heading lines (outside code fences and front matter)."""
    return {i + 1 for i, p in enumerate(expected_heading_paths(lines)) if p is None}


def check_chunks(text: str, file: str, max_chars: int):
    lines = text.split("\n")
    chunks = split_text(text, file, max_chars=max_chars)
    markdown = file.endswith((".md", ".markdown"))
    paths = expected_heading_paths(lines) if markdown else [()] * len(lines)
    heads = heading_lines(lines) if markdown else set()
    for c in chunks:
        assert c.file == file
        assert_at_lines(lines, c.text, c.line_start, c.line_end, f"{file}:{c.line_start}-{c.line_end}")
        assert not heads & set(range(c.line_start, c.line_end + 1)), f"chunk crosses a heading: {c.text[:60]!r}"
        want = {paths[i - 1] for i in range(c.line_start, c.line_end + 1)}
        assert want == {tuple(c.heading)}, (c.line_start, c.heading, want)
        assert c.kind in ("prose", "code")
    assert len({c.id for c in chunks}) == len(chunks)
    return chunks


@pytest.mark.parametrize("max_chars", [80, 120, 400])
def test_constructed_note_lines_and_headings_exact(max_chars):
    chunks = check_chunks(DOC, "notes/test.md", max_chars)
    assert len(chunks) > 10


def test_sample_notes_lines_and_headings_exact(examples_notes):
    found = walk(examples_notes)
    assert found.notes
    for note in found.notes:
        text = "\n".join(read_lines(note.path))
        for max_chars in (80, 400):
            chunks = check_chunks(text, note.rel, max_chars)
            assert chunks, note.rel


@pytest.mark.shared
def test_shared_notes_lines_exact_and_one_excerpt_per_line(shared_notes):
    for path in sorted(shared_notes.glob("*.txt")):
        lines = read_lines(path)
        chunks = check_chunks("\n".join(lines), path.name, 400)
        # one excerpt per line: a chunk is either a piece of one line or whole lines, never a
        # piece of one line joined to the next; every non-blank line is covered, nothing repeated
        for c in chunks:
            if c.line_start != c.line_end:
                assert c.text == "\n".join(lines[c.line_start - 1:c.line_end]).strip()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            pieces = [c.text for c in chunks if c.line_start == c.line_end == n]
            if not pieces:
                assert any(c.line_start <= n <= c.line_end and line in c.text for c in chunks), n
                continue
            assert "".join(pieces).replace(" ", "") == line.strip().replace(" ", "")


def test_repeated_heading_name_is_still_a_boundary():
    text = "# A\n\n## 示例\n\nfirst example text.\n\n## 示例\n\nsecond example text.\n"
    chunks = split_text(text, "x.md", max_chars=400)
    lines = text.split("\n")
    where = [lines.index(t) + 1 for t in ("first example text.", "second example text.")]
    assert [(c.line_start, c.line_end) for c in chunks] == [(n, n) for n in where]
    assert all("## 示例" not in c.text for c in chunks)


@pytest.mark.parametrize("block", [DOLLAR_BLOCK, BRACKET_BLOCK, ALIGN_BLOCK], ids=["dollars", "brackets", "align"])
@pytest.mark.parametrize("max_chars", [80, 120, 400])
def test_display_math_is_never_split(block, max_chars):
    chunks = split_text(DOC, "test.md", max_chars=max_chars)
    whole = [c for c in chunks if block in c.text]
    assert len(whole) == 1, f"{len(whole)} chunks hold the whole block"
    assert block in whole[0].clean
    inner = [ln for ln in block.split("\n")[1:-1] if ln.strip()]  # the lines between the delimiters
    for c in chunks:
        if c is not whole[0]:
            assert not any(ln in c.text for ln in inner), f"part of a math block in another chunk: {c.text[:80]!r}"


def test_math_block_longer_than_the_limit_stays_whole():
    body = "\n".join(f"x_{i} = a_{i} + b_{i}。 step {i}." for i in range(30))
    block = f"$$\n{body}\n$$"
    text = f"Before the formula. {LONG_EN}\n{block}\nAfter the formula."
    chunks = split_text(text, "m.md", max_chars=100)
    assert len(chunks) >= 2
    assert sum(block in c.text for c in chunks) == 1


def test_math_block_in_plain_text_note():
    text = f"first excerpt line.\n{DOLLAR_BLOCK}\nlast excerpt line."
    chunks = split_text(text, "plain.txt", max_chars=80)
    lines = text.split("\n")
    assert sum(DOLLAR_BLOCK in c.text for c in chunks) == 1
    for c in chunks:
        assert_at_lines(lines, c.text, c.line_start, c.line_end)


def test_inline_math_is_not_cut_at_a_sentence_end():
    formula = "$p(x)=\\prod_i p(x_i。 x_{<i})! $"
    sentence = f"链式法则把联合分布写成 {formula} 的连乘。"
    text = LONG_ZH + sentence + LONG_ZH
    chunks = split_text(text, "inline.txt", max_chars=60)
    assert len(chunks) > 2
    assert sum(formula in c.text for c in chunks) == 1


@pytest.mark.parametrize("block", [CODE_BLOCK, TILDE_BLOCK], ids=["backticks", "tildes"])
def test_code_fence_is_one_code_chunk(block):
    lines = DOC.split("\n")
    for max_chars in (80, 400):
        chunks = split_text(DOC, "test.md", max_chars=max_chars)
        code = [c for c in chunks if c.kind == "code"]
        assert sorted(c.text for c in code) == sorted([CODE_BLOCK, TILDE_BLOCK])
        mine = [c for c in chunks if block in c.text]
        assert len(mine) == 1 and mine[0].kind == "code" and mine[0].text == block
        first = lines.index(block.split("\n")[0]) + 1
        assert (mine[0].line_start, mine[0].line_end) == (first, first + block.count("\n"))
        assert mine[0].heading == ["第一章", "代码"]
        inner = [ln for ln in block.split("\n")[1:-1] if ln.strip()]
        for c in chunks:
            if c is not mine[0]:
                assert not any(ln in c.text for ln in inner)


def test_sample_note_code_fence_is_code(examples_notes):
    path = examples_notes / "深度学习" / "transformer.md"
    lines = read_lines(path)
    chunks = split_text("\n".join(lines), "深度学习/transformer.md")
    opens = [i + 1 for i, ln in enumerate(lines) if ln.startswith("```")]
    assert len(opens) == 2  # one fence: opening and closing line
    code = [c for c in chunks if c.kind == "code"]
    assert [(c.line_start, c.line_end) for c in code] == [tuple(opens)]
    assert all(c.kind == "prose" for c in chunks if c not in code)


def test_chinese_sentence_ends_cut_long_lines():
    max_chars = 100
    chunks = split_text(LONG_ZH + "\n" + LONG_ZH[:40], "zh.txt", max_chars=max_chars)
    first = [c for c in chunks if c.line_start == 1]
    assert len(first) >= 2, "a long line must be cut"
    assert "".join(c.text for c in first) == LONG_ZH  # no character lost or repeated
    for c in first:
        assert c.text[-1] in SENT_END_ZH, f"cut not at a sentence end: {c.text[-10:]!r}"
        assert len(c.text) <= max_chars + max_chars // 5
    # the second line is its own excerpt
    assert [c.text for c in chunks if c.line_start == 2] == [LONG_ZH[:40]]


def test_english_sentence_ends_cut_long_lines():
    chunks = split_text(LONG_EN, "en.txt", max_chars=150)
    assert len(chunks) >= 3
    assert " ".join(c.text for c in chunks) == LONG_EN
    assert all(c.text.endswith(".") for c in chunks)


def test_a_paragraph_written_one_clause_per_line_is_cut_at_sentence_ends():
    # English (and much Chinese) Markdown breaks lines inside sentences; a long paragraph
    # must be cut where a sentence ends, never at a line break inside one
    sentences = [f"Sentence {i} starts here,\nwhile a clause of it runs on\nand ends on line three of it." for i in range(8)]
    para = "\n".join(sentences)
    chunks = split_text("# Title\n\n" + para + "\n", "clauses.md", max_chars=150)
    assert len(chunks) >= 3, "a long paragraph must be cut"
    for c in chunks:
        assert c.text.startswith("Sentence "), f"a chunk starts inside a sentence: {c.text[:30]!r}"
        assert c.text.endswith("of it."), f"a chunk ends inside a sentence: {c.text[-30:]!r}"
    assert "\n".join(c.text for c in chunks) == para  # nothing lost or repeated


@pytest.mark.parametrize("line", ["token{i} maps to index {i} in the vocabulary table", "第{i}项 词表里的一个词元"])
def test_lines_that_never_end_a_sentence_still_make_bounded_chunks(line):
    # a word list or key: value lines: joined as one "sentence" they must still be cut
    para = "\n".join(line.format(i=i) for i in range(200))
    chunks = split_text("# List\n\n" + para + "\n", "list.md", max_chars=200)
    assert len(chunks) > 5
    assert all(len(c.text) <= 200 for c in chunks), max(len(c.text) for c in chunks)
    assert "\n".join(c.text for c in chunks) == para


def test_answer_sentences_end_at_a_full_stop_at_the_end_of_a_line():
    from assistant.extract import note_sentences

    text = "The input is $3$ wide,\nso the output is $2$ wide.\nPadding keeps the size.\nStrides shrink it,\nby half.\n"
    got = [text[s:e].strip() for s, e in note_sentences(text)]
    assert got == ["The input is $3$ wide,\nso the output is $2$ wide.", "Padding keeps the size.",
                   "Strides shrink it,\nby half."]


def test_english_notes_take_their_own_chunk_size_and_code_does_not_make_a_note_english():
    en = "# Notes\n\n" + " ".join(f"Sentence number {i} says one plain thing about convolutions." for i in range(40))
    zh_prose = "卷积层用一个小的核在输入上滑动，每个位置把对应元素相乘再求和。" * 12
    code = "```python\n" + "\n".join(f"x_{i} = torch.conv2d(inputs, kernel, stride=1, padding=0)" for i in range(80)) + "\n```"
    zh = "# 卷积\n\n" + zh_prose + "\n\n" + code + "\n"
    small, large = 150, 450
    en_sizes = [len(c.text) for c in split_text(en, "en.md", max_chars=small, max_chars_en=large)]
    assert max(en_sizes) > small and all(n <= large for n in en_sizes)
    zh_prose_chunks = [c for c in split_text(zh, "zh.md", max_chars=small, max_chars_en=large) if c.kind == "prose"]
    assert zh_prose_chunks and all(len(c.text) <= small for c in zh_prose_chunks)
    # without max_chars_en every note takes max_chars
    assert all(len(c.text) <= small for c in split_text(en, "en.md", max_chars=small))


def test_decimal_point_is_not_a_sentence_end():
    text = "Adam uses beta1 = 0.9 and beta2 = 0.999 by default and a learning rate of 0.001 " * 3
    chunks = split_text(text.strip(), "dec.txt", max_chars=80)
    for c in chunks:
        assert not re.match(r"^\d", c.text), f"cut inside a number: {c.text[:20]!r}"


def test_front_matter_is_not_chunked(examples_notes):
    for text, file in [(DOC, "test.md"),
                       ("\n".join(read_lines(examples_notes / "深度学习" / "transformer.md")), "t.md")]:
        lines = text.split("\n")
        assert lines[0] == "---"
        end = next(i for i in range(1, len(lines)) if lines[i] == "---") + 1  # 1-based closing line
        chunks = split_text(text, file)
        assert chunks
        assert all(c.line_start > end for c in chunks)
        assert not any("title:" in c.text or "tags:" in c.text for c in chunks)


def test_front_matter_only_in_markdown():
    text = "---\nthis is a plain text note line.\n---"
    chunks = split_text(text, "plain.txt")
    assert "\n".join(c.text for c in chunks) == text
    assert chunks[0].line_start == 1


def test_layout_markup_removed_from_clean_but_kept_in_text():
    chunks = split_text(DOC, "test.md", max_chars=400)
    markup = [":label:`sec_sub`", "![inline image](figs/x.png)", ":numref:`fig_y`", ":label:`fig_alone`",
              "![diagram](figs/d.png)"]
    for m in markup:
        holders = [c for c in chunks if m in c.text]
        assert len(holders) == 1, m
        assert m not in holders[0].clean
    sub = next(c for c in chunks if "sub text" in c.text)
    assert "sub text" in sub.clean and "for more." in sub.clean
    assert "label" not in sub.clean and "figs/" not in sub.clean
    link = next(c for c in chunks if "[link](http://example.com/page)" in c.text)
    assert "A paragraph with a link kept" in link.clean and "http" not in link.clean


def test_pure_markup_paragraph_makes_no_chunk_of_its_own():
    text = "# T\n\n:label:`fig_alone`\n![diagram](figs/d.png)\n\n## U\n\nreal words here.\n"
    chunks = split_text(text, "m.md")
    assert [c.text for c in chunks] == ["real words here."]


def test_embed_text_carries_the_heading_path():
    chunks = split_text(DOC, "test.md")
    c = next(c for c in chunks if "second example text." in c.text)
    assert c.heading == ["第一章", "示例"]
    assert c.embed_text.startswith("第一章 > 示例\n")
    assert c.embed_text.endswith(c.clean)


@pytest.mark.parametrize("role, shown", [
    (":cite:`Bishop.1995`", "(Bishop 1995)"),
    (":cite:`Glorot.Bengio.2010`", "(Glorot, Bengio 2010)"),
    (":citet:`Mikolov.Sutskever.Chen.ea.2013,Sennrich.Haddow.Birch.2015`",
     "(Mikolov, Sutskever, Chen 2013; Sennrich, Haddow, Birch 2015)"),
    (":cite:`vaswani2017attention`", "(vaswani2017attention)"),
])
def test_citation_roles_become_their_authors_in_what_is_embedded(role, shown):
    # the citation key names who showed it: searchable ("what did Bishop show?"), the markup is not
    text = f"# T\n\n具有输入噪声的训练等价于Tikhonov正则化 {role}。\n"
    (chunk,) = split_text(text, "c.md")
    assert role in chunk.text  # the verbatim text keeps the markup, for quotes
    assert chunk.clean == f"具有输入噪声的训练等价于Tikhonov正则化 {shown}。"
    assert ":cite" not in chunk.embed_text and shown in chunk.embed_text
