"""`assistant status --files`: each file with its chunk count, or skipped and why; the web chat's
Status panel shows the totals and the skipped files. Real ingests, the real console script."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import make_settings, run_cli


@pytest.fixture
def odd_folder(tmp_path, examples_notes):
    notes = tmp_path / "notes"
    shutil.copytree(examples_notes, notes)
    (notes / ".obsidian").mkdir(exist_ok=True)
    (notes / ".obsidian" / "workspace.md").write_text("# not a note\n", encoding="utf-8")
    (notes / ".draft.md").write_text("# hidden\n", encoding="utf-8")
    (notes / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (notes / "sub").mkdir()
    (notes / "sub" / "broken.txt").write_bytes(b"\xef\xbb\xbfok \xff\xfe then bad")  # UTF-8 BOM, then not UTF-8
    (notes / "huge.md").write_text("# big\n\n" + "word " * 250_000, encoding="utf-8")  # ~1.2 MB
    return notes


def test_status_files_lists_chunks_and_skip_reasons(odd_folder, tmp_path, embedder):
    from ingest.pipeline import run_ingest

    data = tmp_path / "data"
    summary = run_ingest(make_settings(data, max_note_mb=1.0), odd_folder, embedder=embedder)
    p = run_cli(["status", "--files", "--json"], data)
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    files = {f["file"]: f["chunks"] for f in rep["files"]}
    assert set(files) == {"glossary.txt", "optim/adam.md", "归一化-gbk.txt", "深度学习/transformer.md", "深度学习/正则化.md"}
    assert all(n >= 1 for n in files.values()) and sum(files.values()) == summary.chunks == rep["totals"]["chunks"]
    why = {s["file"]: s["skipped"] for s in rep["skipped"]}
    assert why["photo.md"] == "binary file"
    assert why["sub/broken.txt"].startswith("undecodable")
    assert why["huge.md"].startswith("too large")
    assert why[".draft.md"] == "hidden file" and why[".obsidian/"] == "hidden folder"
    assert ".obsidian/workspace.md" not in why  # a hidden folder is not entered
    assert why["image-list.csv"] == "not a note file (.csv)"
    assert rep["totals"] == {"indexed": 5, "chunks": summary.chunks, "skipped": 6,
                             "skipped_by_reason": {"binary file": 1, "undecodable": 1, "too large": 1,
                                                   "hidden file": 1, "hidden folder": 1, "not a note file": 1}}

    human = run_cli(["status", "--files"], data)
    assert human.returncode == 0 and "Traceback" not in human.stderr
    assert "5 files indexed" in human.stdout and "6 skipped" in human.stdout
    line = next(ln for ln in human.stdout.splitlines() if "huge.md" in ln)
    assert "skipped: too large" in line
    line = next(ln for ln in human.stdout.splitlines() if "optim/adam.md" in ln)
    assert line.rstrip().endswith(f"{files['optim/adam.md']} chunks")

    # an unchanged re-run keeps its fast path (no new snapshot) with skipped files recorded
    from ingest.index import Manifest, index_dir_for

    before = Manifest.load(index_dir_for(data, odd_folder)).snapshot
    same = run_ingest(make_settings(data, max_note_mb=1.0), odd_folder, embedder=embedder)
    assert same.unchanged == same.files == 5 and same.chunks_embedded == 0
    assert Manifest.load(index_dir_for(data, odd_folder)).snapshot == before
    # it still notices a new skipped file (and one gone), and says so in the manifest
    (odd_folder / "table.csv").write_text("a,b\n", encoding="utf-8")
    (odd_folder / "photo.md").unlink()
    again = run_ingest(make_settings(data, max_note_mb=1.0), odd_folder, embedder=embedder)
    assert again.chunks_embedded == 0
    rep = json.loads(run_cli(["status", "--files", "--json"], data).stdout)
    why = {s["file"]: s["skipped"] for s in rep["skipped"]}
    assert "table.csv" in why and "photo.md" not in why


def test_status_files_before_ingest_is_one_line(tmp_path):
    p = run_cli(["status", "--files"], tmp_path / "empty")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len([ln for ln in p.stderr.splitlines() if ln.strip()]) == 1 and "assistant ingest" in p.stderr


def test_web_status_panel_shows_totals_and_skipped(odd_folder, tmp_path, embedder):
    from ingest.pipeline import run_ingest

    s = make_settings(tmp_path / "data", max_note_mb=1.0, notes_dir=odd_folder, llm="embedded")
    run_ingest(s, odd_folder, embedder=embedder)
    from assistant.ui import ChatApp

    md = ChatApp(s).status_markdown()
    assert "5 indexed" in md and "6 skipped" in md, md
    for name, why in (("photo.md", "binary file"), ("huge.md", "too large"), ("sub/broken.txt", "undecodable")):
        line = next(ln for ln in md.splitlines() if name in ln)
        assert why in line, line
