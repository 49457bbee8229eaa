"""Answer ablation over graded suites: each answer style with each embedded model.

    .venv/bin/python benchmarks/answers.py SUITE.yaml --data-dir DIR --part tune \
        --variants extract,phrase@embedded,phrase@embedded:1.5b
    .venv/bin/python benchmarks/answers.py SUITE.yaml --data-dir DIR --part report --table-only

A variant is ``STYLE@LLM`` (``answer_style`` and ``--llm``; ``extract`` runs no model).
Each one is a real ``assistant eval SUITE --part P`` in its own process, over the same index
(``--data-dir``, ingested once, e.g. by benchmarks/ablation.py), so a row differs from
another only in the style and the model. Its report.json is kept under ``--work`` and a later
run with ``--table-only`` prints the table from the kept reports.

Columns: facts (the share of ``must_include`` facts in the answer) overall and by question
language, near misses refused, answerable questions refused, pasted answers, citation
precision, and the median and p90 seconds of an answer in a warm process (the model loaded).
Never run two of these at once, nor beside another model or embedder: the seconds and, on
2 cores, everything else would be wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _common import REPO as ROOT, median, percentile


def run_variant(suite: Path, part: str, variant: str, data_dir: Path, out: Path) -> Path:
    style, _, llm = variant.partition("@")
    env = dict(os.environ, NOTES_ASSISTANT_ANSWER_STYLE=style)
    cmd = [str(ROOT / ".venv" / "bin" / "assistant"), "eval", str(suite), "--part", part, "--data-dir",
           str(data_dir), "--out", str(out), "--json"]
    if llm:
        cmd += ["--llm", llm]
    # eval exits 1 when the suite's gate fails: a graded run all the same
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    report = out / "report.json"
    if not report.exists():
        sys.exit(f"error: {variant} on {suite.name} wrote no report (exit {proc.returncode}): "
                 f"{proc.stderr.strip().splitlines()[-1:] or ''}")
    return report


def row(report: Path) -> dict:
    from assistant.answer import question_language

    r = json.loads(report.read_text(encoding="utf-8"))
    o = r["metrics"]["overall"]
    facts: dict[str, list[float]] = {"zh": [], "en": []}
    seconds = []
    for c in r["cases"]:
        g, res = c["grades"], c["result"]
        if c.get("must_include") and g.get("coverage") is not None:
            facts[question_language(c["question"])].append(g["coverage"])
        total = (res.get("timings_ms") or {}).get("total")
        if total is not None:
            seconds.append(total / 1000)
    mean = lambda xs: round(sum(xs) / len(xs), 2) if xs else None  # noqa: E731
    return {"cases": o["cases"], "facts": round(o["coverage"], 2), "facts_zh": mean(facts["zh"]),
            "n_zh": len(facts["zh"]), "facts_en": mean(facts["en"]), "n_en": len(facts["en"]),
            "refused": o["refusal_accuracy"], "false_refusals": round(o["false_refusal"], 2),
            "pasted": round(o["pasted"], 2), "precision": round(o["citation_precision"], 2),
            "p50_s": round(median(seconds), 1) if seconds else None,
            "p90_s": round(percentile(seconds, 90), 1) if seconds else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--data-dir", type=Path, action="append", required=True,
                    help="the index of each suite, in the same order (one per suite)")
    ap.add_argument("--part", default="tune", choices=("tune", "report", "all"))
    ap.add_argument("--variants", default="extract,phrase@embedded,phrase@embedded:1.5b")
    ap.add_argument("--work", type=Path, default=Path("/tmp/notes-assistant-answers"))
    ap.add_argument("--table-only", action="store_true", help="print the table from the kept reports")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if len(args.data_dir) != len(args.suites):
        ap.error("give one --data-dir per suite")
    rows = []
    for suite, data_dir in zip(args.suites, args.data_dir):
        for variant in args.variants.split(","):
            out = args.work / f"{suite.stem}-{args.part}-{variant.replace('@', '_').replace(':', '-')}"
            report = out / "report.json"
            if not args.table_only:
                print(f"... {suite.stem} {variant}", file=sys.stderr, flush=True)
                report = run_variant(suite, args.part, variant, data_dir, out)
            if report.exists():
                rows.append({"suite": suite.stem, "variant": variant, **row(report)})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    print(f"part: {args.part}\n")
    print("| suite | variant | facts | zh q | en q | refused | false refusals | pasted | precision | p50 / p90 s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        zh = f"{r['facts_zh']} ({r['n_zh']})" if r["n_zh"] else "–"
        en = f"{r['facts_en']} ({r['n_en']})" if r["n_en"] else "–"
        print(f"| {r['suite']} ({r['cases']}) | {r['variant']} | {r['facts']} | {zh} | {en} | {r['refused']} | "
              f"{r['false_refusals']} | {r['pasted']} | {r['precision']} | {r['p50_s']} / {r['p90_s']} |")


if __name__ == "__main__":
    main()
