"""Helpers for the crash, concurrency, Chroma-server and bad-input tests.

The state of an index is read back in a *separate* Python process (``dump_index``):
Chroma's PersistentClient is single-process, and a test process that kept a client
open beside the ``assistant`` processes it starts would be a second opener.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import ASSISTANT, REPO, cli_env

_DUMP = r"""
import json, sys
from pathlib import Path
from ingest.index import (Manifest, chroma_client, collection_name, get_collection, index_dir_for,
                          load_snapshot_chunks, load_snapshot_vectors)
data_dir, notes, url = Path(sys.argv[1]), Path(sys.argv[2]), (sys.argv[3] or None)
idx = index_dir_for(data_dir, notes)
out = {"index_dir": str(idx)}
m = Manifest.load(idx)
out["manifest"] = None if m is None else {"snapshot": m.snapshot, "files": m.files, "embed_model": m.embed_model}
snaps = idx / "snapshots"
out["snapshot_dirs"] = sorted(p.name for p in snaps.iterdir()) if snaps.exists() else []
if m is not None and m.snapshot:
    chunks = load_snapshot_chunks(idx, m.snapshot)
    out["snapshot"] = [[c.id, c.file, c.line_start, c.line_end, c.text, c.text_hash] for c in chunks]
    vec = load_snapshot_vectors(idx, m.snapshot, len(chunks))
    out["vectors"] = None if vec is None else vec.tolist()
    bm = idx / "snapshots" / m.snapshot / "bm25"
    if chunks:
        import bm25s
        out["bm25_docs"] = int(bm25s.BM25.load(str(bm)).scores["num_docs"])
        out["bm25_chars_docs"] = int(bm25s.BM25.load(str(bm) + "-chars").scores["num_docs"])
if url or (idx / "chroma").exists():
    col = get_collection(chroma_client(idx, url), collection_name(idx, url))
    got = col.get(include=["documents", "metadatas", "embeddings"])
    out["chroma"] = [[i, md["file"], md["line_start"], md["line_end"], d, md["text_hash"]]
                     for i, d, md in zip(got["ids"], got["documents"], got["metadatas"])]
    out["chroma_vectors"] = {i: [float(x) for x in e] for i, e in zip(got["ids"], got["embeddings"])}
    out["chroma_count"] = col.count()
print(json.dumps(out, ensure_ascii=False))
"""


def dump_index(data_dir: Path, notes: Path, chroma_url: str | None = None) -> dict:
    """Everything an index holds (manifest, live snapshot, its vectors, Chroma), read by another process."""
    p = subprocess.run([sys.executable, "-c", _DUMP, str(data_dir), str(notes), chroma_url or ""],
                       capture_output=True, text=True, timeout=120, cwd=str(REPO), env=cli_env(data_dir))
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout)


def chunk_map(rows) -> dict[str, tuple]:
    """id -> (file, line_start, line_end, text, text_hash); asserts there is no duplicate id."""
    m = {r[0]: tuple(r[1:]) for r in rows}
    assert len(m) == len(rows), f"duplicate ids: {len(rows) - len(m)}"
    return m


def cosine(a, b) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def fresh_index(tmp_path: Path, notes: Path, embedder, tag: str) -> dict:
    """What a first, clean ingest of the folder as it is now gives (in this process, another data dir)."""
    from conftest import make_settings
    from ingest.pipeline import run_ingest

    d = tmp_path / f"fresh-{tag}"
    s = make_settings(d)
    summary = run_ingest(s, notes, embedder=embedder)
    assert summary.unchanged == 0 and summary.chunks_deleted == 0
    release_chroma(d, notes)
    return read_snapshot(d, notes)


def read_snapshot(data_dir: Path, notes: Path) -> dict:
    """The manifest and live snapshot (chunks, vectors) of an index, read here (no Chroma)."""
    from ingest.index import Manifest, index_dir_for, load_snapshot_chunks, load_snapshot_vectors

    idx = index_dir_for(data_dir, notes)
    m = Manifest.load(idx)
    chunks = load_snapshot_chunks(idx, m.snapshot)
    vec = load_snapshot_vectors(idx, m.snapshot, len(chunks))
    return {"manifest": {"snapshot": m.snapshot, "files": m.files, "embed_model": m.embed_model},
            "snapshot": [[c.id, c.file, c.line_start, c.line_end, c.text, c.text_hash] for c in chunks],
            "vectors": None if vec is None else vec.tolist()}


def release_chroma(data_dir: Path, notes: Path) -> None:
    """Drop this process's cached Chroma system for an index, so that it is not a second
    opener while another process writes there."""
    from chromadb.api.client import SharedSystemClient

    from ingest.index import index_dir_for

    path = str(index_dir_for(data_dir, notes) / "chroma")
    system = SharedSystemClient._identifier_to_system.pop(path, None)
    SharedSystemClient._identifier_to_refcount.pop(path, None)
    if system is not None:
        system.stop()


class MemoEmbedder:
    """The real embedding model, remembering what it already embedded (fresh ingests of a
    folder that grows step by step need not embed the same text twice)."""

    def __init__(self, real):
        self.real = real
        self.memo: dict[str, list[float]] = {}

    def get_text_embedding_batch(self, texts, **kw):
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            for t, v in zip(todo, self.real.get_text_embedding_batch(todo)):
                self.memo[t] = v
        return [self.memo[t] for t in texts]

    def get_query_embedding(self, q):
        return self.real.get_query_embedding(q)


def assert_index_equals_fresh(state: dict, fresh: dict, notes: Path, what: str = "") -> None:
    """The index holds exactly the chunks a clean ingest gives: Chroma == live snapshot == fresh
    ingest (ids, files, lines, texts), vectors agree, the manifest is true of the files."""
    import hashlib

    assert state["manifest"] is not None, f"{what}: no manifest"
    snap = chunk_map(state["snapshot"])
    chroma = chunk_map(state["chroma"])
    want = chunk_map(fresh["snapshot"])
    assert state["chroma_count"] == len(chroma)
    missing, extra = set(want) - set(chroma), set(chroma) - set(want)
    assert not missing and not extra, f"{what}: Chroma has {len(missing)} missing and {len(extra)} extra chunks"
    assert snap == want, f"{what}: the live snapshot differs from a fresh ingest"
    assert chroma == want, f"{what}: Chroma's documents/metadata differ from a fresh ingest"
    assert state.get("bm25_docs", 0) == len(snap)
    assert state.get("bm25_chars_docs", 0) == len(snap)
    # vectors: the snapshot's rows are Chroma's vectors of the same ids, and the model's vectors of the texts
    assert state["vectors"] is not None and len(state["vectors"]) == len(state["snapshot"])
    fresh_vec = {r[0]: v for r, v in zip(fresh["snapshot"], fresh["vectors"])}
    for row, v in zip(state["snapshot"], state["vectors"]):
        assert cosine(v, state["chroma_vectors"][row[0]]) > 0.9999, f"{what}: snapshot vector != Chroma vector"
        assert cosine(v, fresh_vec[row[0]]) > 0.99, f"{what}: vector of {row[1]}:{row[2]} is not its text's"
    # the manifest is true: the files it lists, with the bytes it recorded, and their chunk ids
    files = state["manifest"]["files"]
    assert sorted(files) == sorted(fresh["manifest"]["files"]), f"{what}: manifest files differ"
    for rel, meta in files.items():
        data = (notes / rel).read_bytes()
        assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["size"] == len(data), rel
        assert meta["chunks"] == fresh["manifest"]["files"][rel]["chunks"], rel
    assert not [d for d in state["snapshot_dirs"] if d.endswith(".tmp")], state["snapshot_dirs"]


# --- processes ------------------------------------------------------------------------

class Proc:
    """A running ``assistant`` process whose stderr lines are collected by a thread."""

    def __init__(self, args: list[str], data_dir: Path, pause_at: str | None = None, **env: str):
        extra = dict(env)
        if pause_at:
            extra["NOTES_ASSISTANT_TEST_PAUSE_AT"] = pause_at
        self.args = args
        self.p = subprocess.Popen([str(ASSISTANT), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=str(REPO), env=cli_env(data_dir, **extra),
                                  start_new_session=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.err: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stderr:
            self.err.append(line)
            self.lines.put(line)
        self.lines.put("")  # EOF

    def wait_for(self, text: str, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError(f"{self.args}: no '{text}' within {timeout} s; stderr: {''.join(self.err)[-2000:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line == "":
                out = self.p.stdout.read() if self.p.stdout else ""
                raise AssertionError(f"{self.args} ended (rc={self.p.wait()}) before '{text}': "
                                     f"{''.join(self.err)[-2000:]} {out[-500:]}")
            if text in line:
                return

    def resume(self) -> None:
        """Let a paused run go on, and every later pause too (stdin closed)."""
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def step(self) -> None:
        """Let a paused run go on to its next pause."""
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def kill(self) -> int:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
        return self.p.wait(timeout=30)

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.args} did not finish within {timeout} s (hung?)") from None
        out = self.p.stdout.read()
        self._t.join(timeout=5)
        return rc, out, "".join(self.err)


def assistant(args: list[str], data_dir: Path, timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ASSISTANT), *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(data_dir, **env), cwd=str(REPO))


def assert_one_line_error(p: subprocess.CompletedProcess | tuple, *needles: str, code: int | None = None) -> str:
    """stderr is exactly one line starting with ``error:``, with each needle, and no traceback."""
    rc, out, err = (p.returncode, p.stdout, p.stderr) if isinstance(p, subprocess.CompletedProcess) else p
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    if code is not None:
        assert rc == code, (rc, err)
    else:
        assert rc != 0
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_note(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path
