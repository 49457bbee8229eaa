"""The web chat through its HTTP API: the real Gradio app, served in-process on a free
port, driven by ``gradio_client`` (the same queue and events the browser uses).

A small temporary notes folder (the project's sample notes, a note on MAE and BERT
for follow-up questions, and a hostile note holding markup) is ingested for real;
answers come from the embedded model.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE_NOTES = REPO / "examples" / "notes"

SSL_NOTE = """# 自监督预训练

## MAE

MAE（Masked Autoencoders）是何恺明等人提出的视觉自监督预训练方法：把图片切成 patch，随机遮住其中一大部分，再让模型重建被遮住的像素。MAE 采用非对称的编码器-解码器结构，编码器只处理可见的 patch。

MAE 的掩码率很高，默认遮住 75% 的 patch。

## BERT

BERT 用掩码语言模型（Masked Language Model）做预训练：随机选出输入中的一部分词元替换成 [MASK]，再让模型预测原来的词。

BERT 的掩码率是 15%。
"""

HOSTILE_NOTE = """# 梯度裁剪

梯度裁剪（gradient clipping）把梯度的范数限制在阈值以内，防止梯度爆炸。<script>window.__pwned=1</script> 常用的阈值是 1.0。<img src=x onerror="window.__pwned=1"> 超过阈值时按比例缩小整个梯度向量。
"""

SECRET = "TOP-SECRET-OUTSIDE-THE-NOTES-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_notes(root: Path) -> tuple[Path, Path]:
    """(notes folder, a folder beside it holding a secret that must never be opened)."""
    notes = root / "notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    (notes / "自监督.md").write_text(SSL_NOTE, encoding="utf-8")
    (notes / "梯度裁剪.md").write_text(HOSTILE_NOTE, encoding="utf-8")
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(f"# secret\n\n{SECRET}\n", encoding="utf-8")
    return notes, outside


def add_escape_links(notes: Path, outside: Path) -> None:
    """Symlinks inside the notes folder that lead out of it (made after the ingest)."""
    (notes / "link.md").symlink_to(outside / "secret.md")
    (notes / "outdir").symlink_to(outside, target_is_directory=True)


def ui_settings(data_dir: Path, notes: Path | None, **kw):
    from assistant.settings import load_settings

    # short answers and prompts: these tests check the UI, not the model's prose; the model
    # writes the answer (answer_style passages), so that there is a stream to watch
    base = dict(data_dir=data_dir, notes_dir=notes, llm="embedded", max_answer_tokens=96, prompt_passages=3,
                prompt_chars=1400, answer_style="passages")
    base.update(kw)
    return load_settings(**base)


@pytest.fixture(scope="module")
def env(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("ui-api")
    mp = pytest.MonkeyPatch()
    mp.setenv("NOTES_ASSISTANT_CONFIG", str(root / "no-config.toml"))
    notes, outside = make_notes(root)
    from ingest.pipeline import run_ingest

    settings = ui_settings(root / "data", notes)
    run_ingest(settings, notes, embedder=embedder)
    add_escape_links(notes, outside)
    from assistant import ui

    demo, url = ui.launch(settings, port=free_port(), block=False, quiet=True)
    yield {"root": root, "notes": notes, "outside": outside, "settings": settings, "url": url, "demo": demo}
    demo.close()
    mp.undo()


def client(url: str, **kw) -> Client:
    return Client(url, verbose=False, **kw)


def text_of(message: dict) -> str:
    content = message["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def ask(c: Client, question: str) -> tuple[list[tuple], tuple]:
    """Every streamed update of one question, and the final outputs."""
    job = c.submit(question, api_name="/ask")
    updates = list(job)
    return updates, job.result()


# --- opening notes: only inside the notes folder --------------------------------------

def test_safe_note_path_refuses_everything_outside(tmp_path):
    from assistant.notes_access import NoteAccessError, safe_note_path

    notes, outside = make_notes(tmp_path)
    add_escape_links(notes, outside)
    ok = safe_note_path(notes, "深度学习/transformer.md")
    assert ok == (notes / "深度学习" / "transformer.md").resolve()
    # an absolute path is judged by where it lands, like any other
    assert safe_note_path(notes, str(notes / "glossary.txt")) == (notes / "glossary.txt").resolve()
    assert safe_note_path(notes, "深度学习/../glossary.txt") == (notes / "glossary.txt").resolve()
    bad = ["../outside/secret.md", str(outside / "secret.md"), "/etc/passwd", "link.md", "outdir/secret.md",
           "深度学习/../../outside/secret.md", ".obsidian/workspace.json", "image-list.csv", "missing.md",
           "", "glossary.txt\x00.md", "深度学习"]
    for rel in bad:
        with pytest.raises(NoteAccessError):
            safe_note_path(notes, rel)
    # a note on disk that the index does not know is refused when the index is given
    with pytest.raises(NoteAccessError):
        safe_note_path(notes, "glossary.txt", indexed={"深度学习/transformer.md"})


def test_open_note_api_shows_lines_and_refuses_paths_outside(env):
    c = client(env["url"])
    out = c.predict("深度学习/transformer.md:22", api_name="/open_note")
    lines = (env["notes"] / "深度学习" / "transformer.md").read_text(encoding="utf-8").split("\n")
    assert 'class="na-hit"><td class="na-ln">22</td>' in out
    assert lines[21][:20] in out  # the cited line's own text, with its number
    assert '<td class="na-ln">14</td>' in out and '<td class="na-ln">30</td>' in out  # context around it
    for attempt in ["../outside/secret.md", str(env["outside"] / "secret.md"), "/etc/passwd", "link.md",
                    "outdir/secret.md:1", "深度学习/../../outside/secret.md:3", "%2e%2e/outside/secret.md"]:
        got = c.predict(attempt, api_name="/open_note")
        assert SECRET not in got and "root:" not in got, attempt
        assert "na-refused" in got, (attempt, got)


def test_gradio_file_route_does_not_serve_notes(env):
    import httpx

    target = env["notes"] / "深度学习" / "transformer.md"
    for path in (str(target), str(env["outside"] / "secret.md")):
        r = httpx.get(env["url"].rstrip("/") + "/gradio_api/file=" + path, timeout=10)
        assert r.status_code >= 400, (path, r.status_code)
        assert SECRET not in r.text and "Vaswani" not in r.text


# --- asking ----------------------------------------------------------------------------

def test_ask_streams_an_answer_with_numbered_sources(env):
    c = client(env["url"])
    updates, final = ask(c, "多头注意力用了几个头？")
    msg, chat, sources_md, pick, answer = final
    assert msg == ""
    assert [m["role"] for m in chat] == ["user", "assistant"]
    # streamed: checked sentences were shown before the final update, each a beginning of the
    # final answer (nothing shown is withdrawn)
    partial = [text_of(u[1][-1]) for u in updates[:-1] if len(u[1]) == 2]
    grown = {p for p in partial if p and p != "…"}
    assert grown, partial
    final_text = text_of(chat[-1])
    assert all(final_text.startswith(p.rstrip()) or p.rstrip() in final_text for p in grown), (grown, final_text)
    assert answer["sources"], answer
    assert answer["sources"][0]["file"] == "深度学习/transformer.md"
    assert "深度学习/transformer.md" in sources_md
    final_text = text_of(chat[-1])
    assert "Traceback" not in final_text and not answer.get("error")
    for cit in answer["citations"]:  # every [n] in the answer is the [n] of the Sources panel
        assert f"[{cit['n']}]" in answer["answer"]
        assert f"**[{cit['n']}]** <code>{cit['file']}</code> · lines" in sources_md
        assert f"{cit['file']}:{cit['line_start']}" in final_text
        assert cit["quote"].split("\n")[0][:10] in sources_md.replace("<mark>", "").replace("</mark>", "")
    # the dropdown offers the same sources, ready to open
    refs = [v for _, v in pick["choices"]]
    assert any(r.startswith("深度学习/transformer.md:") for r in refs)


def test_refused_question_shows_nearest_notes(env):
    c = client(env["url"])
    _, (msg, chat, sources_md, pick, answer) = ask(c, "量子计算机用什么冷却？")
    assert answer["refused"] is True and not answer["citations"]
    assert "Nearest notes" in sources_md
    assert answer["sources"][0]["file"] in sources_md
    assert pick["choices"]


def test_follow_up_uses_the_sessions_history_and_sessions_are_isolated(env):
    a, b = client(env["url"]), client(env["url"])
    ask(a, "MAE 是什么？")
    _, (_, chat_a, md_a, _, ans_a) = ask(a, "它的掩码率呢？")
    assert [m["role"] for m in chat_a] == ["user", "assistant"] * 2
    sq = ans_a.get("standalone_question")
    assert sq and "MAE" in sq, ans_a  # rewritten with the conversation
    assert f"Follow-up read as:* **{sq}**" in md_a
    assert ans_a["sources"][0]["file"] == "自监督.md" and ans_a["sources"][0]["line_start"] == 5  # the MAE part

    # another browser session: no trace of the first one's conversation
    _, (_, chat_b, md_b, _, ans_b) = ask(b, "它的掩码率呢？")
    assert [m["role"] for m in chat_b] == ["user", "assistant"]
    assert "MAE 是什么" not in str(chat_b)
    assert "standalone_question" not in ans_b and "Follow-up read as" not in md_b

    # a new chat forgets the conversation
    a.predict(api_name="/new_chat")
    _, (_, chat_a2, _, _, ans_a2) = ask(a, "它的掩码率呢？")
    assert [m["role"] for m in chat_a2] == ["user", "assistant"]
    assert "standalone_question" not in ans_a2


def test_new_chat_mid_answer_stops_it_writing_into_the_new_chat(env):
    c, other = client(env["url"]), client(env["url"])
    job = c.submit("缩放点积注意力为什么要除以 √d_k？", api_name="/ask")
    deadline = time.time() + 240
    while time.time() < deadline and not any(  # wait until the answer is streaming
            len(o[1]) == 2 and len(text_of(o[1][-1])) > 3 for o in job.outputs()):
        time.sleep(0.05)
    assert not job.done(), "the answer finished before New chat could be pressed"
    other_job = other.submit("多头注意力用了几个头？", api_name="/ask")  # another session, queued behind
    c.predict(api_name="/new_chat")
    _, chat, _, _, answer = job.result(timeout=240)
    assert chat == [] and answer is None  # the abandoned answer left the new chat empty
    _, (_, chat, md, _, answer) = ask(c, "Dropout 常用的丢弃概率是多少？")
    assert [m["role"] for m in chat] == ["user", "assistant"] and not answer.get("error")
    assert "深度学习/正则化.md" in md
    # New chat in one session does not touch another session's answer
    _, other_chat, _, _, other_answer = other_job.result(timeout=240)
    assert [m["role"] for m in other_chat] == ["user", "assistant"] and other_answer["sources"]


def test_hostile_note_text_is_escaped(env):
    c = client(env["url"])
    _, (_, chat, sources_md, _, answer) = ask(c, "梯度裁剪的阈值是多少？")
    assert answer["sources"][0]["file"] == "梯度裁剪.md"
    assert "<script" not in sources_md and "<img" not in sources_md
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in sources_md
    for m in chat:
        assert "<script" not in text_of(m) and "<img" not in text_of(m)
    viewer = c.predict("梯度裁剪.md:3", api_name="/open_note")
    assert "<script" not in viewer and "<img" not in viewer
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in viewer


def test_status_and_reingest(env):
    c = client(env["url"])
    status = c.predict(api_name="/status")
    assert str(env["notes"].resolve()) in status
    from ingest.load import walk

    # link.md and outdir/ (made after the ingest) lead outside the folder: not notes of it (issue 16)
    indexed = len(walk(env["notes"]).notes)
    assert f"{indexed} files" in status
    assert "embedded:" in status and "runs in-process" in status
    new = env["notes"] / "新笔记.md"
    new.write_text("# 学习率预热\n\n预热（warmup）阶段的步数通常取总步数的百分之五。\n", encoding="utf-8")
    try:
        status2, msg = c.predict(api_name="/reingest")
        assert msg.startswith("✅"), msg
        found = walk(env["notes"]).notes
        # the new note only: the links out of the folder are skipped by the ingest too
        assert f"{len(found) - indexed} added" in msg and len(found) - indexed == 1, msg
        assert f"{len(found)} files" in status2
        assert "na-hit" in c.predict("新笔记.md:3", api_name="/open_note")
        # outside the notes folder once resolved: neither indexed nor opened
        assert "na-refused" in c.predict("link.md", api_name="/open_note")
    finally:
        new.unlink()


def test_progress_adapter_reports_ingest_stages(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTES_ASSISTANT_CONFIG", str(tmp_path / "no-config.toml"))
    from assistant.indexing import ingest_notes
    from assistant.progress import CallbackProgress

    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(3):
        (notes / f"n{i}.md").write_text(f"# 笔记 {i}\n\n第 {i} 条笔记的内容，关于优化器和学习率。\n", encoding="utf-8")
    calls = []
    adapter = CallbackProgress(lambda value, desc=None, unit=None: calls.append((value, desc)))
    ingest_notes(ui_settings(tmp_path / "data", notes), notes, progress=adapter)
    reading = [v for v, d in calls if d == "reading notes"]
    assert reading[0] == (0, 3) and reading[-1] == (3, 3)
    embedding = [v for v, d in calls if d == "embedding chunks"]
    assert embedding and embedding[-1][0] == embedding[-1][1] > 0


# --- errors are messages, never tracebacks ---------------------------------------------

def test_no_index_and_ollama_down_are_readable_messages(env, tmp_path):
    from assistant import ui

    empty = ui_settings(tmp_path / "empty-data", None)
    down_port = free_port()  # nothing listens there
    down = ui_settings(env["settings"].data_dir, env["notes"], llm="ollama:qwen2.5:7b",
                         ollama_host=f"http://127.0.0.1:{down_port}")
    apps = [ui.launch(s, port=free_port(), block=False, quiet=True, warm=False) for s in (empty, down)]
    try:
        _, (_, chat, _, _, _) = ask(client(apps[0][1]), "多头注意力用了几个头？")
        text = text_of(chat[-1])
        assert text.startswith("⚠️") and "ingest" in text and "Traceback" not in text
        status = client(apps[0][1]).predict(api_name="/status")
        assert "nothing yet" in status

        _, (_, chat, sources_md, _, answer) = ask(client(apps[1][1]), "多头注意力用了几个头？")
        text = text_of(chat[-1])
        assert "⚠️" in text and "Ollama is not running" in text and "Traceback" not in text
        assert "深度学习/transformer.md" in sources_md  # retrieval still worked
        status = client(apps[1][1]).predict(api_name="/status")
        assert "not reachable" in status
    finally:
        for demo, _ in apps:
            demo.close()


# --- serving -------------------------------------------------------------------------

def test_exposure_warnings():
    from assistant.ui import exposure_warnings, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert exposure_warnings("127.0.0.1", None, False) == []
    w = exposure_warnings("0.0.0.0", None, False)
    assert len(w) == 1 and "--auth" in w[0]
    assert "plain HTTP" in exposure_warnings("0.0.0.0", ("u", "p"), False)[0]
    assert any("public link" in x for x in exposure_warnings("127.0.0.1", None, True))


def test_cli_ui_warns_off_loopback_and_auth_protects_it(env):
    port = free_port()
    cmd = [sys.executable, "-m", "assistant.cli", "ui", "--host", "0.0.0.0", "--port", str(port),
           "--auth", "alice:s3cret", "--data-dir", str(env["settings"].data_dir), "--notes", str(env["notes"]),
           "--llm", "embedded"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}/"
        import httpx

        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.5)
        with pytest.raises(Exception):
            client(url).predict(api_name="/status")  # no credentials: refused
        status = client(url, auth=("alice", "s3cret")).predict(api_name="/status")
        assert str(env["notes"].resolve()) in status
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "warning: binding to 0.0.0.0" in err and "protected by --auth" in err
    assert "public link" not in err  # never shared unless asked


def test_cli_ui_rejects_bad_auth():
    r = subprocess.run([sys.executable, "-m", "assistant.cli", "ui", "--auth", "nopassword"], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --auth takes user:password (both non-empty)"
