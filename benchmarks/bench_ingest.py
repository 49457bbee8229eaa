"""Ingest throughput against the embedding model's own rate, on the same passages, in one run.

    .venv/bin/python benchmarks/bench_ingest.py                 # 400 generated notes
    .venv/bin/python benchmarks/bench_ingest.py --notes 40      # a quick check
    .venv/bin/python benchmarks/bench_ingest.py --folder ~/notes --cli --json
    .venv/bin/python benchmarks/bench_ingest.py --corpus ../shared/corpora/markdown-zh/notes \\
        --corpus ../shared/corpora/markdown-en/notes          # each folder, then a total

1. A notes folder is generated from the sentences of ../shared/notes (or ``--folder``, or
   each ``--corpus`` folder in turn).
2. A full ingest of it runs in this process into an empty data dir (walk, decode, split,
   tokenize, embed, Chroma, keyword snapshot, manifest), with the real e5 model.
3. The same model object embeds exactly the texts that ingest embedded, timed alone: the
   passages (the distinct embed texts, in batches of the pipeline's size) and the sentences
   (``ingest.sentence_index``: every prose sentence with its heading path, in its batches).
Steps 2-3 alternate ``--repeat`` times. The figure is the ratio of the model's seconds on
those texts to the ingest's seconds (what the pipeline adds around the model), target
>= 0.85. With ``--corpus`` every folder gets its own figures and a total line sums them
(seconds and passages added up, the rates and ratio from the sums). ``--cli`` adds a real
``assistant ingest`` process (imports and model load included). ``--profile`` prints where
the (first) ingest's own time goes.
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


def warm_up(emb, work: Path) -> None:
    """The model, and one tiny ingest (imports of chromadb/bm25s, jieba's dictionary), so that
    both timed sides are steady-state work; the --cli figure shows a cold process."""
    from assistant.indexing import ingest_notes
    from assistant.settings import load_settings

    emb.get_text_embedding_batch(["warm-up passage 预热"] * 4)
    warm = work / "ingest-warm-up"
    shutil.rmtree(warm, ignore_errors=True)
    (warm / "notes").mkdir(parents=True)
    (warm / "notes" / "w.md").write_text("# 预热\n\n预热一下分词和索引。Warm-up.\n", encoding="utf-8")
    ingest_notes(load_settings(data_dir=warm / "data"), warm / "notes", embedder=emb)
    shutil.rmtree(warm, ignore_errors=True)


def measure(folder: Path, label: str, emb, work: Path, repeat: int, profile: bool) -> tuple[dict, float, float, str | None]:
    """Steps 2-3 on one folder, ``repeat`` times, each ingest from empty into a fresh data dir.
    Returns the figures, the median ingest and model seconds, and the profile text (or None)."""
    from assistant.indexing import ingest_notes
    from assistant.settings import load_settings
    from ingest.index import Manifest, index_dir_for, load_snapshot_chunks
    from ingest.pipeline import EMBED_BATCH
    from ingest.sentence_index import BATCH as SENTENCE_BATCH, sentence_texts

    ingests, models, passages, first, profile_text, sentences = [], [], None, None, None, []
    for r in range(repeat):
        data = work / f"ingest-data-{r}"
        shutil.rmtree(data, ignore_errors=True)
        s = load_settings(data_dir=data)
        log(f"[{r + 1}/{repeat}] full ingest of {label} ...")
        prof = None
        if profile and r == 0:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        t = time.perf_counter()
        summary = ingest_notes(s, folder, embedder=emb)
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
        sents = list(dict.fromkeys(t for c in stored for t in sentence_texts(c)))
        if passages is None:
            passages, first, sentences = texts, summary, sents
            if summary.chunks_reused:
                log(f"note: {summary.chunks_reused} chunks reused an identical passage's vector")
        log(f"  {summary.line()}")
        log(f"[{r + 1}/{repeat}] the model alone on the same {len(texts)} passages and {len(sents)} sentences ...")
        t = time.perf_counter()
        for i in range(0, len(texts), EMBED_BATCH):
            emb.get_text_embedding_batch(texts[i:i + EMBED_BATCH])
        for i in range(0, len(sents), SENTENCE_BATCH):
            emb.get_text_embedding_batch(sents[i:i + SENTENCE_BATCH])
        models.append(time.perf_counter() - t)
        shutil.rmtree(data, ignore_errors=True)

    n = len(passages)
    ingest_s, model_s = median(ingests), median(models)
    ingest_rate, model_rate = n / ingest_s, n / model_s
    result = {
        "corpus": label, "files": first.files, "passages_embedded": n, "sentences_embedded": len(sentences),
        "chunks": first.chunks,
        "ingest_seconds": [round(x, 2) for x in ingests], "model_seconds": [round(x, 2) for x in models],
        "ingest_passages_per_s": round(ingest_rate, 2), "model_passages_per_s": round(model_rate, 2),
        "ratio": check(model_s / ingest_s, TARGET, higher_is_better=True),
    }
    return result, ingest_s, model_s, profile_text


def cli_ingest(folder: Path, work: Path, n: int, model_rate: float) -> dict:
    """A real `assistant ingest` process over ``folder`` into an empty data dir, timed whole."""
    data = work / "ingest-data-cli"
    shutil.rmtree(data, ignore_errors=True)
    assistant = Path(sys.executable).parent / "assistant"
    log(f"a real `assistant ingest` process on {folder} ...")
    t = time.perf_counter()
    p = subprocess.run([str(assistant), "ingest", str(folder), "--json", "--data-dir", str(data)],
                       capture_output=True, text=True, cwd=str(REPO))
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"error: assistant ingest failed: {p.stderr[-500:]}")
    shutil.rmtree(data, ignore_errors=True)
    return {"cli_seconds": round(wall, 2), "cli_passages_per_s": round(n / wall, 2),
            "cli_ratio": check((n / wall) / model_rate, TARGET, higher_is_better=True)}


def figure_lines(r: dict, ingest_s: float, model_s: float) -> list[str]:
    """The printed figures of one measurement (a folder, or the total over the corpora)."""
    indent, w = "  ", 29
    lines = [f"{indent}{'files / chunks':<{w}}{r['files']} / {r['chunks']}",
             f"{indent}{'passages / sentences':<{w}}{r['passages_embedded']} / {r.get('sentences_embedded', 0)}",
             f"{indent}{'full ingest from empty':<{w}}{ingest_s:.2f} s  = {r['ingest_passages_per_s']:.2f} passages/s",
             f"{indent}{'e5 alone, same texts':<{w}}{model_s:.2f} s  = {r['model_passages_per_s']:.2f} passages/s",
             fmt_check("ratio ingest/model", r["ratio"])]
    if "cli_ratio" in r:
        lines += [f"{indent}{'`assistant ingest` process':<{w}}{r['cli_seconds']:.2f} s (imports + model load included)",
                  fmt_check("ratio CLI/model", r["cli_ratio"])]
    return lines


def run_corpora(a, emb, start: dict) -> tuple[dict, list[str]]:
    """``--corpus`` mode: every folder from empty with its own figures, then the total."""
    results, lines, profile_text = [], [], None
    tot = {"files": 0, "chunks": 0, "passages_embedded": 0, "sentences_embedded": 0, "ingest_s": 0.0, "model_s": 0.0, "cli_seconds": 0.0}
    for k, folder in enumerate(a.corpus):
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            sys.exit(f"error: --corpus {folder} is not a folder")
        label = f"{folder.parent.name}/{folder.name}"
        r, ingest_s, model_s, prof = measure(folder, label, emb, a.work, a.repeat, a.profile and k == 0)
        profile_text = profile_text or prof
        r["folder"] = str(folder)
        r["ingest_seconds_median"], r["model_seconds_median"] = round(ingest_s, 2), round(model_s, 2)
        if a.cli:
            r.update(cli_ingest(folder, a.work, r["passages_embedded"], r["passages_embedded"] / model_s))
            tot["cli_seconds"] += r["cli_seconds"]
        results.append(r)
        for key in ("files", "chunks", "passages_embedded", "sentences_embedded"):
            tot[key] += r[key]
        tot["ingest_s"] += ingest_s
        tot["model_s"] += model_s
        lines += [f"{label}  ({folder})", *figure_lines(r, ingest_s, model_s)]

    n = tot["passages_embedded"]
    total = {"corpora": len(results), "files": tot["files"], "chunks": tot["chunks"], "passages_embedded": n,
             "sentences_embedded": tot["sentences_embedded"],
             "ingest_seconds_median": round(tot["ingest_s"], 2), "model_seconds_median": round(tot["model_s"], 2),
             "ingest_passages_per_s": round(n / tot["ingest_s"], 2),
             "model_passages_per_s": round(n / tot["model_s"], 2),
             "ratio": check(tot["model_s"] / tot["ingest_s"], TARGET, higher_is_better=True)}
    if a.cli:
        total["cli_seconds"] = round(tot["cli_seconds"], 2)
        total["cli_passages_per_s"] = round(n / tot["cli_seconds"], 2)
        total["cli_ratio"] = check(tot["model_s"] / tot["cli_seconds"], TARGET, higher_is_better=True)
    result = {"benchmark": "ingest-corpora", "machine": start, "load_average_at_end": load_average(),
              "repeat": a.repeat, "corpora": results, "total": total,
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    if profile_text:
        result["profile_top"] = profile_text
    head = [f"ingest from empty of {len(results)} corpora vs e5 alone on the same passages and sentences "
            f"(median of {a.repeat}, same run)"]
    lines = head + lines + [f"total over {len(results)} corpora", *figure_lines(total, tot["ingest_s"], tot["model_s"]),
                            load_line(start, result, 29)]
    if profile_text:
        lines += ["", profile_text]
    return result, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=int, default=400, help="generated notes (ignored with --folder/--corpus)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--folder", type=Path, help="ingest this folder instead of generated notes")
    which.add_argument("--corpus", type=Path, action="append", metavar="DIR",
                       help="ingest this folder from empty, own figures; repeatable, then a total line")
    ap.add_argument("--repeat", type=int, default=1, help="ingest/model alternations (median reported)")
    ap.add_argument("--cli", action="store_true", help="also time a real `assistant ingest` process")
    ap.add_argument("--profile", action="store_true", help="cProfile the (first) ingest: top functions")
    a = parse_bench_args(ap, argv)

    from assistant.models import make_embedder

    start = machine()
    emb = make_embedder("e5")
    warm_up(emb, a.work)
    if a.corpus:
        result, lines = run_corpora(a, emb, start)
        emit(result, a.json, lines)
        return 0

    if a.folder:
        folder = a.folder.expanduser().resolve()
        corpus = f"folder {folder}"
    else:
        folder = make_notes_folder(a.work / f"ingest-{a.notes}", a.notes, seed_sentences(a.seed_notes))
        corpus = f"{a.notes} notes generated from the sentences of {a.seed_notes}"
    figures, ingest_s, model_s, profile_text = measure(folder, corpus, emb, a.work, a.repeat, a.profile)
    n = figures["passages_embedded"]
    result = {"benchmark": "ingest", "machine": start, "load_average_at_end": load_average(),
              **figures, "repeat": a.repeat, "command": " ".join([Path(sys.executable).name, *sys.argv])}
    if a.cli:
        result.update(cli_ingest(folder, a.work, n, n / model_s))
    if profile_text:
        result["profile_top"] = profile_text

    lines = [f"ingest throughput vs the embedding model ({corpus})", *figure_lines(result, ingest_s, model_s),
             load_line(start, result, 29)]
    if profile_text:
        lines += ["", profile_text]
    emit(result, a.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
