"""Concurrency with real processes side by side.

- `assistant search` / `ask` while an `assistant ingest` runs answer from the old index or
  the new one, never a mix and never an error; a long-lived reader in this process (what
  the web UI is) searches all through an ingest and then sees the new index, vectors too.
- A second `assistant ingest` while one runs exits at once with one line (exit code 3);
  the first finishes and the index is exactly a clean one.
- Two `assistant ask` processes at once both answer.
- Local readers never open Chroma's PersistentClient (only the ingest holding the write
  lock does): measured with chromadb 1.5.9, a second process that opens the store while
  an ingest writes fails with "Error finding id", can segfault, and grew link_lists.bin to
  77 GB in one run. The test checks that the store's files are untouched by readers.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from _durability import MemoEmbedder, Proc, assert_index_equals_fresh, assert_one_line_error, assistant, \
    dump_index, fresh_index, release_chroma, write_note

QUESTION = "Dropout 的概率 p 一般取多少？"
SHORT = {"NOTES_ASSISTANT_MAX_ANSWER_TOKENS": "64"}  # answers long enough to check, short enough to be quick


def _v1(notes: Path) -> None:
    write_note(notes / "reg/dropout.md", "# Dropout\n\nDropout 在训练时以概率 p 把激活置零，p 通常取 0.5。\n")
    write_note(notes / "reg/early.md", "# 早停\n\n早停在验证集误差连续几轮不再下降时停止训练，并回到最好的权重。\n")
    write_note(notes / "opt/adam.md", "# Adam\n\nAdam 的默认学习率是 0.001，beta1 = 0.9，beta2 = 0.999。\n")


def _v2(notes: Path) -> None:
    write_note(notes / "reg/dropout.md", "# Dropout\n\nDropout 在训练时以概率 p 把激活置零，大模型里 p 常取 0.1。\n"
               "\n## 推理\n\n推理时不再丢弃，激活按 1-p 缩放（或训练时用 inverted dropout 放大）。\n")
    (notes / "reg/early.md").unlink()
    for i in range(6):
        write_note(notes / f"new/n{i}.md", f"# 正则化 {i}\n\n第 {i} 种正则化：权重衰减系数取 {i}e-4，配合 dropout 使用。\n")


def _locs(sources: list[dict]) -> set[tuple]:
    out = set()
    for s in sources:
        out.add((s["file"], s["line_start"], s["line_end"], s["text"]))
        for o in s.get("also_in", []):
            out.add((o["file"], o["line_start"], o["line_end"], s["text"]))
    return out


def _view(state: dict) -> set[tuple]:
    return {(r[1], r[2], r[3], r[4]) for r in state["snapshot"]}


def _which(found: set[tuple], old: set[tuple], new: set[tuple]) -> str:
    assert found, "no results"
    if found <= old and found <= new:
        return "either"
    if found <= old:
        return "old"
    if found <= new:
        return "new"
    raise AssertionError(f"a mix of old and new index: only-old {found - new}, only-new {found - old}")


def _chroma_files(data: Path, notes: Path) -> dict[str, tuple[int, int]]:
    from ingest.index import index_dir_for

    root = index_dir_for(data, notes) / "chroma"
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def folder(tmp_path, embedder):
    from conftest import make_settings
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    _v1(notes)
    data = tmp_path / "data"
    run_ingest(make_settings(data), notes, embedder=embedder)
    release_chroma(data, notes)  # from here on, only the `assistant` processes open Chroma
    old = dump_index(data, notes)
    return notes, data, old


def test_search_and_ask_during_an_ingest_see_old_or_new_never_a_mix(tmp_path, folder, embedder, capsys):
    from assistant.query import NotesAssistant
    from conftest import make_settings

    notes, data, old_state = folder
    old = _view(old_state)
    _v2(notes)
    new = _view(fresh_index(tmp_path, notes, MemoEmbedder(embedder), "v2"))
    assert old - new and new - old

    # a long-lived reader in this process, as the web UI is: searching all through the ingest
    qa = NotesAssistant(make_settings(data), notes)
    assert _which(_locs([_src(p) for p in qa.search(QUESTION)]), old, new) in ("old", "either")
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                seen.append(_which(_locs([_src(p) for p in qa.search(QUESTION)]), old, new))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
            time.sleep(0.2)

    t = threading.Thread(target=reader, daemon=True)
    ing = Proc(["ingest", str(notes), "--json"], data,
               pause_at="embedded-batch,before-manifest,after-manifest")
    t.start()
    stages = {}
    try:
        ing.wait_for("paused at embedded-batch")
        r = assistant(["search", QUESTION, "--json"], data)
        assert r.returncode == 0, r.stderr[-2000:]
        stages["embedded-batch/search"] = _which(_locs(json.loads(r.stdout)), old, new)
        ing.step()
        ing.wait_for("paused at before-manifest")
        r = assistant(["ask", QUESTION, "--json", "--llm", "embedded"], data, **SHORT)
        # 4: refused, which is right when the notes it would quote changed since the index was written
        assert r.returncode in (0, 4), r.stderr[-2000:]
        ans = json.loads(r.stdout)
        stages["before-manifest/ask"] = _which(_locs(ans["sources"]), old, new)
        assert ans["answer"].strip()
        ing.step()
        ing.wait_for("paused at after-manifest")
        r = assistant(["search", QUESTION, "--json"], data)
        assert r.returncode == 0, r.stderr[-2000:]
        stages["after-manifest/search"] = _which(_locs(json.loads(r.stdout)), old, new)
        rc, out, err = ing.finish()
        assert rc == 0, err[-2000:]
    finally:
        stop.set()
        t.join(timeout=60)
        ing.kill()
    assert not errors, repr(errors[0])
    assert stages["embedded-batch/search"] in ("old", "either")
    assert stages["before-manifest/ask"] in ("old", "either")
    assert stages["after-manifest/search"] in ("new", "either")

    # after the ingest the long-lived reader sees the new index, dense side included
    hits = qa.search("推理时激活怎么缩放")
    assert _which(_locs([_src(p) for p in hits]), old, new) in ("new", "either")
    top = hits[0]
    assert top.chunk.file == "reg/dropout.md" and "缩放" in top.chunk.text and top.similarity is not None
    with capsys.disabled():
        print(f"\nreader in this process: {len(seen)} searches during the ingest:",
              {k: seen.count(k) for k in ("old", "new", "either")}, "; CLI at pauses:", stages)


def _src(p) -> dict:
    from assistant.query import sources_json

    return sources_json([p])[0]


def test_a_local_reader_does_not_open_chroma(folder):
    """The store's files are byte-for-byte untouched by search and status (no second opener)."""
    notes, data, _ = folder
    before = _chroma_files(data, notes)
    assert before
    for args in (["search", QUESTION, "--json"], ["status", "--json"]):
        r = assistant(args, data)
        assert r.returncode == 0, r.stderr[-2000:]
    assert _chroma_files(data, notes) == before


def test_second_ingest_while_one_runs_exits_with_one_line(tmp_path, folder, embedder):
    notes, data, _ = folder
    _v2(notes)
    first = Proc(["ingest", str(notes), "--json"], data, pause_at="before-embed")
    try:
        first.wait_for("paused at before-embed")
        for extra in ([], ["--rebuild"]):
            t = time.monotonic()
            r = assistant(["ingest", str(notes), *extra], data, timeout=120)
            assert_one_line_error(r, "another ingest", "is running", code=3)
            assert time.monotonic() - t < 60, "the second ingest waited instead of exiting"
        rc, out, err = first.finish()
    finally:
        first.kill()
    assert rc == 0, err[-2000:]
    # nothing the refused runs did (not even --rebuild) harmed the index
    assert_index_equals_fresh(dump_index(data, notes), fresh_index(tmp_path, notes, MemoEmbedder(embedder), "v2"),
                              notes, "after a refused second ingest")


def test_two_ask_processes_at_once(folder):
    notes, data, _ = folder
    procs = [Proc(["ask", q, "--json", "--llm", "embedded"], data, **SHORT)
             for q in (QUESTION, "Adam 的默认学习率是多少？")]
    results = [p.finish(timeout=300) for p in procs]
    for (rc, out, err), want in zip(results, ("reg/dropout.md", "opt/adam.md")):
        assert rc == 0, err[-2000:]
        ans = json.loads(out)
        assert ans["answer"].strip() and not ans.get("error"), ans
        assert ans["sources"][0]["file"] == want


def test_search_during_a_rebuild_answers_from_the_old_index(folder):
    """`ingest --rebuild` re-embeds everything; until its manifest lands, readers keep the old index."""
    notes, data, old_state = folder
    old = _view(old_state)
    rb = Proc(["ingest", "--rebuild", str(notes), "--json"], data, pause_at="before-manifest")
    try:
        rb.wait_for("paused at before-manifest")
        r = assistant(["search", QUESTION, "--json"], data)
        assert r.returncode == 0, r.stderr[-2000:]
        assert _locs(json.loads(r.stdout)) <= old
        rc, out, err = rb.finish()
    finally:
        rb.kill()
    assert rc == 0, err[-2000:]
    s = json.loads(out)
    assert s["chunks_embedded"] == s["chunks"] == len(old)
    assert _view(dump_index(data, notes)) == old
