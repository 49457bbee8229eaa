"""`ask` with the embedded model on a 5-passage prompt: seconds to first token, total, peak RSS.

    .venv/bin/python benchmarks/bench_ask.py                # seed notes, 4 questions x 3
    .venv/bin/python benchmarks/bench_ask.py --repeat 1 --questions 1   # a quick check

The notes (``../shared/notes`` by default) are indexed once under ``--work`` with the real
e5 model. Settings: ``--llm embedded`` (Qwen2.5-Coder-0.5B Q4_K_M in-process),
``prompt_passages=5``, ``top_k=5``. Two measurements:

- in this process, as the web UI runs: the first question loads the model (cold), the
  others find it loaded (warm). First token = from the call of ``ask`` to the first
  streamed token (retrieval and prompt evaluation included).
- real ``assistant ask QUESTION --json`` processes: the answer's own ``timings_ms``
  (first token, total; model load included), the wall clock (imports included), and the
  process's peak RSS (``wait4``).

Targets: first token <= 2 s on the 0.5B model (warm), peak RSS <= 1.5 GB (the process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import (parse_bench_args, load_line, REPO, SEED_NOTES, check, emit, fmt_check, load_average, log, machine, median, peak_rss_mb,
                     percentile)

TARGET_FIRST_TOKEN_S = 2.0
TARGET_RSS_MB = 1536.0
COLD_QUESTION = "BLIP 是在哪个会议上发表的，想解决视觉语言预训练的什么问题？"
QUESTIONS = ["MAE 预训练的时候会把多大比例的图像块遮住？", "CLIP 是用多少网上爬来的图片和文字配对训练出来的？",
             "EM 算法里 E 步和 M 步分别在做什么？", "What fraction of the image patches does MAE mask out?"]
ENV = {"NOTES_ASSISTANT_PROMPT_PASSAGES": "5", "NOTES_ASSISTANT_TOP_K": "5", "NOTES_ASSISTANT_LLM": "embedded"}


def run_cli(question: str, data: Path, notes: Path) -> dict:
    """One `assistant ask --json` process: its JSON timings, wall clock and peak RSS."""
    env = dict(os.environ, **ENV, NOTES_ASSISTANT_DATA_DIR=str(data))
    assistant = Path(sys.executable).parent / "assistant"
    import threading

    t = time.perf_counter()
    p = subprocess.Popen([str(assistant), "ask", question, "--json", "--notes", str(notes)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=str(REPO))
    bufs: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k, f: bufs.__setitem__(k, f.read()), args=(k, f))
               for k, f in (("out", p.stdout), ("err", p.stderr))]
    for r in readers:
        r.start()
    # peak RSS: VmHWM of the child's own address space, polled (ru_maxrss of a forked child
    # would include this process's RSS at fork time)
    hwm = 0
    while p.poll() is None:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm = max(hwm, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    for r in readers:
        r.join()
    wall = time.perf_counter() - t
    rss = hwm / 1024.0
    out, err = bufs["out"].decode("utf-8", "replace"), bufs["err"].decode("utf-8", "replace")
    if p.returncode not in (0, 4):  # 4: refused (the notes do not cover it)
        sys.exit(f"error: assistant ask failed ({p.returncode}): {err[-800:]}")
    ans = json.loads(out)
    tm = ans.get("timings_ms", {})
    return {"wall_s": round(wall, 2), "first_token_s": tm.get("first_token", 0) / 1000 if "first_token" in tm else None,
            "total_s": tm.get("total", 0) / 1000, "peak_rss_mb": round(rss, 1), "refused": ans.get("refused"),
            "answer_chars": len(ans.get("answer", ""))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes-dir", type=Path, default=SEED_NOTES)
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--repeat", type=int, default=3, help="warm in-process rounds over the questions")
    ap.add_argument("--cli-runs", type=int, default=2, help="`assistant ask` processes")
    a = parse_bench_args(ap, argv, seed_notes=False)
    for k, v in ENV.items():
        os.environ[k] = v

    from assistant.answer import build_prompt, question_language
    from assistant.context import prompt_passages
    from assistant.query import NotesAssistant
    from assistant.settings import load_settings
    from assistant.indexing import ingest_notes as run_ingest

    start = machine()
    notes = a.notes_dir.expanduser().resolve()
    data = a.work / "ask-data"
    s = load_settings(data_dir=data)
    assert s.prompt_passages == 5 and s.top_k == 5 and s.llm == "embedded", s
    log(f"indexing {notes} (once, kept in {data}) ...")
    log("  " + run_ingest(s, notes).line())
    qs = QUESTIONS[: max(2, a.questions)]  # consecutive questions differ (see the cold one below)

    # --- real processes (first, while this process is small) ------------------------------
    cli = []
    for i in range(a.cli_runs):
        log(f"`assistant ask` process {i + 1}/{a.cli_runs} ...")
        cli.append(run_cli(qs[i % len(qs)], data, notes))
    cli_rss = max(x["peak_rss_mb"] for x in cli) if cli else None

    # --- in this process ---------------------------------------------------------------
    qa = NotesAssistant(s, notes)
    qa.search(qs[0])  # the embedding model and the index are loaded: not what is measured

    def one(q: str) -> dict:
        first = []
        t = time.perf_counter()
        ans = qa.ask(q, on_token=lambda tok: first.append(time.perf_counter()) if not first else None)
        total = time.perf_counter() - t
        loaded = qa.llm
        context = prompt_passages(ans.sources, qa.snapshot.sections, s, q)  # the prompt `ask` built
        plan = build_prompt(q, context, s, question_language(q), loaded.count_tokens, loaded.context_window)
        ft = round(first[0] - t, 3) if first and not ans.refused else None
        retrieve = ans.timings_ms.get("retrieve", 0) / 1000
        return {"question": q, "first_token_s": ft, "total_s": round(total, 3), "refused": ans.refused,
                "retrieve_s": retrieve, "prompt_passages": len(plan.passages), "prompt_tokens": plan.tokens,
                # first token ~ retrieve + prompt tokens / prompt-evaluation rate (+ a decode step)
                "prompt_tokens_per_s": round(plan.tokens / (ft - retrieve), 1) if ft and ft > retrieve else None,
                "error": ans.error}

    # the cold question is not among the timed ones: llama.cpp reuses the KV cache of the previous
    # prompt's common prefix, and asking the same question twice in a row would skip its whole prompt
    log("in-process: cold (loads the model) ...")
    cold = one(COLD_QUESTION)
    warm = []
    for r in range(a.repeat):
        for q in qs:
            warm.append(one(q))
        log(f"  warm round {r + 1}/{a.repeat} done")
    answered = [x for x in warm if x["first_token_s"] is not None]
    if not answered:
        sys.exit(f"error: every question was refused or failed: {warm}")
    in_rss = peak_rss_mb()

    ft = median(x["first_token_s"] for x in answered)
    result = {
        "benchmark": "ask", "llm": qa.llm.name, "notes": str(notes), "machine": start,
        "load_average_at_end": load_average(),
        "prompt_passages": sorted({x["prompt_passages"] for x in warm}),
        "prompt_tokens_median": median(x["prompt_tokens"] for x in warm),
        "refused": sum(1 for x in warm if x["refused"]), "answers": len(warm),
        "cold": cold, "warm_first_token_s_median": round(ft, 3),
        "warm_first_token_s_p95": round(percentile([x["first_token_s"] for x in answered], 95), 3),
        "warm_retrieve_s_median": round(median(x["retrieve_s"] for x in answered), 3),
        "prompt_tokens_per_s_median": median(x["prompt_tokens_per_s"] for x in answered
                                             if x["prompt_tokens_per_s"]) if any(
            x["prompt_tokens_per_s"] for x in answered) else None,
        "warm_total_s_median": round(median(x["total_s"] for x in answered), 3),
        "in_process_peak_rss_mb": round(in_rss, 1),
        "cli_runs": cli,
        "first_token": check(ft, TARGET_FIRST_TOKEN_S, higher_is_better=False),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    if cli:
        result["cli_first_token_s_median"] = median(x["first_token_s"] for x in cli if x["first_token_s"] is not None) \
            if any(x["first_token_s"] is not None for x in cli) else None
        result["peak_rss"] = check(cli_rss, TARGET_RSS_MB, higher_is_better=False)
    lines = [f"ask with {result['llm']} on a {result['prompt_passages']}-passage prompt "
             f"(~{result['prompt_tokens_median']} prompt tokens), {len(warm)} warm answers, {result['refused']} refused",
             fmt_check("first token, warm (median)", result["first_token"], " s"),
             f"  first token, warm (p95)          {result['warm_first_token_s_p95']:.3f} s",
             f"  total, warm (median)             {result['warm_total_s_median']:.3f} s",
             f"  of the first token: retrieval {result['warm_retrieve_s_median']:.3f} s, then the prompt at "
             f"~{result['prompt_tokens_per_s_median']} tokens/s",
             f"  cold (model load included)       first token {cold['first_token_s']} s, total {cold['total_s']} s"]
    if cli:
        lines += ["  `assistant ask` processes        " + "; ".join(
                      f"first token {x['first_token_s']} s, total {x['total_s']} s, wall {x['wall_s']} s" for x in cli),
                  fmt_check("peak RSS of `assistant ask`", result["peak_rss"], " MB")]
    lines += [f"  peak RSS of this process         {result['in_process_peak_rss_mb']} MB",
              load_line(start, result, 33)]
    emit(result, a.json, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
