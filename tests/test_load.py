"""ingest/load.py: which files are notes, and how their bytes become text."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest

from assistant.errors import NotesFolderError
from ingest.load import DecodeError, decode, read_note, walk

# Chinese, English, a 4-byte GB18030 character (U+1D45D, from the seed notes' formulas),
# full-width punctuation and CRLF line ends.
SAMPLE = "自监督学习 (Self-Supervised Learning)：掩码率 75%。\r\n第二行 𝑝_1=𝑝_2，Adam β1=0.9！\r\nlast line"
EXPECTED = SAMPLE.replace("\r\n", "\n")

ENCODINGS = {
    "utf8.md": (SAMPLE.encode("utf-8"), "utf-8"),
    "utf8-bom.md": (codecs.BOM_UTF8 + SAMPLE.encode("utf-8"), "utf-8-sig"),
    "gb18030.txt": (SAMPLE.encode("gb18030"), "gb18030"),
    "utf16le-bom.md": (codecs.BOM_UTF16_LE + SAMPLE.encode("utf-16-le"), "utf-16"),
    "utf16be-bom.markdown": (codecs.BOM_UTF16_BE + SAMPLE.encode("utf-16-be"), "utf-16"),
}
GBK_TEXT = "批量归一化（Batch Normalization）对每个小批量做标准化；梯度消失？\n第二行"


def _note(folder: Path, rel: str):
    found = walk(folder)
    match = [n for n in found.notes if n.rel == rel]
    assert len(match) == 1, (rel, [n.rel for n in found.notes])
    return match[0]


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_every_supported_encoding_decodes_exactly(tmp_path, name):
    data, enc = ENCODINGS[name]
    (tmp_path / name).write_bytes(data)
    text, got_enc, sha = read_note(_note(tmp_path, name))
    assert text == EXPECTED
    assert got_enc == enc
    assert len(sha) == 64
    assert text.split("\n")[1] == EXPECTED.split("\n")[1]  # CRLF folded: line numbers as editors count


def test_gbk_file_decodes(tmp_path):
    data = GBK_TEXT.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # the test is only meaningful if the bytes are not UTF-8
    (tmp_path / "gbk.txt").write_bytes(data)
    text, enc, _ = read_note(_note(tmp_path, "gbk.txt"))
    assert text == GBK_TEXT
    assert enc == "gb18030"


def test_sample_gbk_note_decodes(examples_notes):
    gbk = [p for p in examples_notes.rglob("*gbk*.txt")]
    assert gbk, "examples/notes should hold a GBK file"
    raw = gbk[0].read_bytes()
    text, enc = decode(raw)
    assert enc == "gb18030"
    assert text == raw.decode("gbk")
    assert "归一化" in text


def test_binary_file_named_md_is_refused_by_decode():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    with pytest.raises(DecodeError, match="binary"):
        decode(png)


@pytest.mark.parametrize("data", [
    b"abc \x80\x80 def \xff",  # neither UTF-8 nor GB18030, and no NUL byte
    codecs.BOM_UTF8 + b"ok \xff\xfe not utf-8",  # a UTF-8 BOM followed by bytes that are not UTF-8
    codecs.BOM_UTF16_LE + b"\x00\xd8",  # an unpaired surrogate
], ids=["undecodable", "bad-after-utf8-bom", "bad-utf16"])
def test_undecodable_bytes_raise_decode_error(data):
    with pytest.raises(DecodeError):
        decode(data)


def test_binary_and_undecodable_notes_are_skipped_with_their_names(tmp_path, settings, embedder):
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "good.md").write_text("# Title\n\nA readable note about dropout.\n", encoding="utf-8")
    (notes / "sub" / "picture.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + os.urandom(512))
    (notes / "broken-bom.txt").write_bytes(codecs.BOM_UTF8 + b"text \xff\xfe\xfd")
    summary = run_ingest(settings, notes, embedder=embedder)
    assert summary.files == 1
    assert summary.unreadable == 2
    assert summary.chunks == 1
    joined = "\n".join(summary.warnings)
    assert "sub/picture.md" in joined and "binary" in joined
    assert "broken-bom.txt" in joined
    assert all("\n" not in w for w in summary.warnings)


def test_hidden_folders_and_files_are_not_entered(tmp_path):
    for rel in [".obsidian/workspace.md", ".git/HEAD.txt", "a/.trash/old.md", ".hidden.md", "a/visible.md",
                "top.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("text", encoding="utf-8")
    found = walk(tmp_path)
    assert [n.rel for n in found.notes] == ["a/visible.md", "top.txt"]
    assert found.skipped == []  # hidden things are ignored, not counted as skipped


def test_sample_notes_skip_obsidian_and_csv(examples_notes):
    found = walk(examples_notes)
    rels = [n.rel for n in found.notes]
    assert not any(r.startswith(".") or "/." in r for r in rels)
    on_disk = sorted(p.relative_to(examples_notes).as_posix() for p in examples_notes.rglob("*")
                     if p.is_file() and p.suffix.lower() in {".md", ".markdown", ".txt"}
                     and not any(part.startswith(".") for part in p.relative_to(examples_notes).parts))
    assert rels == on_disk
    other = sorted(p.relative_to(examples_notes).as_posix() for p in examples_notes.rglob("*")
                   if p.is_file() and p.suffix.lower() not in {".md", ".markdown", ".txt"}
                   and not any(part.startswith(".") for part in p.relative_to(examples_notes).parts))
    assert sorted(s.rel for s in found.skipped) == other
    assert other, "the sample notes should include a non-note file"


def test_symlink_loop_is_survived(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "note.md").write_text("one", encoding="utf-8")
    (tmp_path / "a" / "b" / "deep.txt").write_text("two", encoding="utf-8")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b" / "back-to-a")  # a/b/back-to-a -> a: a cycle
    os.symlink("..", tmp_path / "a" / "up")  # a/up -> the root: another cycle
    found = walk(tmp_path)
    rels = [n.rel for n in found.notes]
    assert sorted({Path(n.path).resolve() for n in found.notes}) == sorted(
        {(tmp_path / "a" / "note.md").resolve(), (tmp_path / "a" / "b" / "deep.txt").resolve()})
    assert len(rels) == len(set(rels))
    assert len(rels) == 2  # every real file once, whatever path reached it first


def test_symlinked_folder_outside_the_root_is_skipped_with_a_warning(tmp_path):
    """Issue 16: a folder linked from outside the notes folder is not part of it (the web
    chat's viewer refuses it too); one warning names it. See tests/test_hostile.py."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "linked.md").write_text("linked note", encoding="utf-8")
    root = tmp_path / "notes"
    root.mkdir()
    os.symlink(outside, root / "shortcut")
    found = walk(root)
    assert found.notes == []
    assert [s.rel for s in found.outside] == ["shortcut/"]
    assert len(found.warnings()) == 1 and "outside the notes folder" in found.warnings()[0]


def test_dangling_symlink_is_reported_not_raised(tmp_path):
    (tmp_path / "ok.md").write_text("ok", encoding="utf-8")
    os.symlink(tmp_path / "missing.md", tmp_path / "gone.md")
    found = walk(tmp_path)
    assert [n.rel for n in found.notes] == ["ok.md"]
    assert [s.rel for s in found.unreadable] == ["gone.md"]


def test_non_note_suffixes_are_counted_as_skipped(tmp_path):
    names = ["a.md", "b.markdown", "c.txt", "D.MD", "e.csv", "f.pdf", "g.json", "h.md.bak", "noext"]
    for n in names:
        (tmp_path / n).write_text("x", encoding="utf-8")
    found = walk(tmp_path)
    notes = sorted(n for n in names if Path(n).suffix.lower() in {".md", ".markdown", ".txt"})
    assert sorted(n.rel for n in found.notes) == notes
    assert sorted(s.rel for s in found.skipped) == sorted(set(names) - set(notes))
    assert all(s.reason for s in found.skipped)


def test_empty_folder_is_a_clear_error(tmp_path, settings):
    from ingest.pipeline import run_ingest

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotesFolderError) as exc:
        run_ingest(settings, empty)
    msg = str(exc.value)
    assert "\n" not in msg and "no notes" in msg and str(empty.resolve()) in msg


def test_folder_without_notes_counts_what_it_skipped(tmp_path, settings):
    from ingest.pipeline import run_ingest

    (tmp_path / "n").mkdir()
    for name in ["a.csv", "b.png"]:
        (tmp_path / "n" / name).write_bytes(b"1,2\n")
    with pytest.raises(NotesFolderError, match="2 other files skipped"):
        run_ingest(settings, tmp_path / "n")


def test_missing_folder_and_file_instead_of_folder(tmp_path, settings):
    from ingest.pipeline import run_ingest

    with pytest.raises(NotesFolderError, match="does not exist"):
        run_ingest(settings, tmp_path / "nope")
    f = tmp_path / "file.md"
    f.write_text("x", encoding="utf-8")
    with pytest.raises(NotesFolderError, match="not a folder"):
        run_ingest(settings, f)
