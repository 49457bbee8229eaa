"""`assistant chat` driven through a real pseudo-terminal (pexpect): readline editing and its
history file, /sources, /open N, /new, /quit, Ctrl-D; with the embedded model, a streamed answer
and a follow-up condensed with the conversation."""

from __future__ import annotations

import re
import shutil
import time

import pytest

pexpect = pytest.importorskip("pexpect")

from conftest import ASSISTANT, REPO, cli_env, make_settings  # noqa: E402

SSL_NOTE = """# 自监督预训练

## MAE

MAE（Masked Autoencoders）是何恺明等人提出的视觉自监督预训练方法：把图片切成 patch，随机遮住其中一大部分，再让模型重建被遮住的像素。MAE 采用非对称的编码器-解码器结构，编码器只处理可见的 patch。

MAE 的掩码率很高，默认遮住 75% 的 patch。

## BERT

BERT 用掩码语言模型（Masked Language Model）做预训练：随机选出输入中的一部分词元替换成 [MASK]，再让模型预测原来的词。

BERT 的掩码率是 15%。
"""
OFF_TOPIC = "红烧肉怎么做才好吃？"
LEFT, UP = "\x1b[D", "\x1b[A"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r")


@pytest.fixture
def chat_env(tmp_path, examples_notes, embedder):
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    shutil.copytree(examples_notes, notes)
    (notes / "自监督.md").write_text(SSL_NOTE, encoding="utf-8")
    data = tmp_path / "data"
    run_ingest(make_settings(data), notes, embedder=embedder)
    # answer_style passages: the model writes the answer, so that there is something to stream
    return notes, data, cli_env(data, NOTES_ASSISTANT_LLM="embedded", NOTES_ASSISTANT_ANSWER_STYLE="passages",
                                TERM="xterm")


def spawn(env, *args):
    child = pexpect.spawn(str(ASSISTANT), ["chat", *args], env=env, cwd=str(REPO), encoding="utf-8",
                          timeout=120, dimensions=(50, 220))
    child.expect("/quit")  # the banner
    child.expect_exact("> ")
    return child


def upto_prompt(child, timeout=120) -> str:
    child.expect_exact("\n> ", timeout=timeout)
    return ANSI.sub("", child.before)


def test_chat_commands_line_editing_and_history_file(chat_env):
    notes, data, env = chat_env
    child = spawn(env)
    child.sendline(OFF_TOPIC)
    out = upto_prompt(child)
    assert "笔记中没有相关内容" in out, out
    child.sendline("/sources")
    out = upto_prompt(child)
    assert "nearest notes" in out and re.search(r"1\. \S+:\d+", out), out
    first = re.search(r"1\. (\S+):(\d+)(?:-(\d+))?", out)
    file, a = first.group(1), int(first.group(2))
    b = int(first.group(3) or a)
    # readline editing: type "/ope 1", move left twice, insert the missing "n"
    child.send("/ope 1" + LEFT + LEFT + "n\r")
    out = upto_prompt(child)
    assert f"{file} · lines" in out, out
    lines = (notes / file).read_bytes()
    from conftest import read_lines

    text = read_lines(notes / file)
    for n in range(a, b + 1):
        shown = re.search(rf"^→ +{n} │ (.*)$", out, re.M)
        assert shown and shown.group(1).rstrip() == text[n - 1].rstrip(), (n, out)
    assert lines
    # up arrow recalls the last line
    child.send(UP + "\r")
    assert f"{file} · lines" in upto_prompt(child)
    child.sendline("/open 99")
    assert "no source 99" in upto_prompt(child)
    child.sendline("/bogus")
    assert "unknown command /bogus" in upto_prompt(child)
    child.sendline("/new")
    assert "new conversation" in upto_prompt(child)
    child.sendline("/sources")
    assert "no sources yet" in upto_prompt(child)
    child.sendcontrol("c")  # Ctrl-C at the prompt: a fresh prompt, not an exit
    child.expect_exact("> ")
    child.sendline("/quit")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 0, child.before
    hist = (data / "chat-history").read_text(encoding="utf-8")
    assert OFF_TOPIC in hist and "/open 1" in hist and "/quit" in hist

    # a new session: the history file is read back (up arrow gives "/quit", which quits)
    child = spawn(env)
    child.send(UP + "\r")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 0
    # Ctrl-D quits too
    child = spawn(env)
    child.sendeof()
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 0


def test_chat_without_index_is_one_line(tmp_path):
    child = pexpect.spawn(str(ASSISTANT), ["chat"], env=cli_env(tmp_path / "none"), encoding="utf-8", timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    out = ANSI.sub("", child.before).strip()
    assert out.startswith("error:") and "assistant ingest" in out and "Traceback" not in out, out


@pytest.mark.llm
def test_chat_streams_and_condenses_follow_ups(chat_env):
    notes, data, env = chat_env
    child = spawn(env)
    child.sendline("MAE 是什么？")
    child.expect("MAE 是什么？")  # the echo of the typed line
    # the answer as it arrives: (time, text) of each read from the terminal
    pieces, buf = [], ""
    while "\n> " not in buf:
        try:
            got = child.read_nonblocking(4096, timeout=240)
        except pexpect.TIMEOUT:
            raise AssertionError(f"no prompt after the answer: {buf!r}") from None
        pieces.append((time.monotonic(), got))
        buf += got
    out = ANSI.sub("", buf)
    assert "Sources: [1] 自监督.md:" in out, out
    assert "follow-up read as" not in out
    # a read may end with the sources line; only its answer text counts
    answer_at = [t for t, text in pieces if ANSI.sub("", text).split("Sources:")[0].strip()]
    assert len(answer_at) >= 2 and answer_at[-1] - answer_at[0] > 0.1, \
        f"the answer was not streamed: {[(round(t - pieces[0][0], 2), x) for t, x in pieces]}"

    child.sendline("/open 1")
    out = upto_prompt(child)
    assert "自监督.md · lines" in out and re.search(r"^→ +\d+ │ .*MAE", out, re.M), out

    child.sendline("它的掩码率呢？")
    out = upto_prompt(child, timeout=240)
    read_as = re.search(r"\(follow-up read as: (.*)\)", out)
    assert read_as and "MAE" in read_as.group(1), out  # rewritten with the conversation, as the web chat does
    assert "自监督.md" in out, out

    child.sendline("/new")
    upto_prompt(child)
    child.sendline("它的掩码率呢？")
    out = upto_prompt(child, timeout=240)
    assert "follow-up read as" not in out, out  # a new conversation: nothing to condense with
    child.sendline("/quit")
    child.expect(pexpect.EOF, timeout=30)
