"""Crash safety: ``kill -9`` of a real ``assistant ingest`` at several points, then another ingest.

One notes folder and one data dir go through a sequence of steps. Each step changes the
folder (notes added, changed, renamed, deleted), starts a real ``assistant ingest``
process and kills it with SIGKILL at one point:

- a pause point of the pipeline (``NOTES_ASSISTANT_TEST_PAUSE_AT``: the process prints
  ``paused at STAGE`` and waits, and is killed there): before anything is embedded,
  after the first embedded batch is written to Chroma (mid-embedding), after every
  Chroma write but before the keyword snapshot, after the snapshot but before the
  manifest (mid-write), after the manifest but before stale Chroma entries are deleted;
- at random moments (seeded; the seed and delays are printed).

After each kill the live index must still be whole (the manifest names a complete
snapshot), and after the next ingest (the pipeline, in this process) the index must hold exactly what a
clean ingest of the same folder into another data dir holds: the same chunk ids, files,
lines and texts in Chroma and in the keyword snapshot, none missing, none duplicated,
vectors that are the texts' own, a manifest that is true of the files.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from _durability import MemoEmbedder, Proc, assert_index_equals_fresh, assistant, chunk_map, dump_index, \
    fresh_index, release_chroma, write_note
from conftest import make_settings
from ingest.pipeline import run_ingest

TOPICS = ["Adam", "SGD", "dropout", "batch norm", "layer norm", "attention", "MAE", "CLIP", "BERT", "GPT",
          "ResNet", "ViT", "YOLO", "DETR", "U-Net", "GAN", "VAE", "diffusion", "LSTM", "word2vec",
          "k-means", "PCA", "SVM", "boosting", "EM", "Transformer", "LoRA", "RLHF", "beam search", "BPE"]
FACTS = ["训练时先用小学习率预热几步，再按余弦曲线衰减。", "It converges faster when the inputs are normalised first.",
         "评估时要关掉随机性，否则结果无法复现。", "A larger batch needs a proportionally larger learning rate.",
         "过拟合时先加数据增强，再考虑加正则项。", "Its main cost is memory, not compute, on long sequences."]


def note_text(topic: str, i: int) -> str:
    return f"# {topic}\n\n{topic} 笔记 {i}：{FACTS[i % len(FACTS)]} ({topic} #{i})\n"


def change_folder(notes: Path, step: int, new_files: int) -> None:
    """Add ``new_files`` notes; change, rename and delete one existing note."""
    for j in range(new_files):
        t = TOPICS[(step * 7 + j) % len(TOPICS)]
        write_note(notes / f"step{step}" / f"n{j:02d}.md", note_text(t, step * 100 + j))
    existing = sorted(p for p in notes.rglob("*.md") if not p.parent.name == f"step{step}")
    if len(existing) >= 3:
        changed, renamed, deleted = existing[0], existing[1], existing[2]
        changed.write_text(changed.read_text(encoding="utf-8") + f"\n补充 {step}：{FACTS[step % len(FACTS)]}\n",
                           encoding="utf-8")
        renamed.rename(renamed.with_name(f"renamed-{step}-{renamed.name}"))
        deleted.unlink()


def assert_live_index_whole(state: dict, what: str) -> None:
    """After a kill: the manifest (if any) names a complete snapshot whose chunks Chroma holds."""
    if state["manifest"] is None:
        return  # killed during the very first ingest: there is no index yet, and none is half-made
    snap = chunk_map(state["snapshot"])
    assert state.get("vectors") is not None and len(state["vectors"]) == len(snap), what
    ids_in_manifest = {i for m in state["manifest"]["files"].values() for i in m["chunks"]}
    assert ids_in_manifest == set(snap), f"{what}: manifest and its snapshot disagree"
    assert set(snap) <= {r[0] for r in state["chroma"]}, f"{what}: the live snapshot has chunks Chroma lacks"


def run_killed(notes: Path, data_dir: Path, stage: str | None, delay: float | None) -> dict:
    """Start `assistant ingest`, kill -9 it at ``stage`` (or after ``delay`` s); what it saw."""
    p = Proc(["ingest", str(notes), "--json"], data_dir, pause_at=stage)
    t0 = time.monotonic()
    if stage:
        p.wait_for(f"paused at {stage}", timeout=180)
    else:
        time.sleep(delay)
    finished_first = p.p.poll() is not None
    rc = p.kill()
    return {"stage": stage, "delay": delay, "rc": rc, "finished_before_kill": finished_first,
            "seconds": round(time.monotonic() - t0, 2)}


@pytest.fixture(scope="module")
def memo(embedder):
    return MemoEmbedder(embedder)


def test_kill_at_every_write_stage_then_reingest_gives_a_clean_index(tmp_path, memo, capsys):
    notes = tmp_path / "notes"
    for i, t in enumerate(TOPICS[:6]):
        write_note(notes / f"base/{i:02d}.md", note_text(t, i))
    data = tmp_path / "data"
    seed = int(os.environ.get("CRASH_SEED", "20261123"))
    rng = random.Random(seed)

    # (stage to kill at, new notes in this step); mid-embedding needs more than one batch of 32
    plan = [("before-embed", 0),          # early: the very first ingest, nothing written yet
            ("embedded-batch", 40),       # mid-embedding: one batch in Chroma, the rest not
            ("before-publish", 3),        # every Chroma write done, no keyword snapshot
            ("before-manifest", 3),       # mid-write: new snapshot on disk, manifest still old
            ("after-manifest", 3),        # new manifest, stale Chroma entries and snapshot not cleaned
            (None, 4), (None, 4)]         # random moments
    seen = []
    last_run = 8.0
    before = None
    for step, (stage, new) in enumerate(plan):
        if new or step:
            change_folder(notes, step, new)
        delay = None if stage else round(rng.uniform(0.25, 0.7) * last_run, 2)
        info = run_killed(notes, data, stage, delay)
        assert info["rc"] == -9 or info["finished_before_kill"], info
        after_kill = dump_index(data, notes)
        what = f"step {step} ({stage or f'random {delay} s'})"
        assert_live_index_whole(after_kill, what)
        if before is not None and after_kill["manifest"] and before["manifest"]:
            # the old view stays in force until the manifest is replaced
            if stage in ("before-embed", "embedded-batch", "before-publish", "before-manifest"):
                assert after_kill["manifest"]["snapshot"] == before["manifest"]["snapshot"], what
            if stage == "after-manifest":
                assert after_kill["manifest"]["snapshot"] != before["manifest"]["snapshot"], what

        if stage == "after-manifest":  # the pause came after nearly all of a run's work
            last_run = max(3.0, info["seconds"])
        # the next ingest (this process, the same code as `assistant ingest`; then it lets go of Chroma)
        summary = asdict(run_ingest(make_settings(data), notes, embedder=memo.real))
        release_chroma(data, notes)
        state = dump_index(data, notes)
        fresh = fresh_index(tmp_path, notes, memo, f"s{step}")
        assert_index_equals_fresh(state, fresh, notes, what)
        # the next run has nothing left to do
        assert len(state["snapshot_dirs"]) <= 2
        info.update(chunks=len(state["snapshot"]), recovery=summary["chunks_embedded"],
                    reused=summary["chunks_reused"], deleted=summary["chunks_deleted"],
                    stale_after_kill=len({r[0] for r in after_kill.get("chroma", [])} -
                                         {r[0] for r in state["chroma"]}))
        seen.append(info)
        before = state
    again = assistant(["ingest", str(notes), "--json"], data)
    assert again.returncode == 0, again.stderr
    s = json.loads(again.stdout)
    assert s["chunks_embedded"] == 0 and s["chunks_deleted"] == 0 and s["unchanged"] == s["files"]
    with capsys.disabled():
        print(f"\ncrash seed {seed}")
        for i in seen:
            print("  killed", json.dumps(i, ensure_ascii=False))
