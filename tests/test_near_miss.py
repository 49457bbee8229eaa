"""A question about a name the notes never write is refused, whatever else it shares with
them; names the notes do write (in any case or punctuation) never cause a refusal.

Real ingest of the sample notes, real retrieval and the real answer path (extractive: no
model runs)."""

from __future__ import annotations

import re

import pytest

from assistant.guards import question_glosses, question_names, unknown_names


def test_names_are_what_a_student_would_not_paraphrase():
    assert question_names("AlexNet 用了几块 GPU？在 WikiText-103 上呢？") == ["AlexNet", "WikiText-103"]
    assert question_names("What did YOLOv5 change compared with YOLOv3, and float16?") == ["YOLOv5", "YOLOv3",
                                                                                           "float16"]
    # short acronyms (also as plurals), ordinary words, English suffixes and a question in
    # capitals are not names: notes may spell them out, and nobody writes "CNN-based" in notes
    assert question_names("What does a CNN learn about the attention weights?") == []
    assert question_names("What are RNNs good for, and how do CNN-based detectors work?") == []
    assert question_names("WHAT IS DROPOUT") == []
    assert question_names("Is BERT-style pretraining used?") == ["BERT"]
    # in a Chinese question every English word of four letters or more is a term the user copied
    assert question_names("多卡训练时梯度怎么用 ring all-reduce 同步？CNN 呢？") == ["ring", "all-reduce"]
    assert question_names("What does ring all-reduce do?") == []


def test_an_english_word_of_a_chinese_question_is_known_when_the_notes_write_it(examples_index):
    snap = examples_index.qa.snapshot
    prose = "\n".join(c.text for c in snap.chunks if c.kind != "code")
    words = sorted({w for w in re.findall(r"[a-z]{5,}", prose)})
    assert words, "the sample notes write English words"
    for w in words[:20]:
        assert unknown_names(f"{w} 在笔记里是怎么用的？", snap) == [], w
    assert unknown_names("学生网络和 quoxal 网络的参数怎么同步？", snap) == ["quoxal"]


def test_a_name_written_anywhere_in_the_notes_counts_as_known(examples_index):
    snap = examples_index.qa.snapshot
    text = "\n".join(c.text for c in snap.chunks)
    written = [m.group(0) for m in re.finditer(r"[A-Z][a-z]+[A-Z][A-Za-z]+", text)]
    assert written, "the sample notes write CamelCase names"
    for name in written:
        # the same name in capitals, or with a hyphen inside, is still the notes' name
        assert unknown_names(f"{name.upper()} 是什么？", snap) == []
        assert unknown_names(f"What is {name[:2]}-{name[2:]}?", snap) == []
    assert unknown_names("Transformer 和 ZorbNet-7 的注意力有什么不同？", snap) == ["ZorbNet-7"]
    # a plural counts as written when its singular is
    assert unknown_names(f"How do {written[0]}s differ?", snap) == []


def test_a_glossed_term_is_known_when_the_notes_write_the_term_or_its_gloss(examples_index):
    snap = examples_index.qa.snapshot
    prose = "\n".join(c.text for c in snap.chunks if c.kind != "code")
    han = re.findall(r"[\u4e00-\u9fff]{4}", prose)
    word = max(re.findall(r"[a-z]{6,}", prose.lower()), key=len)
    assert han and word
    assert question_glosses(f"{han[0]}（zorbic gating）是怎么做的？") == [(han[0], "zorbic gating")]
    # the notes write the Chinese term: known, whatever the gloss
    assert unknown_names(f"{han[0]}（zorbic gating）是怎么做的？", snap) == []
    # the notes write the gloss: known, whatever the term
    assert unknown_names(f"佐比门控（{word}）是怎么做的？", snap) == []
    # neither: a near miss, named by its gloss
    assert unknown_names("佐比门控（zorbic gating）是怎么做的？", snap) == ["zorbic gating"]
    assert unknown_names("How does a zorbic (quoxal) gate work?", snap) == ["quoxal"]
    # brackets that hold no gloss are not names
    assert question_glosses("softmax(x) 的值为什么在 0 和 1 之间？") == []
    assert question_glosses("What is the loss (see eq. 3)?") == []


def test_the_guard_can_be_turned_off(examples_index):
    from assistant.query import NotesAssistant

    s = examples_index.settings.model_copy(update={"refuse_unknown_names": False})
    qa = NotesAssistant(s, examples_index.notes_dir)
    a = qa.ask("Transformer 的多头注意力和 ZorbNet-7 的相比，头数是多少？")
    assert "ZorbNet-7" not in a.answer


@pytest.mark.parametrize("question,lang_word", [
    ("Transformer 的多头注意力和 ZorbNet-7 的相比，头数是多少？", "笔记里没有提到"),
    ("How many attention heads does ZorbNet-7 use in its Transformer?", "never mention"),
])
def test_a_near_miss_on_an_unknown_name_is_refused_in_the_question_language(examples_index, question, lang_word):
    a = examples_index.qa.ask(question)
    assert a.refused, a.answer
    assert lang_word in a.answer and "ZorbNet-7" in a.answer
    assert a.citations == []


def test_the_same_question_without_the_unknown_name_is_answered(examples_index):
    a = examples_index.qa.ask("Transformer 的缩放点积注意力为什么要除以根号 d_k？")
    assert not a.refused, a.answer
    assert a.citations
