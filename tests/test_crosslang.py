"""Questions in the other language than the notes: CC-CEDICT lookups of their words, real
ingest and real hybrid search over notes written in one language."""

from __future__ import annotations

import pytest

from assistant.crosslang import Dictionary

LINES = """# CC-CEDICT
# a comment line
梯度 梯度 [ti1 du4] /gradient/
通道 通道 [Tong1 dao4] /Tongdao Dong autonomous county in Huaihua 懷化|怀化[Huai2 hua4], Hunan/
通道 通道 [tong1 dao4] /(communications) channel/thoroughfare/passage/
裁剪 裁剪 [cai2 jian3] /to cut out/
個 个 [ge4] /CL:個|个[ge4]/individual/this/that/size/
""".splitlines()


def test_every_entry_of_a_word_is_kept_senses_in_order_and_cleaned():
    d = Dictionary.from_lines(LINES)
    assert d.zh_en["梯度"] == ["gradient"]
    # both entries of 通道, the common word first and the county (a name: capitalised pinyin)
    # after it, though the file lists the county first; brackets and "to " are dropped
    assert d.zh_en["通道"][:3] == ["channel", "thoroughfare", "passage"]
    assert d.zh_en["通道"][3].startswith("Tongdao")
    assert d.zh_en["裁剪"] == ["cut out"]
    assert d.zh_en["个"] == ["individual", "this", "that", "size"]  # the classifier note is no sense
    # English to Chinese: words of two characters or more whose sense is exactly the word
    assert d.en_zh["gradient"] == ["梯度"] and "channel" in d.en_zh and "individual" not in d.en_zh


def test_translation_follows_the_notes_language():
    d = Dictionary.from_lines(LINES)
    assert d.translate("梯度裁剪是做什么的？", "en") == "gradient cut out"
    assert d.translate("Why clip the gradient of each channel?", "zh").split(" ") == ["梯度", "通道"]
    assert d.translate("这个问题没有词典里的词", "en") == ""


def test_the_packaged_dictionary_loads_from_the_installed_package():
    d = Dictionary.packaged()
    assert len(d.zh_en) > 100_000
    assert "gradient" in d.translate("梯度下降为什么要用小批量？", "en")


ENGLISH_NOTES = {
    "optim.md": "# Optimization\n\nGradient clipping rescales the gradient whenever its norm exceeds a threshold,\n"
                "which keeps one bad minibatch from derailing training.\n",
    "conv.md": "# Convolutions\n\nA convolution slides a small kernel over the image and sums the products.\n",
    "data.md": "# Data\n\nWe shuffle the examples every epoch so that batches differ between passes.\n",
    "text.md": "# Text\n\nA vocabulary maps each token to an integer index, with a reserved unknown token.\n",
}


@pytest.fixture(scope="module")
def english_index(tmp_path_factory, embedder):
    from conftest import make_settings
    from ingest.pipeline import run_ingest

    notes = tmp_path_factory.mktemp("en-notes")
    for name, text in ENGLISH_NOTES.items():
        (notes / name).write_text(text, encoding="utf-8")
    data = tmp_path_factory.mktemp("en-data")
    run_ingest(make_settings(data), notes, embedder=embedder)
    return notes, data


@pytest.mark.parametrize("translate", [True, False])
def test_a_chinese_question_over_english_notes_is_searched_in_english_too(english_index, embedder, translate):
    from assistant.query import NotesAssistant
    from conftest import make_settings

    notes, data = english_index
    qa = NotesAssistant(make_settings(data, translate_questions=translate), notes, embedder=embedder)
    hits = qa.search("梯度为什么需要裁剪？", top_k=4)
    words = {h.chunk.file: h.keyword for h in hits}
    if translate:
        assert hits[0].chunk.file == "optim.md"
        assert words["optim.md"]  # the keyword side found it through "gradient"
    else:
        assert not any(words.values())  # no Chinese word stands in English notes
