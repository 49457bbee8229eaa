"""Time to first token and total time of one answer: through Ollama over HTTP vs in-process.

Both sides run the same model (the embedded Qwen2.5-Coder-0.5B GGUF through llama.cpp)
on the same question and the same passages, so the difference is what the Ollama
path adds: HTTP, NDJSON streaming, the ``ollama`` client and ``llama-index-llms-ollama``.
The Ollama side is the stand-in server from ``tests/ollama_standin.py`` (there is no
Ollama binary on these machines), started here as its own process on 127.0.0.1, as a
real Ollama would be: two llama.cpp models in one process slow each other down.

    .venv/bin/python benchmarks/ollama_vs_embedded.py                 # examples/notes
    .venv/bin/python benchmarks/ollama_vs_embedded.py --repeat 3 --json
    .venv/bin/python benchmarks/ollama_vs_embedded.py --notes ../shared/notes --question "MAE 的掩码率是多少？"

Every timed answer evaluates its prompt in full on both sides (no prefix reuse from the
previous answer), at temperature 0 so that both sides write the same tokens. The runs
alternate between the two sides; the figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def start_standin(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "ollama_standin.py"), "--port", str(port),
                             "--no-prompt-cache"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the stand-in server exited: {proc.stderr.read()[-500:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/version", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the stand-in server did not start within 120 s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notes", type=Path, default=REPO / "examples" / "notes")
    ap.add_argument("--question", default="缩放点积注意力为什么要除以根号 d_k？")
    ap.add_argument("--data-dir", type=Path, help="index location (default: a temporary dir, ingested here)")
    ap.add_argument("--repeat", type=int, default=1, help="timed answers per side (default 1)")
    ap.add_argument("--max-tokens", type=int, default=128, help="answer length cap (num_predict)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)

    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from llama_index.core.llms import ChatMessage

    from assistant.answer import build_prompt, generate, question_language
    from assistant.context import prompt_passages
    from assistant.gguf import load_embedded
    from assistant.ollama_backend import load_ollama
    from assistant.query import NotesAssistant
    from assistant.settings import load_settings
    from assistant.indexing import ingest_notes as run_ingest
    from ollama_standin import closed_port

    say = (lambda *x: print(*x, file=sys.stderr, flush=True)) if a.json else (lambda *x: print(*x, flush=True))
    tmp = None
    data_dir = a.data_dir
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-ollama-")
        data_dir = Path(tmp.name)
    notes = a.notes.resolve()
    base = dict(data_dir=data_dir, temperature=0.0, max_answer_tokens=a.max_tokens)
    say(f"ingesting {notes} ...")
    run_ingest(load_settings(**base), notes)

    port = closed_port()
    server = start_standin(port)
    try:
        s = load_settings(**base, ollama_host=f"127.0.0.1:{port}")
        embedded = load_embedded(s)
        ollama = load_ollama(s, "qwen2.5:7b")
        # load the model on both sides before timing (Ollama loads on the first request too)
        warm = [ChatMessage(role="user", content="你好")]
        for side in (embedded, ollama):
            list(side.llm.stream_chat(warm))
        qa = NotesAssistant(s, notes, llm=embedded)
        passages = prompt_passages(qa.search(a.question), qa.snapshot.sections, s, a.question)  # as `ask` does
        plan = build_prompt(a.question, passages, s, question_language(a.question), embedded.count_tokens,
                            min(embedded.context_window, ollama.context_window))
        say(f"question: {a.question}\npassages in the prompt: {len(plan.passages)}, ~{plan.tokens} tokens")

        runs: dict[str, list[dict]] = {"embedded": [], "ollama": []}
        texts: dict[str, str] = {}
        sides = {"embedded": embedded, "ollama": ollama}
        for i in range(a.repeat):
            for name in (["ollama", "embedded"] if i % 2 == 0 else ["embedded", "ollama"]):
                loaded = sides[name]
                if name == "embedded":
                    loaded.reset()  # the server resets its own (--no-prompt-cache)
                t0 = time.perf_counter()
                gen = generate(loaded.llm, plan.messages)
                total = time.perf_counter() - t0
                row = {"first_token_s": round(gen.first_token_s or total, 3), "total_s": round(total, 3),
                       "chunks": gen.tokens, "chars": len(gen.text), "incomplete": gen.incomplete}
                if name == "ollama":
                    usage = getattr(loaded.llm, "last_usage", None) or {}
                    row["server_prompt_tokens"] = usage.get("prompt_eval_count")
                    row["server_total_s"] = round((usage.get("total_duration") or 0) / 1e9, 3)
                runs[name].append(row)
                texts.setdefault(name, gen.text.strip())
                say(f"  {name:<9} first token {row['first_token_s']:6.2f} s   total {row['total_s']:6.2f} s   "
                    f"{row['chunks']} chunks")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    def med(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 3)

    result = {
        "question": a.question, "notes": str(notes), "model": "qwen2.5-coder-0.5b-instruct q4_k_m (both sides)",
        "prompt_tokens_estimated": plan.tokens, "max_tokens": a.max_tokens, "repeat": a.repeat,
        "embedded": {"first_token_s": med("embedded", "first_token_s"), "total_s": med("embedded", "total_s"),
                     "runs": runs["embedded"]},
        "ollama_standin_http": {"first_token_s": med("ollama", "first_token_s"), "total_s": med("ollama", "total_s"),
                                "runs": runs["ollama"]},
        "same_answer_text": texts.get("embedded") == texts.get("ollama"),
        "answer": texts.get("ollama"),
    }
    e, o = result["embedded"], result["ollama_standin_http"]
    # what HTTP, NDJSON and the two client libraries add: client total minus the server's own total_duration
    o["http_overhead_s"] = round(statistics.median(r["total_s"] - r["server_total_s"] for r in runs["ollama"]), 3)
    result["ratio_ollama_over_embedded"] = {"first_token": round(o["first_token_s"] / max(1e-9, e["first_token_s"]), 2),
                                            "total": round(o["total_s"] / max(1e-9, e["total_s"]), 2)}
    if a.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        r = result["ratio_ollama_over_embedded"]
        print(f"\n{'':<28}{'first token':>12}{'total':>10}")
        print(f"{'embedded (in-process)':<28}{e['first_token_s']:>10.2f} s{e['total_s']:>8.2f} s")
        print(f"{'Ollama stand-in (HTTP)':<28}{o['first_token_s']:>10.2f} s{o['total_s']:>8.2f} s")
        print(f"{'ratio Ollama / embedded':<28}{r['first_token']:>11.2f}x{r['total']:>9.2f}x")
        print(f"HTTP + client overhead per answer (client total - server total_duration): {o['http_overhead_s']:.3f} s")
        print(f"(median of {a.repeat} run(s) per side; prompt ~{plan.tokens} tokens; answer cap {a.max_tokens} "
              f"tokens; same answer text on both sides: {result['same_answer_text']})")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
