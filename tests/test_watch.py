"""Watch mode with real file events: `assistant ingest --watch` and `assistant ui --watch` run as
processes, the test edits the folder (create, edit, rename, delete, swap files, a burst of 200
saves), holds the write lock as a second writer, kills a watcher mid-update, presses Ctrl-C."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ASSISTANT, REPO, cli_env

NOTE = "# Warmup\n\nWarmup raises the learning rate linearly over the first steps of training.\n"


class Watcher:
    """A running `assistant ... --watch` with its stdout lines in a queue."""

    def __init__(self, args: list[str], data: Path, **env: str):
        self.p = subprocess.Popen([str(ASSISTANT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE, text=True, env=cli_env(data, **env), cwd=str(REPO))
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def next_line(self, timeout: float = 90) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s; stderr: {self.err[-10:]}") from None

    def line_with(self, needle: str, timeout: float = 90) -> str:
        end = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.1, end - time.monotonic()))
            if needle in line:
                return line

    def quiet_for(self, seconds: float) -> list[str]:
        time.sleep(seconds)
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return out

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def manifest(data: Path, notes: Path):
    from ingest.index import Manifest, index_dir_for

    return Manifest.load(index_dir_for(data, notes))


@pytest.fixture
def folder(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "adam.md").write_text("# Adam\n\nAdam keeps running averages of the gradient and its square.\n",
                                   encoding="utf-8")
    return notes



def paused_watcher(folder: Path, data: Path) -> "Watcher":
    """A watcher whose first update has stopped right before its manifest is published."""
    w = Watcher(["ingest", str(folder), "--watch"], data, NOTES_ASSISTANT_TEST_PAUSE_AT="before-manifest")
    end = time.monotonic() + 120
    while not any("paused at before-manifest" in e for e in w.err):
        assert time.monotonic() < end and w.p.poll() is None, w.err
        time.sleep(0.1)
    return w

def test_ingest_watch_follows_real_changes(folder, tmp_path):
    data = tmp_path / "data"
    w = Watcher(["ingest", str(folder), "--watch"], data)
    try:
        assert "first ingest -> 1 added" in w.next_line(180)
        assert set(manifest(data, folder).files) == {"adam.md"}

        (folder / "warmup.md").write_text(NOTE, encoding="utf-8")
        line = w.next_line()
        assert "added warmup.md" in line and "1 added" in line and " s" in line, line
        assert set(manifest(data, folder).files) == {"adam.md", "warmup.md"}

        with open(folder / "warmup.md", "a", encoding="utf-8") as f:
            f.write("\nA common warmup length is 2000 steps.\n")
        line = w.next_line()
        assert "edited warmup.md" in line and "1 changed" in line, line

        (folder / "warmup.md").rename(folder / "schedule.md")
        line = w.next_line()
        assert "schedule.md" in line and "1 renamed" in line, line
        assert set(manifest(data, folder).files) == {"adam.md", "schedule.md"}

        (folder / "sub").mkdir()
        (folder / "adam.md").rename(folder / "sub" / "adam.md")  # moved into a new folder
        line = w.next_line()
        assert "1 renamed" in line, line
        assert set(manifest(data, folder).files) == {"sub/adam.md", "schedule.md"}

        (folder / "schedule.md").unlink()
        line = w.next_line()
        assert "deleted schedule.md" in line and "1 removed" in line, line
        assert set(manifest(data, folder).files) == {"sub/adam.md"}

        # editor swap, backup and temp files, hidden folders: no update at all
        (folder / ".sub.md.swp").write_bytes(b"b0VIM 9.0")
        (folder / "sub" / "adam.md~").write_text("backup", encoding="utf-8")
        (folder / "4913").write_text("", encoding="utf-8")
        (folder / "#notes.md#").write_text("emacs", encoding="utf-8")
        (folder / "draft.md.tmp").write_text("tmp", encoding="utf-8")
        (folder / ".obsidian").mkdir()
        (folder / ".obsidian" / "workspace.md").write_text("# ui state", encoding="utf-8")
        (folder / "4913").unlink()
        assert w.quiet_for(3) == []

        # a burst of 200 saves: a few debounced updates, and the index holds the last save
        t0 = time.monotonic()
        for i in range(200):
            (folder / "burst.md").write_text(f"# Burst\n\nSave number {i} of the burst note.\n", encoding="utf-8")
            time.sleep(0.005)
        burst_s = time.monotonic() - t0
        updates = [w.line_with("burst.md")]
        updates += w.quiet_for(4)
        # one update for a burst without pauses, or one per 3 s (the longest wait) of a long one
        assert 1 <= len(updates) <= 1 + int(burst_s / 3), (burst_s, updates)
        assert "added burst.md" in updates[0] and "1 added" in updates[0], updates
        from ingest.index import load_snapshot_chunks, index_dir_for

        m = manifest(data, folder)
        chunks = load_snapshot_chunks(index_dir_for(data, folder), m.snapshot)
        assert [c.text for c in chunks if c.file == "burst.md"] == ["Save number 199 of the burst note."]
    finally:
        code = w.stop()
    assert code == 0, w.err
    assert "watch stopped" in "\n".join(w.err) and not any("Traceback" in e for e in w.err), w.err
    # Ctrl-C left no lock behind: a plain ingest runs at once
    p = subprocess.run([str(ASSISTANT), "ingest", str(folder), "--json"], capture_output=True, text=True,
                       timeout=240, env=cli_env(data))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["files"] == 2


def test_watch_waits_for_a_second_writer(folder, tmp_path):
    from filelock import FileLock

    from ingest.index import index_dir_for

    data = tmp_path / "data"
    w = Watcher(["ingest", str(folder), "--watch"], data)
    try:
        w.line_with("first ingest", 180)
        lock = FileLock(str(index_dir_for(data, folder) / "write.lock"))
        lock.acquire(timeout=5)  # another ingest (this test) holds the index
        try:
            (folder / "warmup.md").write_text(NOTE, encoding="utf-8")
            line = w.next_line()
            assert "another ingest" in line and "retrying" in line, line
        finally:
            lock.release()
        line = w.line_with("warmup.md")
        assert "1 added" in line, line
        assert "warmup.md" in manifest(data, folder).files
    finally:
        assert w.stop() == 0, w.err


def test_watcher_killed_mid_update_loses_nothing(folder, tmp_path):
    data = tmp_path / "data"
    w = Watcher(["ingest", str(folder), "--watch"], data)
    w.line_with("first ingest", 180)
    before = manifest(data, folder)
    w.p.kill()
    w.p.wait()
    # the next watcher stops right before its update would be published; it is killed there
    (folder / "warmup.md").write_text(NOTE, encoding="utf-8")
    w = paused_watcher(folder, data)
    w.p.kill()
    w.p.wait()
    assert manifest(data, folder).snapshot == before.snapshot  # the old index is still whole and in force
    w = Watcher(["ingest", str(folder), "--watch"], data)
    try:
        line = w.line_with("first ingest", 180)
        assert "1 added" in line, line
        assert set(manifest(data, folder).files) == {"adam.md", "warmup.md"}
    finally:
        assert w.stop() == 0, w.err


def test_watch_bad_folder_is_one_line(tmp_path):
    p = subprocess.run([str(ASSISTANT), "ingest", str(tmp_path / "missing"), "--watch"], capture_output=True,
                       text=True, timeout=60, env=cli_env(tmp_path / "d"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.strip()][-1].startswith("error:")
    assert "does not exist" in p.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_watch_serves_each_new_snapshot(folder, tmp_path):
    pytest.importorskip("gradio_client")
    from gradio_client import Client

    data = tmp_path / "data"
    port = _free_port()
    # no answering model is needed here (nothing is asked): an Ollama model on a closed port, so that
    # the UI's warm-up loads no LLM
    w = Watcher(["ui", "--notes", str(folder), "--watch", "--port", str(port), "--llm", "ollama:none"], data,
                OLLAMA_HOST=f"127.0.0.1:{_free_port()}")
    try:
        url = w.line_with("notes-assistant: open", 180).split("open ", 1)[1].split(" ", 1)[0]
        w.line_with("first ingest", 180)
        c = Client(url, verbose=False)
        assert "1 files" in c.predict(api_name="/status")
        (folder / "warmup.md").write_text(NOTE, encoding="utf-8")
        assert "1 added" in w.line_with("warmup.md")
        assert "2 files" in c.predict(api_name="/status")  # the same chat process, the new snapshot
        html = c.predict("warmup.md:3", api_name="/open_note")
        assert "na-hit" in html and "linearly" in html, html
        (folder / "warmup.md").unlink()
        assert "1 removed" in w.line_with("warmup.md")
        assert "1 files" in c.predict(api_name="/status")
        assert "na-refused" in c.predict("warmup.md:3", api_name="/open_note")
    finally:
        w.stop()


def test_ctrl_c_mid_update_ends_cleanly(folder, tmp_path):
    """Ctrl-C while an update is being written: exit 0, no traceback, the lock released and the
    previous index whole; the next ingest finishes the job."""
    data = tmp_path / "data"
    w = Watcher(["ingest", str(folder), "--watch"], data)
    w.line_with("first ingest", 180)
    assert w.stop() == 0
    before = manifest(data, folder).snapshot
    (folder / "warmup.md").write_text(NOTE, encoding="utf-8")
    w = paused_watcher(folder, data)
    w.p.send_signal(signal.SIGINT)
    assert w.p.wait(30) == 0, w.err
    time.sleep(0.2)  # the stderr reader gets the last lines
    assert "watch stopped" in w.err and not any("Traceback" in e for e in w.err), w.err
    assert manifest(data, folder).snapshot == before
    p = subprocess.run([str(ASSISTANT), "ingest", str(folder), "--json"], capture_output=True, text=True,
                       timeout=240, env=cli_env(data))
    assert p.returncode == 0, p.stderr  # no lock left behind
    assert json.loads(p.stdout)["added"] == 1
