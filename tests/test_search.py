"""Retrieval quality over ../shared/notes: the right file in the top 5 for student questions.

The expected file of each question was found by reading the notes; the questions are
paraphrased the way a student would ask, not copied from the note text. Several passages
stand verbatim in more than one file, so a hit counts when the expected file is among the
locations of a result (a collapsed passage lists every file it stands in).
"""

from __future__ import annotations

import pytest

from conftest import assert_at_lines, read_lines

pytestmark = pytest.mark.shared

# (question, expected file prefix)  -- file names are NNN_<hash>.txt; the prefix is unique
QUESTIONS = [
    # Chinese
    ("MAE 预训练的时候会把多大比例的图像块遮住？", "001"),
    ("CLIP 是用多少网上爬来的图片和文字配对训练出来的？", "000"),
    ("BLIP 是在哪个会议上发表的，想解决视觉语言预训练的什么问题？", "000"),
    ("不用自回归从左往右生成，扩散模型能做大语言模型吗？", "001"),
    ("ThunderNet 这个检测网络输入图片多大？", "002"),
    ("allreduce 能拆成哪两个更基本的集合通信操作？", "002"),
    ("进程和线程的区别是什么？", "002"),
    ("Stable Diffusion 为什么要先把图像压缩到潜空间再做扩散？", "003"),
    ("注意力里去掉 softmax 以后计算复杂度能变成线性吗？", "003"),
    ("YOLO 是怎么把一张图划分成格子来预测物体的？", "004"),
    ("EM 算法里 E 步和 M 步分别在做什么？", "004"),
    ("L1 正则化等价于给权重加了什么先验分布？", "004"),
    ("用 Hough 变换检测直线的投票思想是什么？", "000"),
    # English
    ("What fraction of the image patches does MAE mask out?", "001"),
    ("How many image-text pairs was CLIP trained on?", "000"),
    ("What does an anchor-free detector predict instead of anchor boxes?", "004"),
    ("How does DETR use transformers for object detection compared with Faster R-CNN?", "003"),
    ("How does the Word2Vec model represent the meaning of words?", "004"),
    ("What is the sliding window maximum problem?", "003"),
]


def _files_of(passage) -> list[str]:
    return [loc.file for loc in passage.locations]


@pytest.fixture(scope="module")
def results(shared_index):
    files = sorted(p.name for p in shared_index.notes_dir.glob("*.txt"))
    out = {}
    for q, prefix in QUESTIONS:
        match = [f for f in files if f.startswith(prefix)]
        assert len(match) == 1, (prefix, files)
        out[q] = (match[0], shared_index.qa.search(q, top_k=5))
    return out


def test_enough_questions():
    english = [q for q, _ in QUESTIONS if q.isascii()]
    assert len(QUESTIONS) >= 12 and len(english) >= 4
    assert len({q for q, _ in QUESTIONS}) == len(QUESTIONS)


@pytest.mark.parametrize("question", [q for q, _ in QUESTIONS])
def test_expected_file_in_top5(results, question):
    expected, hits = results[question]
    assert len(hits) <= 5
    ranked = [_files_of(p) for p in hits]
    assert any(expected in files for files in ranked), f"{expected} not in top 5: {ranked}"


def test_hit_rates(results, capsys):
    n = len(results)
    at1 = sum(1 for exp, hits in results.values() if hits and exp in _files_of(hits[0]))
    at5 = sum(1 for exp, hits in results.values() if any(exp in _files_of(p) for p in hits[:5]))
    with capsys.disabled():
        print(f"\nsearch over ../shared/notes: {n} questions, hit@1 {at1 / n:.2f} ({at1}/{n}), "
              f"hit@5 {at5 / n:.2f} ({at5}/{n})")
    assert at5 == n


def test_results_point_at_real_lines(results, shared_index):
    lines = {p.name: read_lines(p) for p in shared_index.notes_dir.glob("*.txt")}
    for q, (_, hits) in results.items():
        assert hits, q
        scores = [p.score for p in hits]
        assert scores == sorted(scores, reverse=True), q
        for p in hits:
            assert_at_lines(lines[p.file], p.text, p.chunk.line_start, p.chunk.line_end, q)
            # every location is one of the passage's chunks, and its text stands at those lines
            chunks = {(c.file, c.line_start, c.line_end): c for c in [p.chunk, *p.others]}
            assert len(p.locations) == len(chunks)
            for loc in p.locations:
                c = chunks[(loc.file, loc.line_start, loc.line_end)]
                assert_at_lines(lines[loc.file], c.text, loc.line_start, loc.line_end, q)
        texts = [" ".join(p.text.split()) for p in hits]
        assert len(texts) == len(set(texts)), f"a passage appears twice: {q}"


def test_repeated_passage_lists_every_file(shared_index):
    # the "related work on self-supervised learning" excerpt stands in three files
    lines = {p.name: read_lines(p) for p in sorted(shared_index.notes_dir.glob("*.txt"))}
    by_line: dict[str, list[str]] = {}
    for f, ls in lines.items():
        for ln in ls:
            if len(ln) > 200:
                by_line.setdefault(ln, []).append(f)
    line, files = max(by_line.items(), key=lambda kv: len(kv[1]))
    assert len(files) >= 3
    hits = shared_index.qa.search("自监督学习是怎么自动给数据打标签的？属于无监督学习吗？", top_k=5)
    holders = [p for p in hits if p.text in line]
    assert holders, [p.text[:40] for p in hits]
    assert sorted(set(_files_of(holders[0]))) == sorted(files)
