"""The run: every case through :class:`assistant.query.NotesAssistant` - the same call
the CLI and the web UI make - graded on what it returns. This package only grades and
reports; it adds nothing to the answers.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UserError
from ..progress import Progress, RichProgress
from .gate import gate, load_baseline
from .grade import NoteFiles, grade, grade_retrieval, metrics_by_kind
from .report import render_table, summary_json, write_reports
from .suite import Case, Suite, SuiteError, load_suite

if TYPE_CHECKING:
    from ..query import NotesAssistant
    from ..settings import Settings

# --- running -------------------------------------------------------------------------------

def _result_of(answer: Any) -> dict[str, Any]:
    d = answer.to_json()
    d.setdefault("warnings", [])
    return d


def _judge(judge_llm: Any, case: Case, result: dict) -> dict[str, Any]:
    """LlamaIndex's correctness and faithfulness evaluators; never part of the gate."""
    from llama_index.core.evaluation import CorrectnessEvaluator, FaithfulnessEvaluator

    out: dict[str, Any] = {}
    contexts = [s["text"] for s in result.get("sources", [])[:5]]
    try:
        r = CorrectnessEvaluator(llm=judge_llm).evaluate(query=case.question, response=result.get("answer", ""),
                                                         reference=case.answer or None)
        out["correctness"] = r.score
    except Exception as exc:  # noqa: BLE001 - a judge that cannot be parsed is noted, not fatal
        out["correctness"] = None
        out["error"] = f"correctness: {type(exc).__name__}: {exc}"[:200]
    try:
        r = FaithfulnessEvaluator(llm=judge_llm).evaluate(query=case.question, response=result.get("answer", ""),
                                                          contexts=contexts)
        out["faithful"] = None if r.passing is None else bool(r.passing)
    except Exception as exc:  # noqa: BLE001
        out["faithful"] = None
        out["error"] = (out.get("error", "") + f" faithfulness: {type(exc).__name__}: {exc}")[:300]
    return out


def _settings_summary(settings: Settings) -> dict[str, Any]:
    """The settings that shape answers (not where things live)."""
    skip = {"data_dir", "model_dir", "notes_dir", "prompts_dir", "chroma_url", "ollama_host", "keep_alive"}
    try:
        data = settings.model_dump(mode="json")
    except AttributeError:
        data = dict(vars(settings))
    return {k: v for k, v in data.items() if k not in skip and k != "llm"}


def run_suite(suite: Suite, settings: Settings, *, notes_dir: Path | None = None, compare: str | None = None,
              limit: int | None = None, judge: str | None = None, part: str = "all", retrieval_only: bool = False,
              progress: Progress | None = None, ingest_progress: Progress | None = None,
              log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run the cases of ``part`` through NotesAssistant (and the naive pipeline when asked);
    grade; return the report. ``retrieval_only`` grades the retrieved sources alone and
    loads no LLM."""
    if retrieval_only and (compare or judge):
        raise UserError("--retrieval-only grades retrieval alone: drop --compare and --judge")
    notes_path = Path(notes_dir or suite.notes_dir).expanduser().resolve()
    if not notes_path.is_dir():
        raise SuiteError(f"the suite's notes folder {notes_path} does not exist: fix `notes:` or pass --notes")
    cases = suite.select(part)
    cases = cases[:limit] if limit else cases
    if not cases:
        raise SuiteError(f"{suite.path.name}: the {part} part has no cases")
    progress = progress or Progress()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    _ingest(settings, notes_path, ingest_progress, log)
    notes = NoteFiles(notes_path)
    warnings = _source_warnings(cases, notes, notes_path)
    for w in warnings:
        log(f"warning: {w}")

    from ..query import NotesAssistant

    qa = NotesAssistant(settings, notes_dir=notes_path)
    if retrieval_only:
        llm_name, naive, judge_llm = "none (retrieval only)", None, None
    else:
        loaded = qa.llm  # load once; an unreachable model is a one-line error before any case runs
        llm_name = loaded.name
        naive = _naive(compare, notes_path, loaded, settings, log)
        judge_llm = _judge_llm(judge, settings)

    progress.start(len(cases) * (2 if naive else 1), "grading")
    out_cases: list[dict[str, Any]] = []
    interrupted = False
    try:
        for case in cases:
            if retrieval_only:
                out_cases.append(_retrieval_case(qa, case, progress))
            else:
                out_cases.append(_graded_case(qa, case, notes, naive, judge_llm, progress))
            # only whole cases: an interrupted run reports what it finished
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.stop()
    if interrupted and not out_cases:
        raise KeyboardInterrupt
    by_id = {c.id: c for c in cases}
    rows = [(by_id[e["id"]], e["grades"]) for e in out_cases]

    report: dict[str, Any] = {
        "suite": str(suite.path), "notes_dir": str(notes_path), "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 1), "limit": limit, "part": part,
        "config": {"llm": llm_name, **_settings_summary(settings)},
        "thresholds": suite.thresholds, "tolerance": suite.tolerance,
        "metrics": metrics_by_kind(rows, retrieval_only), "cases": out_cases,
    }
    if part != "all":
        report["chapters"] = suite.parts[part]
    if retrieval_only:
        report["retrieval_only"] = True
    if interrupted:
        report["interrupted"] = f"stopped after {len(out_cases)} of {len(cases)} cases"
    if warnings:
        report["warnings"] = warnings
    if judge:
        report["judge"] = judge
    if naive is not None:
        naive_rows = [(by_id[e["id"]], e["naive"]["grades"]) for e in out_cases if "naive" in e]
        report["naive"] = {"description": naive.describe(), "metrics": metrics_by_kind(naive_rows)}
    return report


def _ingest(settings: Settings, notes_path: Path, progress: Progress | None, log: Callable[[str], None]) -> None:
    """Bring the index of the suite's notes up to date; `assistant ask` keeps asking its own folder."""
    from ingest.index import last_notes_dir, remember_notes_dir

    from ..indexing import ingest_notes

    previous = last_notes_dir(settings.data_dir)
    summary = ingest_notes(settings, notes_path, progress=progress)
    if previous is not None and Path(previous).resolve() != notes_path:
        remember_notes_dir(settings.data_dir, Path(previous))  # eval does not change `assistant ask`'s folder
    log(summary.line())


def _source_warnings(cases: list[Case], notes: NoteFiles, notes_path: Path) -> list[str]:
    files = set(notes.all_files())
    warnings = []
    for case in cases:
        missing = [f for f in case.sources if f not in files]
        if missing:
            warnings.append(f"case `{case.id}` names sources that are not notes of {notes_path}: {', '.join(missing)}")
    return warnings


def _naive(compare: str | None, notes_path: Path, loaded: Any, settings: Settings, log: Callable[[str], None]):
    if not compare:
        return None
    if compare != "naive":
        raise UserError(f"--compare {compare}: the only pipeline to compare with is `naive`")
    from .naive import NaivePipeline

    naive = NaivePipeline(notes_path, loaded, top_k=settings.top_k)
    t_build = time.perf_counter()
    naive.build()
    log(f"naive pipeline: {naive.node_count} nodes indexed in {time.perf_counter() - t_build:.1f} s")
    return naive


def _judge_llm(judge: str | None, settings: Settings):
    if not judge:
        return None
    from ..models import load_llm

    return load_llm(settings.model_copy(update={"llm": judge})).llm


def _case_entry(case: Case, result: dict[str, Any], grades: dict[str, Any]) -> dict[str, Any]:
    return {"id": case.id, "question": case.question, "kind": case.kind, "expected_sources": case.sources,
            "must_include": case.must_include, "must_not_include": case.must_not_include,
            "reference_answer": case.answer, "result": result, "grades": grades}


def _graded_case(qa: NotesAssistant, case: Case, notes: NoteFiles, naive: Any, judge_llm: Any,
                 progress: Progress) -> dict[str, Any]:
    result = _result_of(qa.ask(case.question))
    g = grade(case, result, notes)
    if judge_llm is not None and case.answerable and not result["refused"]:
        g["judge"] = _judge(judge_llm, case, result)
    entry = _case_entry(case, result, g)
    progress.step(f"{case.id} {result['timings_ms'].get('total', 0) / 1000:.1f} s"
                  + (" refused" if result["refused"] else ""))
    if naive is not None:
        nres = naive.ask(case.question)
        ng = grade(case, nres, notes)
        if judge_llm is not None and case.answerable and not nres["refused"]:
            ng["judge"] = _judge(judge_llm, case, nres)
        entry["naive"] = {"result": nres, "grades": ng}
        progress.step(f"{case.id} (naive) {nres['timings_ms'].get('total', 0) / 1000:.1f} s")
    return entry


def _retrieval_case(qa: NotesAssistant, case: Case, progress: Progress) -> dict[str, Any]:
    """The sources `ask` would retrieve for the case (the same search, the same top_k), graded alone."""
    from ..query import sources_json

    t = time.perf_counter()
    passages = qa.search(case.question)
    ms = int((time.perf_counter() - t) * 1000)
    result = {"question": case.question, "sources": sources_json(passages),
              "timings_ms": {"retrieve": ms, "total": ms}}
    entry = _case_entry(case, result, grade_retrieval(case, result))
    progress.step(f"{case.id} {ms} ms")
    return entry


def main(settings: Settings, suite_path: Path, *, notes: Path | None = None, baseline: Path | None = None,
         out: Path = Path("eval-out"), compare: str | None = None, as_json: bool = False,
         limit: int | None = None, judge: str | None = None, part: str = "all",
         retrieval_only: bool = False) -> int:
    """The `assistant eval` command; returns the exit status (0 pass, 1 gate failed)."""
    import signal

    from rich.console import Console

    suite = load_suite(suite_path)
    suite.select(part)  # an unknown part, or a part of a suite without parts: one line before any work
    base = load_baseline(baseline) if baseline else None

    def _stop(signum, frame):  # a CI timeout or `kill`: still write what is graded so far
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread
        pass
    err = Console(stderr=True, highlight=False)
    progress = None if as_json else RichProgress(err)
    ingest_progress = None if as_json else RichProgress(err, transient=True)
    try:
        report = run_suite(suite, settings, notes_dir=notes, compare=compare, limit=limit, judge=judge, part=part,
                           retrieval_only=retrieval_only, progress=progress, ingest_progress=ingest_progress,
                           log=(lambda s: None) if as_json else (lambda s: err.print(f"[dim]{s}[/]")))
    finally:
        if ingest_progress is not None:
            ingest_progress.close()
    result = gate(report, suite, base, str(baseline) if baseline else None)
    paths = write_reports(report, out)
    if as_json:
        print(json.dumps(summary_json(report, paths), ensure_ascii=False))
    else:
        import sys

        render_table(report, Console(highlight=False, width=None if sys.stdout.isatty() else 160))
        err.print(f"reports: {paths['json']}  {paths['markdown']}")
    return 0 if result["passed"] else 1
