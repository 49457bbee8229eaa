"""Retrieval ablation over graded suites, before any LLM: does the evidence passage come up?

    .venv/bin/python benchmarks/ablation.py examples/suites/*.yaml --part tune
    .venv/bin/python benchmarks/ablation.py examples/suites/*.yaml --part report --variants baseline,shipped
    .venv/bin/python benchmarks/ablation.py SUITE.yaml --chunking 400,800   # re-chunked indexes too

A hit is the *evidence passage*, not just the right file: a result counts when it names a
source file of the case and its lines overlap the lines that hold the case's `evidence`
(on long Markdown files the right file alone says little). hit@1/3/5/10 and MRR, for all
answerable cases of the part and apart by question language and by whether the question
is in the other language than the notes.

Each chunking is ingested once per suite into its own data dir under --work (kept between
runs). Variants of the keyword tokenizer and the fusion are built in memory over the same
index, through the product's own `fuse()` and retrievers, so a row differs from the
shipped one only in what its name says. Rules and weights are chosen on `--part tune`;
the README and benchmarks/README.md report `--part report`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CUTOFFS = (1, 3, 5, 10)

# each variant: settings overrides (fusion) and keyword options; "shipped" is the product as it is
PLAIN = {"char_weight": 0.0, "code_penalty": 0.0, "question_penalty": 1.0, "vector_weight": 1.0,
         "keyword_weight": 1.0, "term_expansion": False, "stem_english": False, "translate_questions": False,
         "translate_to_chinese": False, "sentence_weight": 0.0}
VARIANTS: dict[str, dict] = {
    # the plain baseline: prose chunks merged within a section, heading path embedded,
    # code left out, e5 + BM25 over jieba / lower-cased words, plain RRF (k=60)
    "baseline": dict(PLAIN),
    "baseline+stem": {**PLAIN, "stem_english": True},
    "baseline+sentences": {**PLAIN, "sentence_weight": 1.0},
    "baseline+sentences.5": {**PLAIN, "sentence_weight": 0.5},
    "baseline+chars.25": {**PLAIN, "char_weight": 0.25},
    "baseline+exercise.5": {**PLAIN, "question_penalty": 0.5},
    "baseline+code.5": {**PLAIN, "code_penalty": 0.5},
    "baseline+terms": {**PLAIN, "term_expansion": True},
    "baseline+translate": {**PLAIN, "translate_questions": True},
    "baseline+translate both ways": {**PLAIN, "translate_questions": True, "translate_to_chinese": True},
    "baseline+stem+terms": {**PLAIN, "stem_english": True, "term_expansion": True},
    "dense only": {**PLAIN, "keyword_weight": 0.0},
    "words only": {**PLAIN, "vector_weight": 0.0},
    "shipped": {},
}


def load(suite: Path, part: str, answerable_only: bool = True):
    """The suite and its answerable cases of ``part`` (the suite's own rule: assistant.eval.Suite.select)."""
    from assistant.eval import load_suite

    s = load_suite(suite)
    cases = [c for c in s.select(part) if c.answerable or not answerable_only]
    return s, cases


def evidence_lines(notes: Path, case) -> dict[str, set[int]]:
    """Per source file, the 1-based lines that hold (a piece of) the case's evidence."""
    quotes = case.evidence if isinstance(case.evidence, list) else [case.evidence]
    out: dict[str, set[int]] = {}
    for f in case.sources:
        try:
            lines = (notes / f).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for q in quotes:
            if not q:
                continue
            for i, line in enumerate(lines, 1):
                if q in line:
                    out.setdefault(f, set()).add(i)
            if not any(q in line for line in lines):  # a quote across lines: every line holding its start
                head = q[:20]
                out.setdefault(f, set()).update(i for i, line in enumerate(lines, 1) if head and head in line)
    return out


def first_rank(passages, ev: dict[str, set[int]]) -> int | None:
    for i, p in enumerate(passages, 1):
        for loc in p.locations:
            want = ev.get(loc.file)
            if want and any(loc.line_start <= n <= loc.line_end for n in want):
                return i
    return None


def _other_language(q: str, notes_lang: str) -> bool:
    from assistant.answer import question_language

    return question_language(q) != notes_lang


def measure(search, cases, notes: Path, notes_lang: str) -> dict:
    from assistant.answer import question_language

    groups: dict[str, list[int | None]] = {"all": [], "zh": [], "en": [], "cross": []}
    secs = []
    for c in cases:
        t = time.perf_counter()
        ps = search(c.question)
        secs.append(time.perf_counter() - t)
        rank = first_rank(ps, evidence_lines(notes, c))
        groups["all"].append(rank)
        groups[question_language(c.question)].append(rank)
        if _other_language(c.question, notes_lang):
            groups["cross"].append(rank)
    out = {}
    for k, ranks in groups.items():
        if ranks:
            out[k] = {"n": len(ranks), **{f"hit@{n}": round(statistics.mean(1.0 if r and r <= n else 0.0
                                                                          for r in ranks), 3) for n in CUTOFFS},
                      "mrr": round(statistics.mean(1.0 / r if r else 0.0 for r in ranks), 3)}
    out["ms_per_question"] = round(1000 * statistics.mean(secs), 1) if secs else 0
    return out


_WORD_INDEX: dict[tuple[str, str, bool], object] = {}


def _word_index(snap, stem_english: bool):
    """A word BM25 over the snapshot's chunks with stemming on or off, built in memory."""
    import bm25s

    from ingest.keywords import tokenize

    # keyed by the index and its snapshot, not id(snap): an id is reused once a snapshot is freed
    key = (str(snap.index_dir), snap.manifest.snapshot, stem_english)
    if key not in _WORD_INDEX:
        bm = bm25s.BM25()
        bm.index([tokenize(c.embed_text, stem_english=stem_english) or ["\x00"] for c in snap.chunks],
                 show_progress=False)
        _WORD_INDEX[key] = bm
    return _WORD_INDEX[key]


def make_search(qa, overrides: dict):
    """The product's search, or the same pipeline with the named parts changed."""
    if not overrides:
        return lambda q: qa.search(q, top_k=max(CUTOFFS))
    from assistant.retrieve import HybridRetriever, KeywordRetriever
    from ingest.keywords import tokenize

    s = qa.settings.model_copy(update={k: v for k, v in overrides.items() if k in type(qa.settings).model_fields})
    r = HybridRetriever(qa.snapshot, s, top_k=max(CUTOFFS))
    stem = bool(overrides.get("stem_english", True))
    r.keyword = KeywordRetriever(qa.snapshot, s.candidates, bm25=_word_index(qa.snapshot, stem),
                                 tokenizer=lambda t: tokenize(t, stem_english=stem))
    return lambda q: r.search(q)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--part", default="tune", choices=["tune", "report", "all"])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--chunking", default="400", help="comma-separated chunk sizes to ingest and compare (each for "
                    "notes of both languages; the shipped sizes are 400 for Chinese notes, 800 for English ones)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/notes-assistant-ablation"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from assistant.query import NotesAssistant
    from assistant.settings import load_settings
    from assistant.indexing import ingest_notes as run_ingest

    results = []
    for suite_path in args.suites:
        suite, cases = load(suite_path, args.part)
        notes = suite.notes_dir
        if not notes.exists():
            print(f"skip {suite_path.name}: {notes} not found", file=sys.stderr)
            continue
        if not cases:
            print(f"skip {suite_path.name}: no answerable cases in part {args.part}", file=sys.stderr)
            continue
        for size in [int(x) for x in args.chunking.split(",")]:
            data_dir = args.work / f"{suite_path.stem}-c{size}"
            s = load_settings(data_dir=data_dir, chunk_chars=size, chunk_chars_en=size)
            t = time.perf_counter()
            summary = run_ingest(s, notes)
            ingest_s = time.perf_counter() - t
            qa = NotesAssistant(s, notes_dir=notes)
            lang = qa.snapshot.language
            for name in args.variants.split(","):
                r = measure(make_search(qa, VARIANTS[name]), cases, notes, lang)
                row = {"suite": suite_path.stem, "part": args.part, "chunk_chars": size, "variant": name,
                       "chunks": summary.chunks, "ingest_s": round(ingest_s, 1), **r}
                results.append(row)
                if not args.json:
                    print(_fmt(row), flush=True)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


def _fmt(r: dict) -> str:
    def g(k):
        d = r.get(k)
        return f"{d['hit@5']:.3f}/{d['mrr']:.3f} (n={d['n']})" if d else "-"

    a = r["all"]
    return (f"{r['suite']:<18} {r['part']:<6} c{r['chunk_chars']:<4} {r['variant']:<22} "
            f"h@1 {a['hit@1']:.3f} h@3 {a['hit@3']:.3f} h@5 {a['hit@5']:.3f} h@10 {a['hit@10']:.3f} "
            f"mrr {a['mrr']:.3f} n={a['n']} | zh {g('zh')} | en {g('en')} | cross {g('cross')} | "
            f"{r['ms_per_question']} ms/q")


if __name__ == "__main__":
    sys.exit(main())
