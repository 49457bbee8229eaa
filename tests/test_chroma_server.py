"""Chroma as a server: a real `chroma run` on 127.0.0.1 and the full loop through --chroma-url.

The server is the `chroma` CLI the chromadb package installs, started on a free port with
its own data folder; the tests wait for ``GET /api/v2/heartbeat``. The keyword snapshot
must stay consistent with what the server holds: when the server loses chunks (wiped,
or some deleted), search still answers and the next ingest uploads exactly what is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from _durability import assert_one_line_error, assistant, chunk_map, free_port, read_snapshot

CHROMA = Path(sys.executable).parent / "chroma"


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as r:
            return r.status == 200 and "heartbeat" in r.read().decode()
    except OSError:
        return False


class ChromaServer:
    def __init__(self, path: Path):
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "ChromaServer":
        assert CHROMA.exists(), f"the chroma CLI is not installed at {CHROMA}"
        self.log = open(self.path.parent / f"chroma-{self.port}.log", "w")
        self.proc = subprocess.Popen([str(CHROMA), "run", "--path", str(self.path), "--port", str(self.port),
                                      "--host", "127.0.0.1"], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"chroma run exited with {self.proc.returncode}: "
                                     f"{(self.path.parent / f'chroma-{self.port}.log').read_text()[-2000:]}")
            if _heartbeat(self.url):
                return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"chroma run did not answer its heartbeat within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def client(self):
        import chromadb
        from chromadb.config import Settings

        return chromadb.HttpClient(host="127.0.0.1", port=self.port, settings=Settings(anonymized_telemetry=False))


@pytest.fixture
def server(tmp_path):
    s = ChromaServer(tmp_path / "chroma-server").start()
    yield s
    s.stop()


@pytest.fixture
def notes(tmp_path, examples_notes):
    dst = tmp_path / "notes"
    shutil.copytree(examples_notes, dst)
    return dst


def _server_state(server: ChromaServer, data: Path, notes: Path) -> tuple[dict, dict]:
    """The live snapshot, and what the server holds for this folder (read here: a server has
    no single-process limit)."""
    from ingest.index import collection_name, index_dir_for

    state = read_snapshot(data, notes)
    name = collection_name(index_dir_for(data, notes), server.url)
    got = server.client().get_collection(name).get(include=["documents", "metadatas"])
    held = [[i, m["file"], m["line_start"], m["line_end"], d, m["text_hash"]]
            for i, d, m in zip(got["ids"], got["documents"], got["metadatas"])]
    return state, chunk_map(held)


def test_full_loop_through_a_chroma_server(tmp_path, server, notes):
    data = tmp_path / "data"
    url = ["--chroma-url", server.url]

    r = assistant(["ingest", str(notes), "--json", *url], data)
    assert r.returncode == 0, r.stderr[-3000:]
    first = json.loads(r.stdout)
    assert first["chunks"] > 0 and first["chunks_embedded"] + first["chunks_reused"] == first["chunks"]
    # nothing was stored locally: the vectors are on the server
    idx = Path(first["index_dir"])
    assert not (idx / "chroma").exists()
    names = [c.name for c in server.client().list_collections()]
    assert len(names) == 1 and names[0].startswith("chunks-"), names
    state, held = _server_state(server, data, notes)
    assert held == chunk_map(state["snapshot"]), "the server and the keyword snapshot disagree"

    r = assistant(["search", "Adam 的默认学习率是多少？", "--json", *url], data)
    assert r.returncode == 0, r.stderr[-3000:]
    hits = json.loads(r.stdout)
    assert hits and hits[0]["file"] == "optim/adam.md", hits[:2]

    r = assistant(["status", "--json", *url], data)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["settings"]["chroma_url"] == server.url
    assert st["index"]["chunks"] == first["chunks"]
    assert f"holds {first['chunks']} for {first['chunks']} chunks" in st["index"]["vectors"], st["index"]

    r = assistant(["ask", "What are Adam's default hyperparameters?", "--json", "--llm", "embedded", *url], data,
                  NOTES_ASSISTANT_MAX_ANSWER_TOKENS="64")
    assert r.returncode == 0, r.stderr[-3000:]
    ans = json.loads(r.stdout)
    assert ans["answer"].strip() and (ans["llm"] == "extractive" or ans["llm"].startswith("embedded"))
    assert ans["sources"] and ans["sources"][0]["file"] == "optim/adam.md", ans["sources"][:2]
    for c in ans["citations"]:
        assert c["file"] in {s["file"] for s in ans["sources"]}

    # an unchanged re-ingest uploads nothing and changes nothing on the server
    from conftest import make_settings
    from assistant.indexing import ingest_notes as run_ingest

    again = run_ingest(make_settings(data, chroma_url=server.url), notes)
    assert again.chunks_embedded == 0 and again.chunks_reused == 0 and again.chunks_deleted == 0
    assert again.unchanged == first["files"]
    assert _server_state(server, data, notes)[1] == held


def test_server_that_lost_chunks_is_refilled_and_search_survives(tmp_path, server, notes, embedder):
    from conftest import make_settings
    from ingest.pipeline import run_ingest

    data = tmp_path / "data"
    s = make_settings(data, chroma_url=server.url)
    first = run_ingest(s, notes, embedder=embedder)
    state, held = _server_state(server, data, notes)
    want = chunk_map(state["snapshot"])
    assert held == want
    col = server.client().get_collection([c.name for c in server.client().list_collections()][0])

    # some chunks deleted on the server: search still answers, ingest re-uploads exactly those
    gone = sorted(want)[: max(1, len(want) // 3)]
    col.delete(ids=gone)
    r = assistant(["search", "Adam learning rate", "--json", "--chroma-url", server.url], data)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert json.loads(r.stdout), "search found nothing"
    r = assistant(["status", "--json", "--chroma-url", server.url], data)
    assert "some are missing" in json.loads(r.stdout)["index"]["vectors"]
    again = run_ingest(s, notes, embedder=embedder)
    assert again.chunks_embedded + again.chunks_reused == len(gone), again
    assert again.unchanged == first.files
    assert _server_state(server, data, notes)[1] == want

    # the server wiped (its collection dropped): search answers from the keywords, ingest refills it all
    server.client().delete_collection(col.name)
    r = assistant(["search", "Adam learning rate", "--json", "--chroma-url", server.url], data)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    hits = json.loads(r.stdout)
    assert hits and hits[0]["file"] == "optim/adam.md"
    refill = run_ingest(s, notes, embedder=embedder)
    assert refill.chunks_embedded + refill.chunks_reused == len(want)
    state, held = _server_state(server, data, notes)
    assert held == want == chunk_map(state["snapshot"])

    # extra entries on the server that the folder no longer has (a run killed after its manifest) go
    col = server.client().get_collection(col.name)
    col.upsert(ids=["stale-1"], embeddings=[[0.0] * 383 + [1.0]], documents=["stale"],
               metadatas=[{"file": "gone.md", "line_start": 1, "line_end": 1, "text_hash": "x"}])
    cleaned = run_ingest(s, notes, embedder=embedder)
    assert cleaned.chunks_deleted == 1 and _server_state(server, data, notes)[1] == want


def test_server_down_is_one_line(tmp_path, server, notes, embedder):
    from conftest import make_settings
    from ingest.pipeline import run_ingest

    data = tmp_path / "data"
    run_ingest(make_settings(data, chroma_url=server.url), notes, embedder=embedder)
    url = server.url
    server.stop()
    for args in (["search", "Adam"], ["ask", "Adam?", "--llm", "embedded"], ["ingest", str(notes)]):
        r = assistant([*args, "--chroma-url", url], data)
        assert_one_line_error(r, "cannot reach the Chroma server", url, "chroma run")
    r = assistant(["status", "--json", "--chroma-url", url], data)
    assert r.returncode == 0 and "cannot reach the Chroma server" in json.loads(r.stdout)["index"]["vectors"]
    # an address that never had a server
    r = assistant(["search", "Adam", "--chroma-url", "http://127.0.0.1:9"], data)
    assert_one_line_error(r, "cannot reach the Chroma server")
