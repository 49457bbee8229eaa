"""ingest/pipeline.py + ingest/index.py: incremental ingest, Chroma and the keyword snapshot agree.

Every state is checked three ways: Chroma (``collection.count`` / ``get``), the keyword
snapshot (``chunks.json`` and the BM25 index), and a fresh ingest of the same folder
into an empty data dir, which is what the incremental result must equal.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from assistant.errors import IndexMismatchError
from conftest import make_settings, read_lines
from ingest.index import Manifest, chroma_client, collection_name, get_collection, index_dir_for, \
    load_snapshot_chunks
from ingest.pipeline import run_ingest


def index_state(settings, notes: Path) -> dict:
    """What the index of ``notes`` holds, read back from disk; checks its parts agree."""
    import bm25s

    idx = index_dir_for(settings.data_dir, notes)
    manifest = Manifest.load(idx)
    assert manifest is not None and manifest.snapshot
    snap = load_snapshot_chunks(idx, manifest.snapshot)
    snap_map = {c.id: (c.file, c.line_start, c.line_end, c.text) for c in snap}
    assert len(snap_map) == len(snap), "duplicate ids in chunks.json"

    col = get_collection(chroma_client(idx, settings.chroma_url), collection_name(idx, settings.chroma_url))
    got = col.get(include=["metadatas", "documents"])
    chroma_map = {i: (m["file"], m["line_start"], m["line_end"], d)
                  for i, m, d in zip(got["ids"], got["metadatas"], got["documents"])}
    assert col.count() == len(chroma_map)
    assert chroma_map == snap_map, "Chroma and the keyword snapshot disagree"

    if snap:
        bm = bm25s.BM25.load(str(idx / "snapshots" / manifest.snapshot / "bm25"))
        assert bm.scores["num_docs"] == len(snap)
    manifest_ids = [i for meta in manifest.files.values() for i in meta["chunks"]]
    assert sorted(manifest_ids) == sorted(snap_map)
    per_file: dict[str, int] = {}
    for f, *_ in snap_map.values():
        per_file[f] = per_file.get(f, 0) + 1
    return {"chunks": snap_map, "count": col.count(), "per_file": per_file,
            "files": sorted(manifest.files), "embed_model": manifest.embed_model,
            "hashes": {c.text_hash for c in snap}}


def fresh_state(tmp_path: Path, notes: Path, embedder, tag: str) -> dict:
    """The index a first ingest of the folder as it is now produces."""
    s = make_settings(tmp_path / f"fresh-{tag}")
    summary = run_ingest(s, notes, embedder=embedder)
    assert summary.chunks_deleted == 0 and summary.unchanged == 0
    return index_state(s, notes)


def same_index(a: dict, b: dict) -> None:
    assert a["count"] == b["count"]
    assert a["per_file"] == b["per_file"]
    assert a["chunks"] == b["chunks"]
    assert a["files"] == b["files"]


@pytest.fixture
def notes_copy(tmp_path, examples_notes) -> Path:
    dst = tmp_path / "notes"
    shutil.copytree(examples_notes, dst)
    (dst / "empty.md").write_text("", encoding="utf-8")  # a note with nothing to index
    return dst


def test_incremental_unchanged_change_delete_rename(tmp_path, settings, notes_copy, embedder):
    from assistant.query import NotesAssistant

    notes = notes_copy
    first = run_ingest(settings, notes, embedder=embedder)
    st = index_state(settings, notes)
    assert first.chunks == st["count"] > 0
    assert first.chunks_embedded == st["count"]  # everything is new
    assert first.added == first.files == len(st["files"])
    same_index(st, fresh_state(tmp_path, notes, embedder, "0"))

    # 1. unchanged: nothing is read again, nothing embedded
    again = run_ingest(settings, notes, embedder=embedder)
    assert again.chunks_embedded == 0 and again.chunks_reused == 0 and again.chunks_deleted == 0
    assert (again.added, again.changed, again.removed, again.renamed) == (0, 0, 0, 0)
    assert again.unchanged == first.files
    same_index(index_state(settings, notes), st)

    # 2. change one file: a paragraph inserted near the top shifts the lines of the rest
    target = notes / "深度学习" / "正则化.md"
    lines = target.read_text(encoding="utf-8").split("\n")
    lines[1:1] = ["", "正则化的目标是降低模型在未见数据上的误差，而不只是训练误差。"]
    target.write_text("\n".join(lines), encoding="utf-8")
    before = st
    changed = run_ingest(settings, notes, embedder=embedder)
    st = index_state(settings, notes)
    assert changed.changed == 1 and changed.unchanged == first.files - 1
    new_ids = set(st["chunks"]) - set(before["chunks"])
    gone_ids = set(before["chunks"]) - set(st["chunks"])
    new_hashes = st["hashes"] - before["hashes"]
    assert changed.chunks_embedded == len(new_hashes) == 1  # only the new paragraph is embedded
    assert changed.chunks_embedded + changed.chunks_reused == len(new_ids)  # moved chunks reuse vectors
    assert changed.chunks_deleted == len(gone_ids) > 0
    assert all(before["chunks"][i][0] == "深度学习/正则化.md" for i in gone_ids)
    same_index(st, fresh_state(tmp_path, notes, embedder, "1"))
    file_lines = read_lines(target)
    for f, ls, le, text in st["chunks"].values():
        if f == "深度学习/正则化.md":
            assert text in "\n".join(file_lines[ls - 1:le])

    # 3. delete one file
    before = st
    gone_file = "glossary.txt"
    gone_text = read_lines(notes / gone_file)[0]
    (notes / gone_file).unlink()
    deleted = run_ingest(settings, notes, embedder=embedder)
    st = index_state(settings, notes)
    assert deleted.removed == 1 and deleted.chunks_embedded == 0
    assert deleted.chunks_deleted == before["per_file"][gone_file]
    assert gone_file not in st["per_file"] and gone_file not in st["files"]
    same_index(st, fresh_state(tmp_path, notes, embedder, "2"))
    hits = NotesAssistant(settings, notes).search(gone_text)
    assert hits and all(loc.file != gone_file for p in hits for loc in p.locations)

    # 4. rename one file: its chunks move, nothing is embedded again
    before = st
    old_rel, new_rel = "optim/adam.md", "optim/adam-optimizer.md"
    os.rename(notes / old_rel, notes / new_rel)
    renamed = run_ingest(settings, notes, embedder=embedder)
    st = index_state(settings, notes)
    assert renamed.renamed == 1 and renamed.removed == 0 and renamed.added == 0
    assert renamed.chunks_embedded == 0
    assert renamed.chunks_reused == before["per_file"][old_rel] == st["per_file"][new_rel]
    assert renamed.chunks_deleted == before["per_file"][old_rel]
    assert old_rel not in st["per_file"]
    same_index(st, fresh_state(tmp_path, notes, embedder, "3"))
    hits = NotesAssistant(settings, notes).search("Adam default learning rate beta1 beta2")
    assert hits[0].file == new_rel
    assert all(loc.file != old_rel for p in hits for loc in p.locations)


def test_manifest_records_the_embedding_model(cli_examples, examples_notes):
    from assistant.models import embedder_id

    data, proc = cli_examples
    assert proc.returncode == 0, proc.stderr
    s = make_settings(data)
    st = index_state(s, examples_notes)
    assert st["embed_model"] == embedder_id(s.embed)
    assert st["embed_model"].startswith("e5:")
    assert st["count"] == json.loads(proc.stdout)["chunks"]


def _small_folder(tmp_path: Path) -> Path:
    notes = tmp_path / "small"
    notes.mkdir()
    (notes / "a.md").write_text("# Dropout\n\nDropout zeroes activations with probability p during training.\n",
                                encoding="utf-8")
    (notes / "b.txt").write_text("早停在验证集误差不再下降时停止训练。\n", encoding="utf-8")
    return notes


def test_other_embedding_model_is_one_line_error_and_rebuild_fixes_it(tmp_path, settings, embedder):
    from assistant.query import NotesAssistant

    notes = _small_folder(tmp_path)
    first = run_ingest(settings, notes, embedder=embedder)
    idx = index_dir_for(settings.data_dir, notes)

    # an index whose manifest says another model built it
    m = Manifest.load(idx)
    m.embed_model = "ollama:bge-m3"
    m.save(idx)
    with pytest.raises(IndexMismatchError) as exc:
        run_ingest(settings, notes, embedder=embedder)
    msg = str(exc.value)
    assert "\n" not in msg and "ollama:bge-m3" in msg and "--rebuild" in msg
    with pytest.raises(IndexMismatchError) as exc:
        NotesAssistant(settings, notes).search("dropout")
    assert "\n" not in str(exc.value) and "ollama:bge-m3" in str(exc.value)

    # --rebuild drops everything and embeds again with the configured model
    qa = NotesAssistant(settings, notes)
    rebuilt = run_ingest(settings, notes, embedder=embedder, rebuild=True)
    st = index_state(settings, notes)
    assert rebuilt.chunks_embedded == rebuilt.chunks == first.chunks == st["count"]
    assert st["embed_model"] == Manifest.load(idx).embed_model != "ollama:bge-m3"
    assert qa.search("dropout probability")[0].file == "a.md"  # same process, after the rebuild
    same_index(st, fresh_state(tmp_path, notes, embedder, "rb"))

    # settings naming another model than the one that built the index
    other = make_settings(settings.data_dir, embed="ollama:bge-m3")
    with pytest.raises(IndexMismatchError) as exc:
        run_ingest(other, notes)
    assert "\n" not in str(exc.value)
    with pytest.raises(IndexMismatchError):
        NotesAssistant(other, notes).search("dropout")


def test_rebuild_of_an_unchanged_index_embeds_everything_once(tmp_path, settings, embedder):
    notes = _small_folder(tmp_path)
    first = run_ingest(settings, notes, embedder=embedder)
    before = index_state(settings, notes)
    again = run_ingest(settings, notes, embedder=embedder, rebuild=True)
    assert again.added == first.files and again.chunks_embedded == first.chunks
    same_index(index_state(settings, notes), before)
    assert run_ingest(settings, notes, embedder=embedder).chunks_embedded == 0


def test_duplicated_passage_appears_once_with_every_file(tmp_path, embedder):
    from assistant.query import NotesAssistant, sources_json

    # one excerpt per line, each more than half a chunk long (as in the seed notes), so that no
    # two lines are merged into one chunk and the repeated line is a chunk of its own in both files
    settings = make_settings(tmp_path / "data", chunk_chars=80)
    shared = "MAE 随机遮住图像中 75% 的 patch，再用轻量解码器重建被遮住的像素，预训练快了三倍以上。"
    other = {
        "contrast": "对比学习 (contrastive learning) 把同一图像的两个增强视图在表示空间中拉近，把不同图像的视图推远。",
        "bert": "BERT 用掩码语言模型和下一句预测两个任务做预训练，再在下游任务上微调全部参数。",
        "gpt": "GPT 按从左到右的顺序逐个生成词元 (token)，每一步只看得到前面已经生成的全部内容。",
    }
    assert all(len(t) > settings.chunk_chars // 2 for t in [shared, *other.values()])
    notes = tmp_path / "dup"
    notes.mkdir()
    (notes / "a.txt").write_text(f"{other['contrast']}\n{shared}\n", encoding="utf-8")
    (notes / "sub").mkdir()
    (notes / "sub" / "b.txt").write_text(f"{other['bert']}\n\n{other['gpt']}\n{shared}\n", encoding="utf-8")
    (notes / "c.txt").write_text("Adam 的默认学习率是 0.001。\n", encoding="utf-8")
    summary = run_ingest(settings, notes, embedder=embedder)
    assert summary.chunks_embedded == summary.chunks  # counted per chunk; the vector is computed once
    st = index_state(settings, notes)
    assert sum(text == shared for *_, text in st["chunks"].values()) == 2

    hits = NotesAssistant(settings, notes).search("MAE 遮住多少比例的 patch？", top_k=5)
    same = [p for p in hits if p.text == shared]
    assert len(same) == 1, [p.text[:30] for p in hits]
    where = {}
    for rel in ("a.txt", "sub/b.txt"):
        n = read_lines(notes / rel).index(shared) + 1
        where[rel] = (n, n)
    got = {loc.file: (loc.line_start, loc.line_end) for loc in same[0].locations}
    assert got == where
    js = sources_json(hits)
    entry = next(d for d in js if d["text"] == shared)
    also = entry.get("also_in", [])
    assert len(also) == 1
    assert {entry["file"], also[0]["file"]} == set(where)


def test_plan_changes_is_a_pure_comparison():
    """new / changed / renamed / deleted / touched from the manifest and the folder alone; the
    unchanged folder is the empty plan."""
    from ingest.pipeline import plan_changes

    old = {"a.md": {"size": 1, "mtime_ns": 1, "sha256": "A"}, "b.md": {"size": 2, "mtime_ns": 2, "sha256": "B"},
           "c.md": {"size": 3, "mtime_ns": 3, "sha256": "C"}, "d.md": {"size": 4, "mtime_ns": 4, "sha256": "D"},
           "e.md": {"size": 5, "mtime_ns": 5, "sha256": "E"}}
    same = {rel: (m["size"], m["mtime_ns"], None) for rel, m in old.items()}
    plan = plan_changes(old, same, set(old))
    assert plan.empty and plan.unchanged == list(old)
    now = {"a.md": (1, 1, None),  # as indexed
           "b.md": (2, 9, "B"),  # touched: new mtime, same content
           "c.md": (7, 7, "C2"),  # changed
           "moved/d.md": (4, 8, "D"),  # d.md's content under a new path
           "f.md": (6, 6, "F")}  # new
    plan = plan_changes(old, now, set(now) | {"g.md"})  # g.md: a note that cannot be read
    assert (plan.unchanged, plan.touched, plan.changed, plan.new) == (["a.md"], ["b.md"], ["c.md"], ["f.md"])
    assert plan.renamed == {"moved/d.md": "d.md"} and plan.deleted == ["e.md"] and not plan.empty
    assert plan.to_split == ["f.md", "c.md", "moved/d.md"]
    resplit = plan_changes(old, {"a.md": (1, 1, "A")}, {"a.md"}, resplit=True)
    assert resplit.changed == ["a.md"] and len(resplit.deleted) == 4
