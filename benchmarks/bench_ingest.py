"""Ingest throughput against the embedding model's own rate, on the same passages, in one run.

    .venv/bin/python benchmarks/bench_ingest.py                 # 400 generated notes
    .venv/bin/python benchmarks/bench_ingest.py --notes 40      # a quick check
    .venv/bin/python benchmarks/bench_ingest.py --folder ~/notes --cli --json

1. A notes folder is generated from the sentences of ../shared/notes (or ``--folder``).
2. A full ingest of it runs in this process into an empty data dir (walk, decode, split,
   tokenize, embed, Chroma, keyword snapshot, manifest), with the real e5 model.
3. The same model object embeds exactly the passages that ingest embedded (the distinct
   embed texts, in batches of the pipeline's size), timed alone.
Steps 2-3 alternate ``--repeat`` times. The figure is the ratio of the two rates, target
>= 0.85. ``--cli`` adds a real ``assistant ingest`` process (imports and model load
included). ``--profile`` prints where the ingest's own time goes.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import (parse_bench_args, load_line, REPO, check, emit, fmt_check, load_average, log, machine, make_notes_folder, median,
                     seed_sentences)

TARGET = 0.85


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=400, help="generated notes (ignored with --folder)")
    ap.add_argument("--folder", type=Path, help="ingest this folder instead of generated notes")
    ap.add_argument("--repeat", type=int, default=1, help="ingest/model alternations (median reported)")
    ap.add_argument("--cli", action="store_true", help="also time a real `assistant ingest` process")
    ap.add_argument("--profile", action="store_true", help="cProfile the (first) ingest: top functions")
    a = parse_bench_args(ap, argv)

    from assistant.models import make_embedder
    from assistant.settings import load_settings
    from ingest.index import Manifest, index_dir_for, load_snapshot_chunks
    from assistant.indexing import ingest_notes as run_ingest
    from ingest.pipeline import EMBED_BATCH

    start = machine()
    if a.folder:
        folder = a.folder.expanduser().resolve()
        corpus = f"folder {folder}"
    else:
        folder = make_notes_folder(a.work / f"ingest-{a.notes}", a.notes, seed_sentences(a.seed_notes))
        corpus = f"{a.notes} notes generated from the sentences of {a.seed_notes}"
    emb = make_embedder("e5")
    # warm up: the model, and one tiny ingest (imports of chromadb/bm25s, jieba's dictionary), so
    # that both timed sides are steady-state work; the --cli figure shows a cold process
    emb.get_text_embedding_batch(["warm-up passage 预热"] * 4)
    warm = a.work / "ingest-warm-up"
    shutil.rmtree(warm, ignore_errors=True)
    (warm / "notes").mkdir(parents=True)
    (warm / "notes" / "w.md").write_text("# 预热\n\n预热一下分词和索引。Warm-up.\n", encoding="utf-8")
    run_ingest(load_settings(data_dir=warm / "data"), warm / "notes", embedder=emb)
    shutil.rmtree(warm, ignore_errors=True)

    ingests, models, passages, chunks, profile_text = [], [], None, None, None
    for r in range(a.repeat):
        data = a.work / f"ingest-data-{r}"
        shutil.rmtree(data, ignore_errors=True)
        s = load_settings(data_dir=data)
        log(f"[{r + 1}/{a.repeat}] full ingest of {corpus} ...")
        prof = None
        if a.profile and r == 0:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t = time.perf_counter()
        summary = run_ingest(s, folder, embedder=emb)
        ingests.append(time.perf_counter() - t)
        if prof:
            prof.disable()
            import io
            import pstats

            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
            profile_text = buf.getvalue()
        # the passages that ingest embedded: the distinct embed texts of the snapshot
        idx = index_dir_for(data, folder)
        stored = load_snapshot_chunks(idx, Manifest.load(idx).snapshot)
        texts = list({c.text_hash: c.embed_text for c in stored}.values())
        if passages is None:
            passages, chunks = texts, summary.chunks
            if summary.chunks_reused:
                log(f"note: {summary.chunks_reused} chunks reused an identical passage's vector")
        log(f"  {summary.line()}")
        log(f"[{r + 1}/{a.repeat}] the model alone on the same {len(texts)} passages ...")
        t = time.perf_counter()
        for i in range(0, len(texts), EMBED_BATCH):
            emb.get_text_embedding_batch(texts[i:i + EMBED_BATCH])
        models.append(time.perf_counter() - t)
        shutil.rmtree(data, ignore_errors=True)

    n = len(passages)
    ingest_s, model_s = median(ingests), median(models)
    ingest_rate, model_rate = n / ingest_s, n / model_s
    result = {
        "benchmark": "ingest", "corpus": corpus, "machine": start, "load_average_at_end": load_average(),
        "passages_embedded": n, "chunks": chunks, "repeat": a.repeat,
        "ingest_seconds": [round(x, 2) for x in ingests], "model_seconds": [round(x, 2) for x in models],
        "ingest_passages_per_s": round(ingest_rate, 2), "model_passages_per_s": round(model_rate, 2),
        "ratio": check(ingest_rate / model_rate, TARGET, higher_is_better=True),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if a.cli:
        data = a.work / "ingest-data-cli"
        shutil.rmtree(data, ignore_errors=True)
        assistant = Path(sys.executable).parent / "assistant"
        log("a real `assistant ingest` process ...")
        t = time.perf_counter()
        p = subprocess.run([str(assistant), "ingest", str(folder), "--json", "--data-dir", str(data)],
                           capture_output=True, text=True, cwd=str(REPO))
        wall = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"error: assistant ingest failed: {p.stderr[-500:]}")
        result["cli_seconds"] = round(wall, 2)
        result["cli_passages_per_s"] = round(n / wall, 2)
        result["cli_ratio"] = check((n / wall) / model_rate, TARGET, higher_is_better=True)
        shutil.rmtree(data, ignore_errors=True)
    if profile_text:
        result["profile_top"] = profile_text

    lines = [f"ingest throughput vs the embedding model ({corpus})",
             f"  passages embedded            {n} (of {chunks} chunks)",
             f"  full ingest                  {ingest_s:.2f} s  = {ingest_rate:.2f} passages/s",
             f"  model alone, same passages   {model_s:.2f} s  = {model_rate:.2f} passages/s",
             fmt_check("ratio ingest/model", result["ratio"])]
    if a.cli:
        lines += [f"  `assistant ingest` process   {result['cli_seconds']:.2f} s (imports + model load included)",
                  fmt_check("ratio CLI/model", result["cli_ratio"])]
    lines.append(load_line(start, result, 29))
    if profile_text:
        lines += ["", profile_text]
    emit(result, a.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
