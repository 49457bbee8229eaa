"""Shared fixtures: isolated settings, the sample notes, the shared seed notes, one-off ingests.

Every test gets its own data dir (``NOTES_ASSISTANT_DATA_DIR``) and no user config
file; the model cache stays the default one, so the 491 MB GGUF is assembled once per
machine, not per test. Expensive ingests are done once per session and shared by the
tests that only read them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

# A test run started in the background by a shell without job control (`pytest &` in a
# script) inherits SIGINT ignored, and so would every `assistant` process the tests spawn:
# the Ctrl-C tests (chat, watch) then wait for an exit that never comes (measured: 5 failures).
# A handled signal is reset to the default when a child execs, so the children get Ctrl-C again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_NOTES = REPO / "examples" / "notes"
SHARED_NOTES = (REPO / ".." / "shared" / "notes").resolve()
# the installed console script, next to the interpreter running the tests
ASSISTANT = Path(sys.executable).parent / "assistant"

# settings a developer's shell may carry that would leak into the tests
_KEEP_ENV = {"NOTES_ASSISTANT_MODEL_DIR"}


def _scrubbed_environ(config_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("NOTES_ASSISTANT_") and k not in _KEEP_ENV)}
    env["NOTES_ASSISTANT_CONFIG"] = str(config_file)  # a file that does not exist: no user config
    env.pop("OLLAMA_HOST", None)
    env["ANONYMIZED_TELEMETRY"] = "False"
    return env


@pytest.fixture(scope="session", autouse=True)
def _isolated_session(tmp_path_factory):
    """No user config, no stray NOTES_ASSISTANT_* variables, for the whole run."""
    cfg = tmp_path_factory.mktemp("config") / "absent.toml"
    clean = _scrubbed_environ(cfg)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh data dir for this test, also exported for code that reads the environment."""
    d = tmp_path / "data"
    monkeypatch.setenv("NOTES_ASSISTANT_DATA_DIR", str(d))
    return d


@pytest.fixture
def settings(data_dir):
    """Settings isolated in ``data_dir`` (defaults otherwise; default model cache)."""
    from assistant.settings import load_settings

    s = load_settings(data_dir=data_dir)
    assert s.data_dir == data_dir
    return s


def make_settings(data_dir: Path, **overrides):
    from assistant.settings import load_settings

    return load_settings(data_dir=data_dir, **overrides)


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for running the ``assistant`` script against ``data_dir``."""
    env = dict(os.environ)
    env["NOTES_ASSISTANT_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def run_cli(args: list[str], data_dir: Path, timeout: float = 240, **extra_env: str) -> subprocess.CompletedProcess:
    assert ASSISTANT.exists(), f"console script not installed at {ASSISTANT}"
    return subprocess.run([str(ASSISTANT), *args], capture_output=True, text=True, timeout=timeout,
                          env=cli_env(data_dir, **extra_env), cwd=str(REPO))


@pytest.fixture(scope="session")
def examples_notes() -> Path:
    assert EXAMPLES_NOTES.is_dir(), f"the project's sample notes are missing: {EXAMPLES_NOTES}"
    return EXAMPLES_NOTES


@pytest.fixture(scope="session")
def shared_notes() -> Path:
    """``../shared/notes`` beside the repo; tests that use it carry the ``shared`` marker."""
    if not SHARED_NOTES.is_dir() or not any(SHARED_NOTES.glob("*.txt")):
        pytest.skip(f"{SHARED_NOTES} is not present")
    return SHARED_NOTES


@pytest.fixture(scope="session")
def embedder():
    """The real embedded e5 model, loaded once and handed to in-process ingests."""
    from assistant.models import make_embedder

    return make_embedder("e5")


class Ingested:
    """A folder ingested once; tests must only read it."""

    def __init__(self, notes_dir: Path, data_dir: Path, settings, summary):
        self.notes_dir = notes_dir
        self.data_dir = data_dir
        self.settings = settings
        self.summary = summary
        self._qa = None

    @property
    def qa(self):
        if self._qa is None:
            from assistant.query import NotesAssistant

            self._qa = NotesAssistant(self.settings, self.notes_dir)
        return self._qa


def _ingest_once(tmp_path_factory, name: str, notes: Path, embedder) -> Ingested:
    from ingest.pipeline import run_ingest

    d = tmp_path_factory.mktemp(name)
    s = make_settings(d)
    summary = run_ingest(s, notes, embedder=embedder)
    return Ingested(notes, d, s, summary)


@pytest.fixture(scope="session")
def shared_index(tmp_path_factory, shared_notes, embedder) -> Ingested:
    """``../shared/notes`` ingested once per session (read-only)."""
    return _ingest_once(tmp_path_factory, "shared-index", shared_notes, embedder)


@pytest.fixture(scope="session")
def examples_index(tmp_path_factory, examples_notes, embedder) -> Ingested:
    """``examples/notes`` ingested once per session (read-only)."""
    return _ingest_once(tmp_path_factory, "examples-index", examples_notes, embedder)


@pytest.fixture(scope="session")
def cli_examples(tmp_path_factory, examples_notes):
    """``assistant ingest examples/notes --json`` run once (real console script) into a session
    data dir; returns ``(data_dir, completed_process)``. Tests must only read that index."""
    data = tmp_path_factory.mktemp("cli-examples")
    proc = run_cli(["ingest", str(examples_notes), "--json"], data)
    return data, proc


def read_lines(path: Path) -> list[str]:
    """The lines of a note as an editor shows them (same decoding rules as ingest)."""
    from ingest.load import decode

    text, _ = decode(path.read_bytes())
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def assert_at_lines(lines: list[str], text: str, line_start: int, line_end: int, what: str = "") -> None:
    """``text`` stands verbatim in lines ``line_start..line_end`` and starts/ends on those lines."""
    assert 1 <= line_start <= line_end <= len(lines), (what, line_start, line_end, len(lines))
    seg = "\n".join(lines[line_start - 1:line_end])
    pos = seg.find(text)
    assert pos != -1, f"{what}: text not found verbatim in lines {line_start}-{line_end}: {text[:80]!r}"
    assert "\n" not in seg[:pos], f"{what}: text does not start on line {line_start}"
    assert "\n" not in seg[pos + len(text):], f"{what}: text does not end on line {line_end}"
