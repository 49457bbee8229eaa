"""Unchanged re-ingest of a generated folder of 10,000 notes: seconds, target <= 3 s.

    .venv/bin/python benchmarks/bench_reingest.py               # 10,000 notes
    .venv/bin/python benchmarks/bench_reingest.py --notes 300   # a quick check

The folder is made from the sentences of ../shared/notes (no download) under ``--work``
and indexed once (setup, not timed; kept for the next run). The setup stores vectors
*derived* from real e5 embeddings (each chunk: the normalised mean of the real vectors
of the seed sentences it contains): an unchanged re-ingest embeds nothing, so what it
measures does not depend on them, and embedding ~18,000 chunks for real would take
~20 minutes on 2 cores. Then a real ``assistant ingest FOLDER`` process is timed
``--repeat`` times (wall clock, what a user waits: imports included) and the same run
in this process (the pipeline alone).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import (parse_bench_args, load_line, REPO, DerivedEmbedder, check, emit, fmt_check, load_average, log, machine,
                     make_notes_folder, median, seed_sentences)

TARGET_S = 3.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    a = parse_bench_args(ap, argv)

    from assistant.models import make_embedder
    from assistant.settings import load_settings
    from assistant.indexing import ingest_notes as run_ingest

    start = machine()
    sentences = seed_sentences(a.seed_notes)
    folder = make_notes_folder(a.work / f"reingest-{a.notes}", a.notes, sentences)
    data = a.work / f"reingest-{a.notes}-data"
    s = load_settings(data_dir=data)

    log(f"setup: indexing {a.notes} notes once (derived vectors; kept in {data}) ...")
    t = time.perf_counter()
    derived = DerivedEmbedder(sentences, make_embedder("e5"), cache=a.work / "seed-sentence-vectors.npy")
    setup = run_ingest(s, folder, embedder=derived)
    log(f"  {setup.line()} ({time.perf_counter() - t:.1f} s)")

    assistant = Path(sys.executable).parent / "assistant"
    cli, summaries = [], []
    for r in range(a.repeat):
        t = time.perf_counter()
        p = subprocess.run([str(assistant), "ingest", str(folder), "--json", "--data-dir", str(data)],
                           capture_output=True, text=True, cwd=str(REPO))
        cli.append(time.perf_counter() - t)
        if p.returncode != 0:
            sys.exit(f"error: assistant ingest failed: {p.stderr[-800:]}")
        summaries.append(json.loads(p.stdout))
        log(f"  run {r + 1}: {cli[-1]:.2f} s")
    last = summaries[-1]
    if last["chunks_embedded"] or last["unchanged"] != last["files"]:
        sys.exit(f"error: the re-ingest was not unchanged: {last}")

    inproc = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        run_ingest(s, folder)
        inproc.append(time.perf_counter() - t)
    t = time.perf_counter()
    subprocess.run([str(assistant), "--help"], capture_output=True, cwd=str(REPO))
    startup = time.perf_counter() - t

    result = {
        "benchmark": "reingest-unchanged", "notes": a.notes, "files": last["files"], "chunks": last["chunks"],
        "machine": start, "load_average_at_end": load_average(),
        "vectors": "derived from real e5 embeddings of the seed sentences (setup only; nothing is embedded "
                   "by the timed runs)",
        "cli_seconds": [round(x, 2) for x in cli], "in_process_seconds": [round(x, 2) for x in inproc],
        "process_startup_seconds": round(startup, 2),
        "cli": check(median(cli), TARGET_S, higher_is_better=False),
        "in_process": check(median(inproc), TARGET_S, higher_is_better=False),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    lines = [f"unchanged re-ingest of {a.notes} generated notes ({last['files']} files, {last['chunks']} chunks)",
             fmt_check("`assistant ingest` (median)", result["cli"], " s"),
             fmt_check("pipeline in-process (median)", result["in_process"], " s"),
             f"  `assistant --help` startup     {startup:.2f} s (part of the CLI figure)",
             f"  runs: CLI {result['cli_seconds']}  in-process {result['in_process_seconds']}",
             f"  setup vectors: {result['vectors']}",
             load_line(start, result, 31)]
    emit(result, a.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
