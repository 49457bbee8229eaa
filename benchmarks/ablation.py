"""Retrieval ablation over graded suites: which chunking and fusion settings find the
expected files (hit@1, hit@5, MRR), Chinese and English questions apart.

    .venv/bin/python benchmarks/ablation.py examples/suites/markdown-zh.yaml examples/suites/seed-notes.yaml
    .venv/bin/python benchmarks/ablation.py SUITE.yaml --json --rewrite   # also an LLM query-rewrite step

Each chunking variant is ingested once into its own data dir under --work (kept between
runs, so a second run only re-measures). Fusion variants reuse those indexes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHUNKING = [
    {"chunk_chars": 400, "embed_headings": True},  # shipped default
    {"chunk_chars": 200, "embed_headings": True},
    {"chunk_chars": 800, "embed_headings": True},
    {"chunk_chars": 400, "embed_headings": False},
]
DEFAULT_FUSION = {"vector_weight": 1.0, "keyword_weight": 1.0, "char_weight": 0.25, "code_penalty": 0.5,
                  "question_penalty": 0.5}
# each variant changes the default in the named way
FUSION = [
    {"name": "dense 1, words 1, chars 0.25 (default)"},
    {"name": "no character list", "char_weight": 0.0},
    {"name": "chars 0.5", "char_weight": 0.5},
    {"name": "chars 1", "char_weight": 1.0},
    {"name": "no exercise penalty", "question_penalty": 1.0},
    {"name": "no code penalty", "code_penalty": 1.0},
    {"name": "code x0.2", "code_penalty": 0.2},
    {"name": "dense 1, words 0.5", "keyword_weight": 0.5},
    {"name": "dense 0.5, words 1", "vector_weight": 0.5},
    {"name": "dense only", "keyword_weight": 0.0, "char_weight": 0.0},
    {"name": "words only", "vector_weight": 0.0, "char_weight": 0.0},
    {"name": "words + chars (no dense)", "vector_weight": 0.0},
]
CUTOFFS = (1, 3, 5, 10)  # hit@k at each: what a prompt of k passages could hold


def load_cases(suite: Path):
    data = yaml.safe_load(suite.read_text(encoding="utf-8"))
    notes = (suite.parent / data["notes"]).resolve()
    cases = [c for c in data["cases"] if c.get("sources")]
    return notes, cases


def lang_of(q: str) -> str:
    from assistant.answer import question_language

    return question_language(q)


def grade(ranked_files: list[list[str]], expected: set[str]) -> tuple[float, float, float]:
    """(hit@1, hit@5, reciprocal rank) of the first result that names an expected file."""
    rank = first_rank(ranked_files, expected)
    return (1.0 if rank == 1 else 0.0, 1.0 if rank and rank <= 5 else 0.0, 1.0 / rank if rank else 0.0)


def first_rank(ranked_files: list[list[str]], expected: set[str]) -> int | None:
    for i, files in enumerate(ranked_files):
        if expected & set(files):
            return i + 1
    return None


def measure(qa, cases, rewrite=None) -> dict:
    rows: dict[str, list[int | None]] = {"all": [], "zh": [], "en": []}
    secs = []
    for c in cases:
        q = c["question"]
        t = time.perf_counter()
        if rewrite:
            q = rewrite(q)
        ps = qa.search(q, top_k=max(CUTOFFS))
        secs.append(time.perf_counter() - t)
        rank = first_rank([[l.file for l in p.locations] for p in ps], set(c["sources"]))
        rows["all"].append(rank)
        rows[lang_of(c["question"])].append(rank)
    out = {}
    for k, ranks in rows.items():
        if ranks:
            out[k] = {"n": len(ranks), **{f"hit@{n}": round(statistics.mean(1.0 if r and r <= n else 0.0
                                                                          for r in ranks), 3) for n in CUTOFFS},
                      "mrr": round(statistics.mean(1.0 / r if r else 0.0 for r in ranks), 3)}
    out["seconds_per_question"] = round(statistics.mean(secs), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/notes-assistant-ablation"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rewrite", action="store_true", help="also measure an LLM query-rewrite step")
    ap.add_argument("--only-default-chunking", action="store_true", help="skip the re-chunked variants")
    args = ap.parse_args()

    from assistant.query import NotesAssistant
    from assistant.settings import load_settings
    from ingest.pipeline import run_ingest

    results = []
    for suite in args.suites:
        notes, cases = load_cases(suite)
        if not notes.exists():
            print(f"skip {suite}: {notes} not found", file=sys.stderr)
            continue
        for ch in (CHUNKING[:1] if args.only_default_chunking else CHUNKING):
            data_dir = args.work / f"c{ch['chunk_chars']}-h{int(ch['embed_headings'])}"
            s = load_settings(data_dir=data_dir, **ch)
            t = time.perf_counter()
            summary = run_ingest(s, notes)
            ingest_s = time.perf_counter() - t
            fusions = FUSION if ch == CHUNKING[0] else FUSION[:1]
            for fu in fusions:
                s2 = load_settings(data_dir=data_dir, **ch, **{**DEFAULT_FUSION, **{k: v for k, v in fu.items()
                                                                                     if k != "name"}})
                qa = NotesAssistant(s2, notes_dir=notes)
                r = measure(qa, cases)
                row = {"suite": suite.name, "chunk_chars": ch["chunk_chars"], "headings": ch["embed_headings"],
                       "fusion": fu["name"], "chunks": summary.chunks, "ingest_s": round(ingest_s, 1), **r}
                results.append(row)
                if not args.json:
                    print(_fmt(row), flush=True)
            if args.rewrite and ch == CHUNKING[0]:
                s2 = load_settings(data_dir=data_dir, **ch)
                qa = NotesAssistant(s2, notes_dir=notes)
                rw = _rewriter(qa)
                r = measure(qa, cases, rewrite=rw)
                row = {"suite": suite.name, "chunk_chars": ch["chunk_chars"], "headings": ch["embed_headings"],
                       "fusion": "default + LLM rewrite", "chunks": summary.chunks, "ingest_s": 0, **r}
                results.append(row)
                if not args.json:
                    print(_fmt(row), flush=True)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


def _rewriter(qa):
    """Question -> question + Chinese keywords from the LLM (helps English questions on Chinese notes)."""
    from llama_index.core.llms import ChatMessage

    def rw(q: str) -> str:
        msg = ("把下面的问题改写成用于检索中文笔记的关键词（中文，包含英文术语），只输出关键词：\n" + q)
        out = qa.llm.llm.chat([ChatMessage(role="user", content=msg)]).message.content or ""
        return q + " " + out.strip().split("\n")[0][:100]

    return rw


def _fmt(r: dict) -> str:
    a, zh, en = r.get("all", {}), r.get("zh", {}), r.get("en", {})
    return (f"{r['suite']:<20} chunk={r['chunk_chars']:<4} head={'on ' if r['headings'] else 'off'} "
            f"{r['fusion']:<40} all h@1 {a.get('hit@1')} h@3 {a.get('hit@3')} h@5 {a.get('hit@5')} "
            f"h@10 {a.get('hit@10')} mrr {a.get('mrr')} | "
            f"zh h@5 {zh.get('hit@5')} mrr {zh.get('mrr')} | en h@5 {en.get('hit@5')} mrr {en.get('mrr')} | "
            f"{r['seconds_per_question']:.2f}s/q chunks {r['chunks']}")


if __name__ == "__main__":
    sys.exit(main())
