"""The `assistant` console script, run for real in a subprocess.

Errors must be one line on stderr with a non-zero exit and never a traceback; JSON
outputs follow the contract in DESIGN.md; line numbers point at the real text.
The ``llm`` tests answer questions over ../shared/notes with the embedded model.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from conftest import ASSISTANT, assert_at_lines, read_lines, run_cli
from ingest.load import read_note, walk
from ingest.pipeline import IngestSummary
from ingest.split import split_text

SOURCE_FIELDS = {"file": str, "line_start": int, "line_end": int, "text": str, "score": (int, float)}


def one_line_error(proc, *needles: str) -> str:
    """The process failed with exactly one line on stderr, no traceback; returns the line."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def parse_json(proc, ok=(0,)):
    assert proc.returncode in ok, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def test_console_script_is_installed():
    assert ASSISTANT.is_file()


def test_ingest_json_summary(cli_examples, examples_notes):
    data, proc = cli_examples
    summary = parse_json(proc)
    assert set(summary) == {f.name for f in fields(IngestSummary)}
    found = walk(examples_notes)
    chunks = sum(len(split_text(read_note(n)[0], n.rel)) for n in found.notes)
    assert summary["notes_dir"] == str(examples_notes.resolve())
    assert Path(summary["index_dir"]).is_dir() and Path(summary["index_dir"]).is_relative_to(data)
    assert summary["files"] == summary["added"] == len(found.notes)
    assert summary["skipped"] == len(found.skipped) >= 1
    assert summary["chunks"] == summary["chunks_embedded"] == chunks
    assert (summary["changed"], summary["removed"], summary["renamed"], summary["unchanged"]) == (0, 0, 0, 0)
    assert summary["unreadable"] == 0 and summary["warnings"] == []
    assert summary["seconds"] > 0
    assert "Traceback" not in proc.stderr


def test_ingest_again_prints_one_summary_line(cli_examples):
    data, first = cli_examples
    summary = parse_json(first)
    proc = run_cli(["ingest"], data)  # no folder: the last one ingested
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert f"{summary['files']} unchanged" in last
    assert f"{summary['chunks']} chunks (0 embedded" in last


def test_ask_before_any_ingest(tmp_path):
    for args in (["ask", "MAE 的掩码率是多少？"], ["ask", "MAE 的掩码率是多少？", "--json"]):
        proc = run_cli(args, tmp_path / "empty-data")
        one_line_error(proc, "assistant ingest")


def test_status_before_any_ingest_runs(tmp_path):
    proc = run_cli(["status", "--json"], tmp_path / "empty-data")
    info = parse_json(proc)
    assert "assistant ingest" in info["index"]["error"]


def test_ingest_missing_folder(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    one_line_error(run_cli(["ingest", str(missing)], tmp_path / "d"), str(missing), "does not exist")


def test_ingest_folder_without_notes(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "data.csv").write_text("a,b\n", encoding="utf-8")
    one_line_error(run_cli(["ingest", str(folder)], tmp_path / "d"), "no notes", "1 other files skipped")


def test_empty_question(tmp_path):
    one_line_error(run_cli(["ask", ""], tmp_path / "d"), "empty")
    one_line_error(run_cli(["ask", "   ", "--json"], tmp_path / "d"), "empty")


def test_other_embedding_model_then_rebuild(tmp_path, embedder):
    from conftest import make_settings
    from ingest.index import Manifest, index_dir_for
    from ingest.pipeline import run_ingest

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "n.md").write_text("# Warmup\n\nWarmup raises the learning rate linearly at the start.\n",
                                encoding="utf-8")
    data = tmp_path / "data"
    first = run_ingest(make_settings(data), notes, embedder=embedder)
    idx = index_dir_for(data, notes)
    m = Manifest.load(idx)
    model = m.embed_model
    m.embed_model = "ollama:other-model"
    m.save(idx)
    one_line_error(run_cli(["search", "warmup"], data), "ollama:other-model", "--rebuild")
    one_line_error(run_cli(["ingest", str(notes)], data), "ollama:other-model", "--rebuild")
    rebuilt = parse_json(run_cli(["ingest", str(notes), "--rebuild", "--json"], data))
    assert rebuilt["chunks_embedded"] == rebuilt["chunks"] == first.chunks == 1
    assert Manifest.load(idx).embed_model == model


@pytest.mark.parametrize("query,expected", [
    ("Adam 优化器默认的学习率和 beta 是多少？", "optim/adam.md"),
    ("批量归一化是谁在哪一年提出的？", "归一化-gbk.txt"),  # the GBK file: lines must match the decoded text
])
def test_search_json_sources_contract(cli_examples, examples_notes, query, expected):
    data, _ = cli_examples
    sources = parse_json(run_cli(["search", query, "--json", "--top-k", "4"], data))
    assert isinstance(sources, list) and 1 <= len(sources) <= 4
    for s in sources:
        for key, typ in SOURCE_FIELDS.items():
            assert isinstance(s[key], typ), (key, s)
        lines = read_lines(examples_notes / s["file"])
        assert_at_lines(lines, s["text"], s["line_start"], s["line_end"], s["file"])
        for other in s.get("also_in", []):
            assert_at_lines(read_lines(examples_notes / other["file"]), s["text"], other["line_start"],
                            other["line_end"], other["file"])
    assert expected in [s["file"] for s in sources[:2]]
    scores = [s["score"] for s in sources]
    assert scores == sorted(scores, reverse=True)


def test_search_human_output(cli_examples):
    data, _ = cli_examples
    proc = run_cli(["search", "Adam 默认学习率"], data)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "optim/adam.md" in proc.stdout


def test_status(cli_examples, examples_notes):
    from assistant.models import embedder_id

    data, first = cli_examples
    summary = parse_json(first)
    info = parse_json(run_cli(["status", "--json"], data))
    assert info["index"]["files"] == summary["files"]
    assert info["index"]["chunks"] == summary["chunks"]
    assert info["index"]["embed_model"] == embedder_id("e5")
    assert info["index"]["notes_dir"] == str(examples_notes.resolve())
    assert Path(info["settings"]["data_dir"]) == data
    assert "llm" in info
    proc = run_cli(["status"], data)
    assert proc.returncode == 0 and proc.stdout.strip() and "Traceback" not in proc.stderr


# --- end to end with the embedded model over ../shared/notes ----------------------------------

# (question, file prefix the answer must cite, a fact the answer must state)
FACTS = [
    ("MAE 的掩码率是多少？", "001", "75%"),
    ("What top-1 accuracy does ViT-Huge reach on ImageNet-1K when pre-trained with MAE?", "001", "87.8"),
    ("How many image-text pairs was CLIP trained on?", "000", "400"),
    ("ThunderNet 的输入分辨率是多少？", "002", "320"),
]
OFF_TOPIC = ["红烧肉怎么做才好吃？", "How do I bake sourdough bread at home?"]


def _ask(shared_index, question: str) -> dict:
    proc = run_cli(["ask", question, "--json"], shared_index.data_dir, timeout=600,
                   NOTES_ASSISTANT_LLM="embedded")
    out = parse_json(proc, ok=(0, 4))
    assert proc.returncode == (4 if out["refused"] else 0), (proc.returncode, out["refused"])  # 4: refused
    for key in ("question", "answer", "citations", "sources", "refused", "llm", "timings_ms"):
        assert key in out, key
    assert out["question"] == question
    for s in out["sources"]:
        for key, typ in SOURCE_FIELDS.items():
            assert isinstance(s[key], typ), (key, s)
        assert_at_lines(read_lines(shared_index.notes_dir / s["file"]), s["text"], s["line_start"], s["line_end"])
    return out


@pytest.mark.llm
@pytest.mark.shared
@pytest.mark.parametrize("question,prefix,fact", FACTS, ids=[f"{p}-{f}-{'en' if q.isascii() else 'zh'}"
                                                               for q, p, f in FACTS])
def test_ask_json_factual(shared_index, question, prefix, fact):
    out = _ask(shared_index, question)
    shown = json.dumps({k: out[k] for k in ("answer", "refused", "citations", "warnings") if k in out},
                       ensure_ascii=False)[:1500]
    assert out["refused"] is False, shown
    # the embedded default quotes the best note sentences, in any language of the question
    assert out["llm"] == "extractive", out["llm"]
    assert fact.lower() in out["answer"].lower().replace(" ", ""), shown
    assert out["citations"], shown
    expected = [f.name for f in shared_index.notes_dir.glob(f"{prefix}_*.txt")]
    assert len(expected) == 1
    assert any(c["file"] == expected[0] for c in out["citations"]), shown
    for c in out["citations"]:
        lines = read_lines(shared_index.notes_dir / c["file"])
        assert 1 <= c["line_start"] <= c["line_end"] <= len(lines)
        assert c["quote"].strip() and c["quote"] in "\n".join(lines[c["line_start"] - 1:c["line_end"]]), c
        assert f"[{c['n']}]" in out["answer"]
    # the fact the answer states is in what it cites
    assert any(fact.lower() in c["quote"].lower().replace(" ", "") for c in out["citations"]
               if c["file"] == expected[0]), shown


@pytest.mark.llm
@pytest.mark.shared
@pytest.mark.parametrize("question", OFF_TOPIC, ids=["zh", "en"])
def test_ask_json_off_topic_is_refused(shared_index, question):
    out = _ask(shared_index, question)
    assert out["refused"] is True, out["answer"]
    assert out["citations"] == []
    assert "[1]" not in out["answer"]
