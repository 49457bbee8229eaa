"""The two reports of a run: a table on the terminal and report.md / report.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .metrics import METRICS


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


TABLE_METRICS = ["hit_at_1", "hit_at_5", "mrr", "citation_precision", "citation_recall", "citation_validity",
                 "cited", "coverage", "violations", "pasted", "refusal_accuracy", "false_refusal"]
LABELS = {m[0]: m[1] for m in METRICS}


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per metric, one column per kind (and per question language, retrieval-only)
    and overall; with a naive run cells read ``ours / naive``."""
    naive = report.get("naive", {}).get("metrics")
    names = list(TABLE_METRICS)
    if "judge_correctness" in report["metrics"]["overall"]:
        names += ["judge_correctness", "judge_faithfulness"]
    langs = list(report["metrics"].get("by_language", {}))
    kinds = list(report["metrics"]["by_kind"]) + langs + ["overall"]

    def col(metrics: dict | None, kind: str) -> dict | None:
        if metrics is None:
            return None
        if kind == "overall":
            return metrics["overall"]
        if kind in langs:
            return metrics.get("by_language", {}).get(kind)
        return metrics["by_kind"].get(kind)

    header = ["metric"] + [f"{k} questions" if k in langs else k for k in kinds]
    rows = [["cases"] + [str(col(report["metrics"], k)["cases"]) for k in kinds]]
    for name in names:
        cells = [LABELS[name]]
        for k in kinds:
            cell = _fmt((col(report["metrics"], k) or {}).get(name))
            nm = col(naive, k)
            if nm is not None:
                cell += " / " + _fmt(nm.get(name))
            cells.append(cell)
        if any(c.strip("-/ ") for c in cells[1:]):
            rows.append(cells)
    return header, rows


def render_table(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    header, rows = table_rows(report)
    title = (f"{Path(report['suite']).name}: {report['metrics']['overall']['cases']} cases, "
             f"{part_label(report)}, {report['config']['llm']}")
    if report.get("naive"):
        title += " (ours / naive)"
    console.print(title, style="bold")
    t = Table()
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right", no_wrap=True,
                     style="bold" if h == "overall" else None)
    for r in rows:
        t.add_row(*r)
    console.print(t)
    g = report.get("gate", {})
    for f in g.get("failures", []):
        console.print(f"[red]FAIL[/] {f}", highlight=False)
    for w in g.get("worse_cases", []):
        console.print(f"[yellow]worse[/] {w['id']}: {'; '.join(w['what'])}", highlight=False, markup=True)
    if g:
        console.print("[green]gate passed[/]" if g.get("passed") else "[red]gate failed[/]")


def part_label(report: dict[str, Any]) -> str:
    """Which part of the suite was run, in words."""
    part = report.get("part", "all")
    if part == "all":
        return "part all"
    return f"part {part} (chapters: {', '.join(report.get('chapters', []))})"


def _short(text: str, n: int = 200) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"


def case_problems(c: dict, g: dict) -> list[str]:
    """What is wrong with one graded case, in words."""
    p = []
    if g.get("error"):
        p.append("error: " + _short(str(c["result"].get("error")), 120))
    if "rank" in g and not g["hit_at_5"]:
        p.append("no expected source in the top 5")
    elif g.get("rank") and g["rank"] > 1:
        p.append(f"expected source at rank {g['rank']}")
    if g.get("false_refusal"):
        p.append("refused an answerable question")
    if "refusal_correct" in g and not g["refusal_correct"]:
        p.append("answered an unanswerable question")
    if "facts" in g and not g.get("false_refusal") and not all(g["facts"]):
        missing = [alts[0] for alts, ok in zip(c["must_include"], g["facts"]) if not ok]
        p.append("missing: " + ", ".join(missing))
    if g.get("violations"):
        p.append("says: " + ", ".join(g["violations"]))
    if g.get("invalid_citations"):
        p.append("invalid citations: " + ", ".join(g["invalid_citations"]))
    if g.get("precision") is not None and g["precision"] < 1:
        p.append(f"citation precision {g['precision']:.2f}")
    if "facts" in g and not g.get("false_refusal") and not g.get("error") and g.get("citations") == 0:
        p.append("no citation")
    return p


def markdown(report: dict[str, Any]) -> str:
    header, rows = table_rows(report)
    lines = [f"# Eval report: {Path(report['suite']).name}", ""]
    lines.append(f"- notes: `{report['notes_dir']}`")
    lines.append(f"- answering model: `{report['config']['llm']}`, started {report['started']}, "
                 f"{report['seconds']} s")
    lines.append("- settings: " + ", ".join(f"{k}={v}" for k, v in report["config"].items() if k != "llm"))
    lines.append(f"- {part_label(report)}" + (", retrieval only (no LLM)" if report.get("retrieval_only") else ""))
    if report.get("limit"):
        lines.append(f"- first {report['limit']} cases only (--limit)")
    if report.get("interrupted"):
        lines.append(f"- **interrupted**: {report['interrupted']}")
    if report.get("naive"):
        lines.append(f"- naive pipeline: {report['naive']['description']}")
        lines.append("- cells read `ours / naive`")
    for w in report.get("warnings", []):
        lines.append(f"- warning: {w}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    g = report.get("gate")
    if g:
        lines += ["", "## Gate", "", "**passed**" if g["passed"] else "**failed**", ""]
        lines += [f"- {f}" for f in g["failures"]]
        if report.get("thresholds"):
            lines.append("- thresholds: " + ", ".join(f"{k} {v}" for k, v in report["thresholds"].items()))
        if g.get("baseline"):
            lines.append(f"- baseline: `{g['baseline']}` (tolerance {report['tolerance']})")
        if g.get("worse_cases"):
            lines += ["", "### Cases that got worse than the baseline", ""]
            lines += [f"- `{w['id']}` {w['question']}: {'; '.join(w['what'])}" for w in g["worse_cases"]]
    lines += ["", "## Cases with problems", ""]
    any_problem = False
    for c in report["cases"]:
        probs = case_problems(c, c["grades"])
        if not probs:
            continue
        any_problem = True
        r = c["result"]
        lines.append(f"### `{c['id']}` ({c['kind']}) {c['question']}")
        lines.append("")
        lines.append(f"- problems: {'; '.join(probs)}")
        lines.append(f"- expected: {', '.join(c['expected_sources']) or 'a refusal'}; reference: "
                     f"{_short(c['reference_answer'], 160)}")
        if not report.get("retrieval_only"):
            lines.append(f"- answer{' (refused)' if r.get('refused') else ''}: {_short(r.get('answer', ''), 300)}")
        srcs = [s["file"] + f":{s['line_start']}" + ("+" if s.get("also_in") else "") for s in r.get("sources", [])]
        lines.append(f"- retrieved: {', '.join(srcs) or '-'}")
        if r.get("citations"):
            lines.append("- citations: " + "; ".join(
                f"[{x['n']}] {x['file']}:{x['line_start']}-{x['line_end']}" for x in r["citations"]))
        if "naive" in c:
            nr = c["naive"]["result"]
            lines.append(f"- naive answer: {_short(nr.get('answer', ''), 200)}")
        lines.append("")
    if not any_problem:
        lines.append("None.")
    lines += ["", "## All cases", "", "| id | kind | rank | coverage | cites (valid) | refused | s |", "|---|---|---|---|---|---|---|"]
    for c in report["cases"]:
        g = c["grades"]
        lines.append(f"| {c['id']} | {c['kind']} | {g.get('rank') or '-'} | {_fmt(g.get('coverage'))} | "
                     f"{g.get('citations', '-')} ({g.get('citations_valid', '-')}) | "
                     f"{'-' if 'refused' not in g else 'yes' if g['refused'] else 'no'} | "
                     f"{c['result'].get('timings_ms', {}).get('total', 0) / 1000:.1f} |")
    return "\n".join(lines) + "\n"


def summary_json(report: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    out = {"suite": report["suite"], "part": report.get("part", "all"), "llm": report["config"]["llm"],
           "metrics": report["metrics"],
           "gate": report.get("gate"), "report": paths}
    if report.get("naive"):
        out["naive"] = report["naive"]["metrics"]
    if report.get("warnings"):
        out["warnings"] = report["warnings"]
    return out


def write_reports(report: dict[str, Any], out_dir: Path) -> dict[str, str]:
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "report.json", out_dir / "report.md"
    tmp = js.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(js)
    md.write_text(markdown(report), encoding="utf-8")
    return {"json": str(js), "markdown": str(md)}
