"""Hostile but fair input (issue 16): nothing leaks out of the notes folder, nothing reaches
the terminal raw, no traceback, nothing lost.

Real files, real symlinks, a FIFO, a real read-only mount and a real full filesystem (small
tmpfs mounts when run as root; skipped where the machine does not allow them); property
tests (hypothesis) push random control characters and Rich markup through every printer,
and random bytes and wrong-shape JSON into every index file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from _durability import assert_one_line_error, assistant, release_chroma, write_note
from conftest import make_settings

MAE_OLD = "MAE 的掩码率是 75%，编码器只处理可见的图像块。"
MAE_NEW = "MAE 的掩码率是 60%，编码器只处理可见的图像块。"
SECRET = "root:x:0:0:root:/root:/bin/bash topsecretvalue"
ESCAPES = {
    "osc52": "\x1b]52;c;ZWNobyBwd25lZA==\x07",  # writes the clipboard
    "osc0": "\x1b]0;pwned title\x07",  # window title
    "sgr8": "\x1b[8mhidden words\x1b[0m",  # hidden text
    "csi2j": "\x1b[2J",  # clears the screen
    "c1csi": "\x9b31m",  # 8-bit CSI
}
ESCAPE_NOTE = ("# Terminal escapes\n\nTerminal escape sequences demo: " + " ".join(ESCAPES.values())
               + " end of the escape demo.\n")
MARKUP_NAME = "[draft] mae.md"
MARKUP_NOTE = "# Draft\n\nDraft markup about [bold]emphasis[/bold] and [/] closing tags :x: :warning: here.\n"
NEWLINE_NAME = "line\nbreak.md"
UTF16_ZH = "梯度裁剪在梯度范数超过阈值时按比例缩小梯度，防止梯度爆炸。\n"
UTF16_EN = "Gradient clipping rescales the gradients when their norm passes a threshold.\n"

RAW_CONTROL = {chr(c) for c in range(0x20) if c not in (0x0A,)} | {chr(c) for c in range(0x7F, 0xA0)}


def _raw_controls(s: str) -> set[str]:
    return {ch for ch in s if ch in RAW_CONTROL}


def _ingest_json(r) -> dict:
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


# --- one hostile folder, ingested once by the real CLI --------------------------------

@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    notes, secret = root / "notes", root / "secret"
    write_note(secret / "passwd.md", f"{SECRET}\n")
    write_note(secret / "inner" / "keys.md", "private keys of the secret folder topsecretvalue\n")
    write_note(notes / "mae.md", f"# MAE\n\n{MAE_OLD}\n")
    write_note(notes / "escapes.md", ESCAPE_NOTE)
    write_note(notes / MARKUP_NAME, MARKUP_NOTE)
    write_note(notes / NEWLINE_NAME, "# Names\n\nA note whose file name holds a newline character.\n")
    (notes / "utf16-zh.txt").write_bytes(UTF16_ZH.encode("utf-16-le"))  # no BOM
    (notes / "utf16-en.txt").write_bytes(UTF16_EN.encode("utf-16-be"))  # no BOM, big-endian
    os.symlink("mae.md", notes / "inner-link.md")  # a link to a note inside: fine
    os.symlink(secret / "passwd.md", notes / "leak.md")  # a file outside
    os.symlink("../secret", notes / "linkdir")  # a folder outside
    os.symlink("nowhere.md", notes / "dangling.md")  # unreadable
    os.mkfifo(notes / "fifo.md")  # unreadable: never opened (it would block)
    data = root / "data"
    r = assistant(["ingest", str(notes), "--json"], data, timeout=300)
    return SimpleNamespace(root=root, notes=notes, secret=secret, data=data, r=r, summary=_ingest_json(r))


def test_links_out_of_the_notes_folder_are_skipped_with_a_warning(hostile):
    """Case 1: `leak.md -> /…/passwd.md` and `linkdir -> ../secret` are not indexed; each is one
    warning; a link to a note inside the folder is indexed like any note."""
    s = hostile.summary
    warnings = s["warnings"]
    for name in ("leak.md", "linkdir/"):
        mine = [w for w in warnings if w.startswith(f"skipped {name}:")]
        assert len(mine) == 1 and "outside the notes folder" in mine[0], warnings
    from ingest.index import Manifest, index_dir_for, load_snapshot_chunks

    idx = index_dir_for(hostile.data, hostile.notes)
    m = Manifest.load(idx)
    assert "leak.md" not in m.files and not any(f.startswith("linkdir") for f in m.files)
    assert "inner-link.md" in m.files and "mae.md" in m.files
    chunks = load_snapshot_chunks(idx, m.snapshot)
    assert not any("topsecretvalue" in c.text for c in chunks)
    r = assistant(["search", "root bin bash topsecretvalue private keys", "--json"], hostile.data)
    assert r.returncode == 0, r.stderr
    assert "topsecretvalue" not in r.stdout and "root:x:0:0" not in r.stdout


def test_a_note_replaced_by_a_link_out_is_not_shown_before_the_next_ingest(small, tmp_path):
    """Case 1, for an index written before the link (or by a version that followed links):
    search never shows a passage whose file now leads out of the notes folder."""
    from assistant.query import NotesAssistant

    outside = tmp_path / "elsewhere.md"
    target = small.notes / "a.md"
    saved = target.read_bytes()
    outside.write_bytes(saved)
    before = [p.chunk.file for p in NotesAssistant(small.settings, small.notes).search("label smoothing")]
    assert before[0] == "a.md"
    target.unlink()
    os.symlink(outside, target)
    try:
        after = [p.chunk.file for p in NotesAssistant(small.settings, small.notes).search("label smoothing")]
        assert "a.md" not in after and after
    finally:
        target.unlink()
        target.write_bytes(saved)


def test_walk_and_note_viewer_agree_on_what_is_inside(hostile):
    """Case 1: one rule. Every note-named path in the folder is indexed exactly when the web
    chat's note viewer opens it, and both use ingest.paths.note_path."""
    from assistant.notes_access import NoteAccessError, open_note, safe_note_path
    from assistant.ui_render import note_html
    from ingest.load import walk
    from ingest.paths import OutsideNotesError, note_path

    found = walk(hostile.notes)
    walked = {n.rel for n in found.notes}
    assert {"leak.md", "linkdir/"} <= {s.rel for s in found.outside}
    candidates = ["mae.md", "inner-link.md", "leak.md", "linkdir/passwd.md", "linkdir/inner/keys.md",
                  "escapes.md", "../secret/passwd.md", str(hostile.secret / "passwd.md")]
    for rel in candidates:
        try:
            safe_note_path(hostile.notes, rel)
            viewer = True
        except NoteAccessError:
            viewer = False
        try:
            note_path(hostile.notes, rel)
            rule = True
        except OutsideNotesError:
            rule = False
        assert viewer == rule == (rel in walked), rel
    def viewed(ref: str) -> str:  # what the web chat's note viewer shows for a reference
        try:
            return note_html(open_note(hostile.notes, ref))
        except NoteAccessError as exc:
            return note_html(None, error=str(exc))

    assert "na-refused" in viewed("leak.md:1")
    assert "topsecretvalue" not in viewed("linkdir/passwd.md:1")


def test_terminal_escapes_in_a_note_never_reach_the_terminal(hostile):
    """Case 2: OSC 52, OSC 0, SGR 8, CSI 2J and an 8-bit CSI in a note are shown escaped by
    `search`; `--json` keeps the exact text."""
    r = assistant(["search", "terminal escape sequences demo"], hostile.data)
    assert r.returncode == 0, r.stderr
    assert "escapes.md" in r.stdout
    assert not _raw_controls(r.stdout + r.stderr), sorted(map(ord, _raw_controls(r.stdout + r.stderr)))
    assert "\\x1b]52;c;" in r.stdout and "\\x1b[2J" in r.stdout and "\\x9b31m" in r.stdout
    j = assistant(["search", "terminal escape sequences demo", "--json"], hostile.data)
    top = [x for x in json.loads(j.stdout) if x["file"] == "escapes.md"][0]
    assert all(seq in top["text"] for seq in ESCAPES.values())  # exact text in JSON
    assert "\x1b" not in j.stdout and "\x9b" not in j.stdout  # ...escaped as JSON escapes


def test_terminal_escapes_never_reach_the_terminal_from_ask(hostile):
    """Case 2, the `ask` side: the streamed answer, the checked answer and the Sources go
    through the same printing path (the embedded setup answers with note sentences, no model)."""
    r = assistant(["ask", "What does the terminal escape sequences demo write?", "--llm", "embedded"], hostile.data)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not _raw_controls(r.stdout + r.stderr), sorted(map(ord, _raw_controls(r.stdout + r.stderr)))
    assert "escapes.md" in r.stdout + r.stderr


def test_markup_and_emoji_codes_in_names_and_text_are_shown_as_written(hostile):
    """Case 3: a note named `[draft] mae.md` is shown with its name; `[/]`, `[bold]`, `:x:`
    and `:warning:` in its text are not interpreted; the newline in a file name is escaped (7)."""
    r = assistant(["search", "draft markup closing tags emphasis"], hostile.data)
    assert r.returncode == 0, r.stderr
    assert "[draft] mae.md:3" in r.stdout
    assert "[bold]emphasis[/bold] and [/] closing tags :x: :warning:" in r.stdout
    assert "❌" not in r.stdout and "⚠" not in r.stdout
    n = assistant(["search", "file name holds a newline character"], hostile.data)
    assert "line\\nbreak.md:3" in n.stdout
    printed = [ln for ln in n.stdout.splitlines() if "break.md" in ln]
    assert printed and printed[0].startswith("1. line\\nbreak.md:3")


def test_utf16_without_bom_is_read(hostile):
    """Case 7: UTF-16 without a byte order mark (little- and big-endian) is text, not binary."""
    from ingest.index import Manifest, index_dir_for
    from ingest.load import DecodeError, decode

    m = Manifest.load(index_dir_for(hostile.data, hostile.notes))
    assert m.files["utf16-zh.txt"]["encoding"] == "utf-16-le"
    assert m.files["utf16-en.txt"]["encoding"] == "utf-16-be"
    assert decode(UTF16_ZH.encode("utf-16-le")) == (UTF16_ZH, "utf-16-le")
    assert decode(UTF16_EN.encode("utf-16-le"))[0] == UTF16_EN
    with pytest.raises(DecodeError):  # binary with NULs is still binary
        decode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16)
    r = assistant(["search", "梯度裁剪 阈值", "--json"], hostile.data)
    assert json.loads(r.stdout)[0]["text"] == UTF16_ZH.strip()


def test_unreadable_files_are_counted(hostile):
    """Case 7: a dangling link and a FIFO named like notes are counted in `unreadable`, one warning each."""
    s = hostile.summary
    assert s["unreadable"] == 2, s
    for name in ("dangling.md", "fifo.md"):
        assert len([w for w in s["warnings"] if w.startswith(f"skipped {name}:")]) == 1, s["warnings"]
    again = _ingest_json(assistant(["ingest", str(hostile.notes), "--json"], hostile.data))
    assert again["unreadable"] == 2 and again["chunks_embedded"] == 0  # the unchanged re-run says the same


def test_newline_in_a_file_name_stays_on_one_line_in_warnings(tmp_path, embedder):
    """Case 7: a warning naming a file with a newline (and escapes) in its name is one line."""
    from typer.testing import CliRunner

    from assistant.cli import app

    notes = tmp_path / "notes"
    write_note(notes / "ok.md", "# Ok\n\nA fine note about gradient descent.\n")
    (notes / "bad\nname\x1b[31m.md").write_bytes(b"\x00\x01\x02\x03binary" * 50)
    r = CliRunner().invoke(app, ["ingest", str(notes), "--data-dir", str(tmp_path / "data")])
    assert r.exit_code == 0, r.output
    warns = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert len(warns) == 1 and "bad\\nname\\x1b[31m.md" in warns[0] and "binary" in warns[0], r.output
    assert "\x1b" not in r.output
    release_chroma(tmp_path / "data", notes)


# --- every printer, property-style -----------------------------------------------------

_HOSTILE_PIECES = st.sampled_from(["[bold]", "[/]", "[/bold]", "[red]x[/red]", "[link=http://e]", "\\[", ":x:",
                                   ":warning:", ":smile:", "\x1b]52;c;AAAA\x07", "\x1b[2J", "\x1b[8m", "\x9b",
                                   "\x07", "\r", "\b", "\x00", "\x7f", "\u202e", "\t", "\n", "MAE", "掩码率", " "])
HOSTILE_TEXT = st.lists(st.one_of(_HOSTILE_PIECES, st.characters(max_codepoint=0x2FF),
                                  st.characters(min_codepoint=0x80, max_codepoint=0x9F)),
                        min_size=1, max_size=12).map("".join)


def _passage(text: str, file: str, heading: str):
    chunk = SimpleNamespace(file=file, line_start=1, line_end=2, text=text, heading=[heading] if heading else [],
                            heading_path=heading)
    return SimpleNamespace(chunk=chunk, score=0.5, locations=[SimpleNamespace(file=file, line_start=1, line_end=2)])


def _flat(s: str) -> str:
    return " ".join(s.split())


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE_TEXT, name=HOSTILE_TEXT, extra=HOSTILE_TEXT)
def test_every_printer_shows_untrusted_text_escaped_and_uninterpreted(capsys, text, name, extra):
    """Cases 2, 3: search results, answers, citations, errors, warnings, status and the
    ingest progress warning never write a control character raw, never fail on markup,
    and show markup and emoji codes as written."""
    from assistant import cli, render, safe_text
    from assistant.cite import Citation

    p = _passage(text, name, extra)
    render.render_passages([p])
    ans = SimpleNamespace(answer=text, refused=False, error=extra, incomplete=True, warnings=[extra, "x " + name],
                          citations=[Citation(1, name, 1, 2, text, 0.5, 1.0)], sources=[p], llm=name,
                          timings_ms={"total": 10})
    render.render_answer_tail(ans, streamed_text=name)
    ans.citations = []
    render.render_answer_tail(ans)
    render.render_status({"config_file": name, "config_file_exists": False, "settings": {"notes_dir": text},
                          "index": {"error": extra}, "llm": {"note": text}})
    from assistant.progress import RichProgress

    warn = RichProgress(safe_text.console(stderr=True))
    warn.warn(f"skipped {name}: {extra}")
    warn.stop()
    with pytest.raises(Exception) as exc:
        cli._fail(extra)
    assert type(exc.value).__name__ == "Exit"
    out, err = capsys.readouterr()
    assert not _raw_controls(out + err)
    # what was printed is the text itself, control characters escaped (markup never parsed)
    assert _flat(safe_text.one_line(text)) in _flat(out)
    assert _flat(f"{safe_text.one_line(name)}:1-2") in _flat(out)
    assert _flat(safe_text.one_line(extra)) in _flat(err)
    # one line each, whatever the name: the warning and the error
    assert len([ln for ln in err.splitlines() if ln.startswith("warning: skipped")]) == 1
    assert len([ln for ln in err.splitlines() if ln.startswith("error: ")]) == 3  # two answers, _fail


@hsettings(max_examples=200, deadline=None)
@given(obj=st.recursive(st.none() | st.booleans() | st.integers() | HOSTILE_TEXT,
                        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(HOSTILE_TEXT, kids, max_size=3),
                        max_leaves=8))
def test_json_output_is_exact_and_terminal_safe(obj):
    """`--json` keeps the exact text (it parses back equal) and writes no control character raw."""
    from assistant.safe_text import json_dumps

    out = json_dumps(obj)
    assert json.loads(out) == obj
    assert not _raw_controls(out)


def test_model_output_and_server_errors_with_markup(tmp_path, capsys):
    """Case 3: `[/]` in an Ollama error or a model answer does not crash `ask`'s printing."""
    from assistant.render import render_answer_tail

    ans = SimpleNamespace(answer="use [/] and [bold] :x:", refused=False, incomplete=False, citations=[], sources=[],
                          error="Ollama returned an error (HTTP 500): template [/] error :warning:", warnings=[],
                          llm="ollama:m", timings_ms={"total": 5})
    render_answer_tail(ans, streamed_text="use [/]")
    out, err = capsys.readouterr()
    assert "use [/] and [bold] :x:" in out
    assert "error: Ollama returned an error (HTTP 500): template [/] error :warning:" in err


# --- index files ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory, embedder):
    from ingest.index import index_dir_for
    from ingest.pipeline import run_ingest

    root = tmp_path_factory.mktemp("small")
    notes, data = root / "notes", root / "data"
    write_note(notes / "a.md", "# Label smoothing\n\nLabel smoothing mixes one-hot targets with a uniform distribution.\n")
    write_note(notes / "b.md", "# Momentum\n\nMomentum keeps a running average of the gradients.\n")
    s = make_settings(data)
    run_ingest(s, notes, embedder=embedder)
    release_chroma(data, notes)
    return SimpleNamespace(notes=notes, data=data, settings=s, idx=index_dir_for(data, notes))


@contextlib.contextmanager
def _replaced(path: Path, content: bytes):
    """``path`` holds ``content`` inside the block, its own bytes again after it."""
    before = path.read_bytes() if path.exists() else None
    path.write_bytes(content)
    try:
        yield
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)


WRONG_SHAPES = [b"[]", b"{}", b'{"version": 1}', b"null", b"5", b'"x"', b"\xff\xfe\x00garbage",
                b'{"version": 1, "notes_dir": "/x", "embed_model": "e5", "chunk_chars": 400, "files": []}',
                b'{"version": 1, "notes_dir": "/x", "embed_model": "e5", "chunk_chars": 400, "files": {"a.md": 5}}',
                b'{"version": 1, "notes_dir": "/x", "embed_model": "e5", "chunk_chars": "400"}']


def test_manifest_of_the_wrong_shape(small):
    """Case 4: every command gives one line naming manifest.json and `assistant ingest
    --rebuild`; a plain ingest and `--rebuild` both work without it."""
    p = small.idx / "manifest.json"
    for bad in (b"[]", b'{"version": 1}'):
        with _replaced(p, bad):
            for args in (["search", "label smoothing"], ["ask", "what is label smoothing?"]):
                assert_one_line_error(assistant(args, small.data), "manifest.json", "assistant ingest --rebuild")
            st_ = assistant(["status", "--json"], small.data)
            assert st_.returncode == 0 and "manifest.json" in json.loads(st_.stdout)["index"]["error"]
    before = p.read_bytes()
    p.write_bytes(b'{"version": 1}')
    r = assistant(["ingest", "--rebuild", str(small.notes), "--json"], small.data)
    assert _ingest_json(r)["files"] == 2
    p.write_bytes(b"[]")
    assert _ingest_json(assistant(["ingest", str(small.notes), "--json"], small.data))["files"] == 2
    assert json.loads(p.read_text())["files"].keys() == json.loads(before)["files"].keys()


def test_pointer_of_the_wrong_type(small):
    """Case 4: a current.json of the wrong type: search, ask, status and ingest say so in one
    line naming the file; `ingest --rebuild NOTES` rewrites it."""
    p = small.data / "current.json"
    for bad in (b"[]", b'{"notes_dir": 5}', b'"x"', b"\x00\xff"):
        with _replaced(p, bad):
            for args in (["search", "label"], ["ask", "what is label smoothing?"], ["ingest"]):
                assert_one_line_error(assistant(args, small.data), "current.json", "assistant ingest --rebuild")
            st_ = assistant(["status"], small.data)
            assert st_.returncode == 0 and "current.json" in st_.stdout and "Traceback" not in st_.stderr
    with _replaced(p, b"[1, 2]"):
        _ingest_json(assistant(["ingest", "--rebuild", str(small.notes), "--json"], small.data))
        assert json.loads(p.read_text())["notes_dir"] == str(small.notes.resolve())


def test_chroma_file_that_is_not_a_database(small, tmp_path):
    """Case 4: a garbage chroma.sqlite3: ingest says which file and that `--rebuild` rebuilds
    it; `--rebuild` does, and readers (which never open Chroma) answer throughout."""
    work = tmp_path / "data"
    shutil.copytree(small.data, work)
    from ingest.index import index_dir_for

    db = index_dir_for(work, small.notes) / "chroma" / "chroma.sqlite3"
    db.write_bytes(os.urandom(4096))
    write_note(small.notes / "c.md", "# Weight decay\n\nWeight decay adds the squared weights to the loss.\n")
    try:
        assert_one_line_error(assistant(["ingest", str(small.notes), "--json"], work), "chroma.sqlite3", "not a database",
                              "assistant ingest --rebuild")
        r = assistant(["search", "label smoothing", "--json"], work)
        assert r.returncode == 0 and json.loads(r.stdout)[0]["file"] == "a.md"
        assert _ingest_json(assistant(["ingest", "--rebuild", str(small.notes), "--json"], work))["files"] == 3
    finally:
        (small.notes / "c.md").unlink()


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300), st.sampled_from(WRONG_SHAPES),
                         st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                      lambda k: st.lists(k, max_size=3) | st.dictionaries(st.sampled_from(
                                          ["version", "notes_dir", "embed_model", "chunk_chars", "files", "snapshot",
                                           "options", "size", "mtime_ns", "chunks", "x"]), k, max_size=6),
                                      max_leaves=10).map(lambda o: json.dumps(o).encode())),
       victim=st.sampled_from(["manifest.json", "current.json", "chunks.json", "vectors.npy", "bm25", "bm25-chars"]))
def test_random_bytes_or_json_in_any_index_file_is_a_user_error(small, embedder, content, victim):
    """Case 4, property-style: whatever bytes or JSON stand in an index file, a reader either
    answers or raises a UserError (one line naming the file and `--rebuild`), never another
    exception; the broken file never stops a rebuild (shown by the tests above)."""
    from assistant.errors import UserError
    from assistant.retrieve import HybridRetriever, IndexSnapshot

    m = json.loads((small.idx / "manifest.json").read_text())
    snap_dir = small.idx / "snapshots" / m["snapshot"]
    path = {"manifest.json": small.idx / "manifest.json", "current.json": small.data / "current.json",
            "chunks.json": snap_dir / "chunks.json", "vectors.npy": snap_dir / "vectors.npy"}.get(victim)
    if path is None:  # the largest file of a bm25 folder
        path = sorted((snap_dir / victim).iterdir(), key=lambda x: -x.stat().st_size)[0]
    with _replaced(path, content):
        try:
            snap = IndexSnapshot(small.settings, None if victim == "current.json" else small.notes)
            snap._embedder = embedder
            got = HybridRetriever(snap, small.settings).search("label smoothing", 3)
            assert isinstance(got, list)
        except UserError as exc:
            msg = str(exc)
            assert "\n" not in msg and "assistant ingest" in msg, msg


# --- environment faults ----------------------------------------------------------------

def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "8m"):
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only for real: a read-only remount of its tmpfs as root, else no write bits."""
    if os.geteuid() == 0:
        p = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
        if p.returncode != 0:
            pytest.skip(f"cannot remount read-only: {p.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True)
    else:
        modes = {}
        for d in [path, *[x for x in path.rglob("*") if x.is_dir()]]:
            modes[d] = d.stat().st_mode
            d.chmod(0o555)
        try:
            yield
        finally:
            for d, mode in modes.items():
                d.chmod(mode)


def _data_on_its_own_fs(tmp_path: Path, size: str):
    if os.geteuid() == 0:
        if not _can_mount():
            pytest.skip("no mount command")
        return tmpfs(tmp_path / "mnt", size)
    return contextlib.nullcontext((tmp_path / "mnt"))


def test_read_only_data_dir(small, tmp_path):
    """Case 5: ingest into a read-only data dir is one line with the next step; nothing is
    lost and search still answers from the index there."""
    with _data_on_its_own_fs(tmp_path, "16m") as mnt:
        mnt.mkdir(exist_ok=True)
        data = mnt / "data"
        shutil.copytree(small.data, data)
        with read_only(mnt):
            assert_one_line_error(assistant(["ingest", str(small.notes)], data), "cannot write to the data folder",
                                  "--data-dir", "nothing was changed")
            r = assistant(["search", "label smoothing", "--json"], data)
            assert r.returncode == 0 and json.loads(r.stdout)[0]["file"] == "a.md", r.stderr[-2000:]
            other = mnt / "never-written"
            assert_one_line_error(assistant(["ingest", str(small.notes)], other), "cannot write to the data folder")


def test_full_filesystem_during_the_chroma_write(tmp_path, embedder):
    """Case 5: a real full filesystem (a 1 MB tmpfs) while an ingest writes: one line saying to
    free space, the old index keeps answering, and with space again the note goes in."""
    if not _can_mount():
        pytest.skip("a real full filesystem needs root (a small tmpfs mount)")
    notes = tmp_path / "notes"
    write_note(notes / "a.md", "# Label smoothing\n\nLabel smoothing mixes one-hot targets with a uniform distribution.\n")
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        data = mnt / "data"
        _ingest_json(assistant(["ingest", str(notes), "--json"], data))
        filler = mnt / "filler"
        free = shutil.disk_usage(mnt).free
        filler.write_bytes(b"\0" * max(0, free - 16 * 1024))
        write_note(notes / "c.md", "# Momentum\n\nMomentum keeps a running average of the gradients.\n\n"
                                   "# Decay\n\nWeight decay adds the squared weights to the loss.\n")
        r = assistant(["ingest", str(notes), "--json"], data)
        assert_one_line_error(r, "free some disk space")
        assert "assistant ingest" in r.stderr or "--data-dir" in r.stderr
        s = assistant(["search", "label smoothing", "--json"], data)
        assert s.returncode == 0 and json.loads(s.stdout)[0]["file"] == "a.md", s.stderr[-2000:]
        filler.unlink()
        again = _ingest_json(assistant(["ingest", str(notes), "--json"], data))
        assert again["added"] == 1 and again["files"] == 2


@pytest.mark.parametrize("host", ["http://[::1", "http://localhost:99999"])
def test_malformed_ollama_host(small, host):
    """Case 5: a malformed OLLAMA_HOST or an out-of-range port never stops a command that does
    not need Ollama (status, search); one that needs it gets one line naming OLLAMA_HOST."""
    st_ = assistant(["status"], small.data, OLLAMA_HOST=host)
    assert st_.returncode == 0 and "Traceback" not in st_.stderr, st_.stderr[-2000:]
    assert "OLLAMA_HOST" in st_.stdout
    assert assistant(["search", "label smoothing"], small.data, OLLAMA_HOST=host).returncode == 0
    r = assistant(["ask", "what is label smoothing?", "--llm", "ollama:qwen2.5:7b"], small.data, OLLAMA_HOST=host)
    assert "Traceback" not in r.stderr and r.returncode in (1, 2)  # an answer with an error, or a user error
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "OLLAMA_HOST" in errors[0], r.stderr[-2000:]
    assert ("port outside 1-65535" if "99999" in host else "not a valid address") in errors[0]


def test_ollama_host_checked_only_when_needed(monkeypatch, tmp_path):
    """Case 5: with --llm auto a malformed OLLAMA_HOST falls back to the embedded model;
    port 99999 is never silently port 80."""
    import assistant.gguf as gguf
    import assistant.models as models
    from assistant.errors import UserError
    from assistant.ollama_backend import normalize_host

    for host in ("http://[::1", "localhost:99999", "http://h:99999"):
        with pytest.raises(UserError) as exc:
            normalize_host(host)
        assert "OLLAMA_HOST" in str(exc.value) and "\n" not in str(exc.value)
    assert normalize_host("http://[::1]:8080") == "http://[::1]:8080"
    sentinel = object()
    monkeypatch.setattr(gguf, "load_embedded", lambda settings, choice="embedded": sentinel)
    s = make_settings(tmp_path / "data", ollama_host="http://[::1")
    assert models.load_llm(s) is sentinel
    assert models.describe_llm(s)["answering"].startswith("embedded")


# --- answers: only text that is in the files now ------------------------------------------

@pytest.fixture
def mae(tmp_path, embedder):
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    write_note(notes / "mae.md", f"# MAE\n\n{MAE_OLD}\n")
    write_note(notes / "other.md", "# 动量\n\n动量法保持梯度的滑动平均，让参数更新更平滑。\n")
    s = make_settings(tmp_path / "data")
    run_ingest(s, notes, embedder=embedder)
    release_chroma(tmp_path / "data", notes)
    return notes, s


@pytest.mark.parametrize("edit", ["changed", "deleted"])
def test_a_note_changed_after_ingest_is_never_quoted_old(mae, edit):
    """Case 6: after the note says 60% (or is gone), the answer never shows "75%" as the notes'
    words: it says the note changed and to run `assistant ingest`."""
    notes, s = mae
    if edit == "changed":
        write_note(notes / "mae.md", f"# MAE\n\n{MAE_NEW}\n")
    else:
        (notes / "mae.md").unlink()
    r = assistant(["ask", "MAE 的掩码率是多少？", "--json"], s.data_dir)
    assert r.returncode in (0, 4), r.stderr[-2000:]  # 4: refused, the note it would quote changed
    ans = json.loads(r.stdout)
    assert "75%" not in ans["answer"] and not any("75%" in c["quote"] for c in ans["citations"])
    assert "assistant ingest" in ans["answer"] and "mae.md" in ans["answer"], ans["answer"]
    assert any("mae.md" in w and "since the last ingest" in w for w in ans.get("warnings", []))
    assert all(x["file"] != "mae.md" for x in ans["sources"])


def test_drop_stale_keeps_unchanged_and_touched_notes(mae):
    """Case 6: a note only touched (same bytes, new mtime) is still quoted; a changed one is not."""
    from assistant.guards import drop_stale
    from assistant.query import NotesAssistant

    notes, s = mae
    qa = NotesAssistant(s, notes)
    passages = qa.search("MAE 掩码率 动量法 滑动平均", 5)
    files = {p.chunk.file for p in passages}
    assert {"mae.md", "other.md"} <= files
    os.utime(notes / "mae.md", ns=(1, 1))
    kept, warnings, message = drop_stale(passages, qa.snapshot)
    assert kept == passages and warnings == [] and message is None
    write_note(notes / "mae.md", f"# MAE\n\n{MAE_NEW}\n")
    kept, warnings, message = drop_stale(passages, qa.snapshot)
    assert {p.chunk.file for p in kept} == files - {"mae.md"} and "`assistant ingest`" in message
    assert len(warnings) == 1 and warnings[0].startswith("mae.md changed since the last ingest")


@pytest.mark.parametrize("question", ["🤔🤔❓", "😀 😀 👍", "$\\sqrt{d_k}$", "$$\\mathrm{softmax}(QK^T/\\sqrt{d_k})V$$",
                                      "$\\frac{\\partial L}{\\partial w}$"])
def test_emoji_or_latex_only_question_is_refused(examples_index, question):
    """Case 7: nothing to look up -> "the notes do not cover this" from the evidence gate (no
    model consulted, no cited sentences). Each of these passed the gate before: the emoji as
    "a close passage in the other language", the formulas on the LaTeX terms of transformer.md."""
    ans = examples_index.qa.ask(question)
    assert ans.refused and not ans.citations and ans.llm is None, (ans.answer, ans.warnings, ans.llm)
    assert "evidence gate: the question has no word to look up" in ans.warnings


def test_nothing_to_look_up():
    from assistant.guards import nothing_to_look_up

    for q in ("🤔", "$E$", "\\alpha + \\beta", "$$x^2$$ ?", "  ??  ", "1 + 1 = 2"):
        assert nothing_to_look_up(q), q
    for q in ("MAE?", "掩", "what is $x$ in adam", "Adam 的 $\\beta_1$ 是多少", "softmax"):
        assert not nothing_to_look_up(q), q
