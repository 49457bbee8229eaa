"""Bad input: each case is one clear line, nothing is lost, no traceback.

Folder-level cases (binary file named .md, GBK and UTF-16 notes, an empty note, a 50 MB
note, a symlink loop) go through one real `assistant ingest`; question, index and disk
cases each have their own test. The full disk is simulated here (``os.fsync`` raising
ENOSPC while the snapshot is written); tests/test_hostile.py fills a real tmpfs (as root).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest

from _durability import assert_one_line_error, assistant, release_chroma, write_note
from conftest import make_settings, read_lines

GBK_TEXT = "批归一化把每层输入规范到零均值单位方差，缓解内部协变量偏移。"
UTF16_TEXT = "梯度裁剪在梯度范数超过阈值时按比例缩小梯度，防止梯度爆炸。"
PLAIN_TEXT = "Label smoothing replaces one-hot targets with a mixture of the target and a uniform distribution."


def _lines(r) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    notes = root / "notes"
    write_note(notes / "good.md", f"# Regularisation\n\n{PLAIN_TEXT}\n")
    write_note(notes / "legacy-gbk.txt", f"{GBK_TEXT}\n", encoding="gbk")
    write_note(notes / "windows-utf16.txt", f"{UTF16_TEXT}\n", encoding="utf-16")  # with BOM
    write_note(notes / "empty.md", "")
    (notes / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64)
    (notes / "sub").mkdir()
    os.symlink("..", notes / "sub" / "loop")  # notes/sub/loop -> notes: a cycle
    big = notes / "huge.md"
    line = ("大模型把很长的笔记一次性塞进上下文并不现实，需要先切分。" * 4 + "\n").encode("utf-8")
    with open(big, "wb") as f:
        for _ in range(50 * 2**20 // len(line) + 1):
            f.write(line)
    assert big.stat().st_size >= 50 * 2**20
    data = root / "data"
    t = time.monotonic()
    r = assistant(["ingest", str(notes)], data, timeout=300)
    seconds = time.monotonic() - t
    return notes, data, r, seconds


def test_folder_of_bad_files_ingests_with_one_line_each(bad_folder):
    notes, data, r, seconds = bad_folder
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr + r.stdout
    warnings = sorted(ln for ln in _lines(r) if ln.startswith("warning:"))
    # exactly one warning line per bad file, naming it and saying why
    assert len(warnings) == 2, warnings
    huge, binary = warnings  # sorted: "skipped huge.md" < "skipped image.md"
    assert "image.md" in binary and "binary" in binary
    assert "huge.md" in huge and "50.0 MB is over the 10.0 MB limit" in huge and "max_note_mb" in huge
    assert seconds < 120, f"a 50 MB note made the ingest take {seconds:.0f} s"
    summary = r.stdout.strip().splitlines()[-1]
    assert "unreadable" in summary and "\n" not in summary


def test_bad_folder_nothing_lost(bad_folder):
    """The good, GBK and UTF-16 notes are all found, at their lines; the empty note is known;
    the symlink loop did not index anything twice."""
    notes, data, r, _ = bad_folder
    from ingest.index import Manifest, index_dir_for, load_snapshot_chunks

    idx = index_dir_for(data, notes)
    m = Manifest.load(idx)
    assert sorted(m.files) == ["empty.md", "good.md", "legacy-gbk.txt", "windows-utf16.txt"]
    assert m.files["empty.md"]["chunks"] == []
    assert m.files["legacy-gbk.txt"]["encoding"] == "gb18030" and m.files["windows-utf16.txt"]["encoding"] == "utf-16"
    chunks = load_snapshot_chunks(idx, m.snapshot)
    assert len({c.id for c in chunks}) == len(chunks) == 3
    for query, file, text in ((GBK_TEXT[:12], "legacy-gbk.txt", GBK_TEXT), (UTF16_TEXT[:12], "windows-utf16.txt", UTF16_TEXT),
                              ("label smoothing uniform", "good.md", PLAIN_TEXT)):
        s = assistant(["search", query, "--json"], data)
        assert s.returncode == 0, s.stderr
        top = json.loads(s.stdout)[0]
        assert top["file"] == file and top["text"] == text
        assert read_lines(notes / file)[top["line_start"] - 1] == text
    # a re-run of the same folder is unchanged and says the same, once
    again = assistant(["ingest", str(notes), "--json"], data)
    s = json.loads(again.stdout)
    assert s["unchanged"] == 4 and s["chunks_embedded"] == 0 and len(s["warnings"]) == 2


def test_note_size_limit_is_configurable(tmp_path, embedder):
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    write_note(notes / "a.md", f"# A\n\n{PLAIN_TEXT}\n")
    write_note(notes / "b.md", "# B\n\n" + "x" * 3000 + "\n")
    s = make_settings(tmp_path / "data", max_note_mb=0.002)  # ~2 KB
    summary = run_ingest(s, notes, embedder=embedder)
    assert summary.files == 1 and summary.unreadable == 1
    assert len(summary.warnings) == 1 and "b.md" in summary.warnings[0] and "2.9 KB is over the 2.0 KB limit" in summary.warnings[0]


def test_questions_that_are_empty_or_too_long_or_before_any_ingest(tmp_path, bad_folder):
    notes, data, _, _ = bad_folder
    for q in ("", "   \n  "):
        assert_one_line_error(assistant(["ask", q], data), "question is empty")
        assert_one_line_error(assistant(["search", q], data), "question is empty")
    long_q = "为什么" * 3334  # 10,002 characters
    assert_one_line_error(assistant(["ask", long_q, "--json"], data), "characters long")
    assert_one_line_error(assistant(["search", long_q], data), "characters long")

    empty = tmp_path / "never-ingested"
    for args in (["ask", "MAE 的掩码率是多少？"], ["search", "MAE"], ["ask", "MAE?", "--json"]):
        assert_one_line_error(assistant(args, empty), "assistant ingest")
    st = assistant(["status", "--json"], empty)
    assert st.returncode == 0 and "assistant ingest" in json.loads(st.stdout)["index"]["error"]


@pytest.fixture
def small_index(tmp_path, embedder):
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    write_note(notes / "a.md", f"# Label smoothing\n\n{PLAIN_TEXT}\n")
    write_note(notes / "b.txt", f"{GBK_TEXT}\n")
    data = tmp_path / "data"
    s = make_settings(data)
    run_ingest(s, notes, embedder=embedder)
    release_chroma(data, notes)  # the assistant processes below are the only openers
    from ingest.index import index_dir_for

    return notes, data, s, index_dir_for(data, notes)


def _search_ok(data: Path, notes: Path, query: str = "label smoothing") -> list[dict]:
    """Search in this process (a reader of a local index never opens Chroma, so this is safe
    beside the `assistant` processes) and return the JSON sources."""
    from assistant.query import NotesAssistant, sources_json

    return sources_json(NotesAssistant(make_settings(data), notes).search(query))


def test_index_built_by_another_embedding_model(small_index):
    notes, data, _, idx = small_index
    m = json.loads((idx / "manifest.json").read_text())
    m["embed_model"] = "ollama:bge-m3"
    (idx / "manifest.json").write_text(json.dumps(m))
    for args in (["search", "label smoothing"], ["ask", "what is label smoothing?"], ["ingest", str(notes)]):
        assert_one_line_error(assistant(args, data), "ollama:bge-m3", "--rebuild")
    r = assistant(["ingest", "--rebuild", str(notes), "--json"], data)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _search_ok(data, notes)[0]["file"] == "a.md"


@pytest.mark.parametrize("victim", ["manifest.json", "chunks.json", "vectors.npy", "bm25", "bm25-chars"])
def test_corrupted_index_file(small_index, victim):
    """A truncated index file: search says to rebuild (or repairs itself), and a plain
    `assistant ingest` brings everything back without losing a chunk."""
    notes, data, _, idx = small_index
    want = _search_ok(data, notes)
    m = json.loads((idx / "manifest.json").read_text())
    snap = idx / "snapshots" / m["snapshot"]
    if victim == "manifest.json":
        p = idx / "manifest.json"
    elif victim.startswith("bm25"):
        p = sorted((snap / victim).iterdir(), key=lambda x: -x.stat().st_size)[0]
    else:
        p = snap / victim
    data_bytes = p.read_bytes()
    p.write_bytes(data_bytes[: len(data_bytes) // 2])

    r = assistant(["search", "label smoothing", "--json"], data)
    if victim.startswith("bm25"):  # rebuilt in memory from chunks.json: still answers, the same
        assert r.returncode == 0 and json.loads(r.stdout) == want, r.stderr[-2000:]
    else:
        assert_one_line_error(r, "assistant ingest --rebuild")
    ing = assistant(["ingest", str(notes), "--json"], data)
    assert ing.returncode == 0 and "Traceback" not in ing.stderr, ing.stderr[-2000:]
    assert json.loads(ing.stdout)["chunks_embedded"] == 0  # the vectors were still in Chroma
    assert _search_ok(data, notes) == want


def test_notes_folder_vanishing_mid_ingest(small_index, tmp_path):
    from assistant.errors import NotesFolderError
    from assistant.query import NotesAssistant
    from assistant.indexing import ingest_notes as run_ingest

    notes, data, s, idx = small_index
    before = (idx / "manifest.json").read_bytes()
    want = [p.chunk.id for p in NotesAssistant(s, notes).search("label smoothing")]
    write_note(notes / "c.md", "# New\n\nA note added just before the folder goes away.\n")
    away = tmp_path / "moved-away"

    class VanishWhileReading:  # the folder disappears after the first note is read
        def stage(self, name, total):
            pass

        def advance(self, n=1):
            if notes.exists():
                notes.rename(away)

        def warn(self, message):
            pass

    def vanish_at(stage):
        def hook(st):
            if st == stage and notes.exists():
                notes.rename(away)
        return hook

    # mid-embedding first: the later runs find c.md's vector already in Chroma and embed nothing
    for kw in ({"_hook": vanish_at("embedded-batch")}, {"_hook": vanish_at("before-embed")},
               {"progress": VanishWhileReading()}):
        with pytest.raises(NotesFolderError) as exc:
            run_ingest(s, notes, **kw)
        msg = str(exc.value)
        assert "\n" not in msg and "vanished" in msg and str(notes) in msg
        assert (idx / "manifest.json").read_bytes() == before, "the old index was replaced"
        assert [p.chunk.id for p in NotesAssistant(s, notes).search("label smoothing")] == want
        away.rename(notes)
    release_chroma(data, notes)
    r = assistant(["ingest", str(tmp_path / "no-such-folder")], data)
    assert_one_line_error(r, "does not exist")


@pytest.mark.parametrize("when", ["chunks.json", "manifest"])
def test_full_disk_while_writing_the_index(small_index, monkeypatch, when):
    """ENOSPC from fsync (simulated) while the snapshot or the manifest is written: one line
    through the real CLI code, no half-written snapshot left, the old index still answers."""
    from typer.testing import CliRunner

    import ingest.index
    from assistant.cli import app
    from assistant.query import NotesAssistant

    notes, data, s, idx = small_index
    before = (idx / "manifest.json").read_bytes()
    snaps_before = sorted(p.name for p in (idx / "snapshots").iterdir())
    want = [p.chunk.id for p in NotesAssistant(s, notes).search("label smoothing")]
    write_note(notes / "c.md", "# New\n\nWeight decay adds a penalty on the squared weights to the loss.\n")

    calls = {"n": 0}
    real_fsync = os.fsync
    fail_at = 1 if when == "chunks.json" else 3  # chunks.json, vectors.npy, then the manifest

    def full_disk_fsync(fd):
        calls["n"] += 1
        if calls["n"] >= fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(ingest.index.os, "fsync", full_disk_fsync)
    result = CliRunner().invoke(app, ["ingest", str(notes), "--json", "--data-dir", str(data)])
    monkeypatch.setattr(ingest.index.os, "fsync", real_fsync)
    assert calls["n"] >= fail_at, "the simulated fault was never hit"
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write the index") and "No space left" in lines[0]
    assert "free some disk space" in lines[0] and "previous index is unchanged" in lines[0]
    assert (idx / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (idx / "snapshots").iterdir()) == snaps_before
    assert [p.chunk.id for p in NotesAssistant(s, notes).search("label smoothing")] == want
    # space again: the next ingest takes the new note in
    from assistant.indexing import ingest_notes as run_ingest

    assert run_ingest(s, notes).added == 1
