"""Retrieval latency of `search` (hybrid, as shipped) at 1k, 10k and 100k chunks: p50 / p95.

    .venv/bin/python benchmarks/bench_search.py                          # 1k, 10k, 100k
    .venv/bin/python benchmarks/bench_search.py --sizes 300,1000 --queries 20   # a quick check

Each size gets a folder of notes generated from the sentences of ../shared/notes and a
real index built by the real pipeline (split, jieba, BM25 snapshot, Chroma, manifest),
kept under ``--work`` for the next run. Sizes up to ``--real-max`` chunks are embedded
for real with e5; larger ones store real-dimension vectors *derived* from real e5
embeddings (each chunk: the normalised mean of the real vectors of the seed sentences
it contains), which the output says. The timed call is ``NotesAssistant.search`` in one
process (what the UI and every CLI query run): query embedding, dense search, BM25 over
words and over characters, fusion, duplicates. The first (cold) query is reported apart. Targets at 100k:
p50 <= 50 ms, p95 <= 150 ms.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from _common import (parse_bench_args, load_line, DerivedEmbedder, check, emit, fmt_check, load_average, log, machine,
                     make_notes_folder, percentile, seed_sentences)

TARGET_P50_MS, TARGET_P95_MS = 50.0, 150.0
CHUNKS_PER_NOTE = 1.83  # measured on the generated notes (2-5 paragraphs of 1-3 sentences)

NATURAL = ["MAE 预训练的时候会把多大比例的图像块遮住？", "CLIP 是用多少图片和文字配对训练出来的？",
           "扩散模型能做大语言模型吗？", "进程和线程的区别是什么？", "YOLO 是怎么划分格子预测物体的？",
           "EM 算法里 E 步和 M 步分别在做什么？", "What fraction of the image patches does MAE mask out?",
           "How does DETR use transformers for object detection?", "What is self-supervised learning?",
           "对比学习的损失函数是什么？"]


def queries(sentences: list[str], n: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    out = list(NATURAL)
    while len(out) < n:
        s = rng.choice(sentences)
        a = rng.randint(0, max(0, len(s) - 20))
        out.append(s[a:a + rng.randint(10, 24)])
    return out[:n]


def build(size: int, a, sentences, real_emb) -> tuple[Path, Path, str, int]:
    from assistant.settings import load_settings
    from assistant.indexing import ingest_notes as run_ingest

    n_notes = max(1, round(size / CHUNKS_PER_NOTE))
    folder = make_notes_folder(a.work / f"search-{size}", n_notes, sentences, seed=size)
    data = a.work / f"search-{size}-data"
    real = size <= a.real_max
    vectors = "real e5 embeddings" if real else "derived from real e5 embeddings of the seed sentences"
    emb = real_emb if real else DerivedEmbedder(sentences, real_emb, cache=a.work / "seed-sentence-vectors.npy")
    log(f"[{size}] indexing {n_notes} notes ({vectors}; kept in {data}) ...")
    t = time.perf_counter()
    summary = run_ingest(load_settings(data_dir=data), folder, embedder=emb)
    log(f"  {summary.line()} ({time.perf_counter() - t:.1f} s)")
    return folder, data, vectors, summary.chunks


def measure(folder: Path, data: Path, qs: list[str], embedder) -> dict:
    from llama_index.core.schema import QueryBundle

    from assistant.query import NotesAssistant
    from assistant.settings import load_settings

    # the model already loaded in this process: its load is not search
    qa = NotesAssistant(load_settings(data_dir=data), folder, embedder=embedder)
    t = time.perf_counter()
    qa.search(qs[0])
    cold = time.perf_counter() - t
    for q in qs[:3]:
        qa.search(q)  # warm
    lat, parts = [], {"embed": [], "dense": [], "keyword": [], "chars": []}
    r = qa.retriever
    for q in qs:
        t = time.perf_counter()
        qa.search(q)
        lat.append((time.perf_counter() - t) * 1000)
        # the same query again, part by part
        t = time.perf_counter()
        e = embedder.get_query_embedding(q)
        parts["embed"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        r.dense.retrieve(QueryBundle(q, embedding=e))
        parts["dense"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        r.keyword.retrieve(QueryBundle(q))
        parts["keyword"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        r.chars.retrieve(QueryBundle(q))
        parts["chars"].append((time.perf_counter() - t) * 1000)
    return {"cold_first_query_ms": round(cold * 1000, 1), "queries": len(qs),
            "p50_ms": round(percentile(lat, 50), 1), "p95_ms": round(percentile(lat, 95), 1),
            "max_ms": round(max(lat), 1),
            "parts_p50_ms": {k: round(percentile(v, 50), 1) for k, v in parts.items()},
            "chunks": len(qa.snapshot.chunks),
            "dense_side": qa.snapshot.dense.label}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000", help="chunk counts, comma-separated")
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--real-max", type=int, default=1000, help="sizes up to this are embedded for real")
    a = parse_bench_args(ap, argv)

    from assistant.models import make_embedder

    start = machine()
    sentences = seed_sentences(a.seed_notes)
    real_emb = make_embedder("e5")
    qs = queries(sentences, a.queries)
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    rows = []
    for size in sizes:
        folder, data, vectors, chunks = build(size, a, sentences, real_emb)
        log(f"[{size}] {a.queries} queries ...")
        m = measure(folder, data, qs, real_emb)
        m.update(size=size, vectors=vectors)
        rows.append(m)
    biggest = rows[-1]
    result = {"benchmark": "search", "machine": start, "load_average_at_end": load_average(), "sizes": rows,
              "targets_at": biggest["size"],
              "p50": check(biggest["p50_ms"], TARGET_P50_MS, higher_is_better=False),
              "p95": check(biggest["p95_ms"], TARGET_P95_MS, higher_is_better=False),
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    lines = ["search latency, hybrid as shipped (NotesAssistant.search, one process, model loaded)",
             f"  {'chunks':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cold ms':>8}   p50 parts "
             f"(embed/dense/words/chars ms)   vectors"]
    for m in rows:
        pp = m["parts_p50_ms"]
        lines.append(f"  {m['chunks']:>8} {m['p50_ms']:>8} {m['p95_ms']:>8} {m['max_ms']:>8} "
                     f"{m['cold_first_query_ms']:>8}   {pp['embed']}/{pp['dense']}/{pp['keyword']}/{pp['chars']}"
                     f"{'':>18}{m['vectors']}")
    lines += [f"  targets at {biggest['chunks']} chunks:", fmt_check("p50", result["p50"], " ms"),
              fmt_check("p95", result["p95"], " ms"),
              load_line(start, result, 26)]
    if biggest["size"] < 100000:
        lines.append(f"  note: the issue's targets are for 100k chunks; this run's largest is {biggest['size']}")
    emit(result, a.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
