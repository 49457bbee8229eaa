"""`assistant mcp` driven by the official MCP SDK's own stdio client: the real console script
as a subprocess, the real protocol (initialize, tools/list, tools/call)."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from conftest import ASSISTANT, REPO, assert_at_lines, cli_env, make_settings, read_lines, run_cli  # noqa: E402

ASK_KEYS = {"question", "answer", "citations", "sources", "refused", "llm", "timings_ms"}


@pytest.fixture(scope="module")
def mcp_env(tmp_path_factory, examples_notes, embedder):
    from ingest.pipeline import run_ingest

    root = tmp_path_factory.mktemp("mcp")
    notes = root / "notes"
    shutil.copytree(examples_notes, notes)
    (root / "secret.md").write_text("# secret\n\nTOP-SECRET-OUTSIDE-THE-NOTES\n", encoding="utf-8")
    data = root / "data"
    run_ingest(make_settings(data), notes, embedder=embedder)
    # made after the ingest: a link leading out of the folder, and a note the index does not hold
    (notes / "link.md").symlink_to(root / "secret.md")
    (notes / "later.md").write_text("# later\n\nnot ingested yet\n", encoding="utf-8")
    return notes, data


def session(data, coro_fn, **env):
    params = StdioServerParameters(command=str(ASSISTANT), args=["mcp"], cwd=str(REPO),
                                   env=cli_env(data, NOTES_ASSISTANT_LLM="embedded", **env))

    async def run():
        async with Client(params, read_timeout_seconds=600) as client:
            return await coro_fn(client)

    return asyncio.run(run())


def structured(result):
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_tools_search_read_and_refusals(mcp_env):
    notes, data = mcp_env

    async def go(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        search = await client.call_tool("search_notes", {"query": "Adam 优化器默认的学习率", "top_k": 3})
        read = await client.call_tool("read_note", {"file": "optim/adam.md", "line_start": 2, "line_end": 4})
        whole = await client.call_tool("read_note", {"file": "深度学习/transformer.md"})
        bad = {what: await client.call_tool("read_note", {"file": f}) for what, f in (
            ("dotdot", "../secret.md"), ("absolute", str(notes.parent / "secret.md")), ("link", "link.md"),
            ("hidden", ".obsidian/workspace.json"), ("not indexed", "later.md"), ("not a note", "image-list.csv"))}
        past_end = await client.call_tool("read_note", {"file": "optim/adam.md", "line_start": 9999})
        refused = await client.call_tool("ask_notes", {"question": "红烧肉怎么做才好吃？"})
        empty = await client.call_tool("ask_notes", {"question": "   "})
        return tools, search, read, whole, bad, past_end, refused, empty

    tools, search, read, whole, bad, past_end, refused, empty = session(data, go)
    assert set(tools) == {"search_notes", "ask_notes", "read_note"}
    assert "query" in tools["search_notes"].input_schema["properties"]
    assert tools["read_note"].annotations.read_only_hint is True

    got = structured(search)["result"]
    cli = json.loads(run_cli(["search", "Adam 优化器默认的学习率", "--json", "--top-k", "3"], data).stdout)
    assert [(s["file"], s["line_start"], s["line_end"], s["text"]) for s in got] == \
           [(s["file"], s["line_start"], s["line_end"], s["text"]) for s in cli]  # the sources list of search --json
    assert got[0]["file"] == "optim/adam.md"
    for s in got:
        assert_at_lines(read_lines(notes / s["file"]), s["text"], s["line_start"], s["line_end"], s["file"])

    r = structured(read)
    lines = read_lines(notes / "optim/adam.md")
    assert r["file"] == "optim/adam.md" and (r["line_start"], r["line_end"]) == (2, 4)
    assert [(ln["n"], ln["text"]) for ln in r["lines"]] == [(n, lines[n - 1]) for n in (2, 3, 4)]
    w = structured(whole)
    assert w["lines"][0]["n"] == 1 and len(w["lines"]) == w["total_lines"] >= 20

    for what, res in bad.items():
        msg = error_text(res)
        assert "TOP-SECRET" not in msg, what
        assert ("outside" in msg or "refused" in msg or "not an indexed note" in msg or "not a note" in msg), (what, msg)
    assert "outside the notes folder" in error_text(bad["dotdot"])
    assert "not an indexed note" in error_text(bad["not indexed"])
    assert "past its end" in error_text(past_end)

    out = structured(refused)
    assert ASK_KEYS <= set(out) and out["refused"] is True and out["citations"] == []
    assert out["llm"] is None  # the gate refused: no model was loaded for it
    assert "empty" in error_text(empty)


def test_mcp_without_index_is_one_line(tmp_path):
    import subprocess

    p = subprocess.run([str(ASSISTANT), "mcp"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=cli_env(tmp_path / "none"))
    assert p.returncode == 2 and p.stdout == ""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "assistant ingest" in lines[0], p.stderr


@pytest.mark.llm
def test_ask_notes_answers_with_checked_citations(mcp_env):
    notes, data = mcp_env

    async def go(client):
        return await client.call_tool("ask_notes", {"question": "Adam 优化器默认的学习率是多少？"})

    out = structured(session(data, go))
    assert ASK_KEYS <= set(out), out
    assert out["refused"] is False and out["llm"], out
    assert out["answer"].strip() and out["citations"], out
    assert any(c["file"] == "optim/adam.md" for c in out["citations"]), out
    for c in out["citations"]:
        seg = "\n".join(read_lines(notes / c["file"])[c["line_start"] - 1:c["line_end"]])
        assert c["quote"] in seg and f"[{c['n']}]" in out["answer"], c
