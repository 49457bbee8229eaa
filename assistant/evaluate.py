"""`assistant eval`: grade retrieval, citations and answers on a suite of Q&A pairs.

A suite is a YAML file::

    notes: ../notes                 # the folder it is graded against, relative to this file
    thresholds: {hit_at_5: 0.9, mrr: 0.8, coverage: 0.6, false_refusal_max: 0.1}
    tolerance: 0.05                 # how much worse than --baseline a metric may get
    cases:
      - id: mae-mask-ratio
        question: MAE 预训练时遮住图片的比例大概是多少？
        kind: fact                  # fact | why | compare | multi | unanswerable | english | chinese
        sources: [001_311fe848aa0cfec6.txt]      # every file that holds the evidence; [] if unanswerable
        must_include: [["75%", "百分之七十五"]]   # facts, each a list of acceptable forms
        must_not_include: ["50%"]                # optional
        evidence: "用较高的掩码率(75%)"           # verbatim from the sources (a list for multi-passage cases)
        answer: MAE 随机遮住约 75% 的图像块。     # reference answer (for people and the optional judge)

Every case goes through :class:`assistant.query.NotesAssistant` - the same call the
CLI and the web UI make - and is graded on what it returns. This module only
grades and reports; it adds nothing to the answers.

Matching of ``must_include``/``must_not_include`` is case-insensitive, folds
full-width and half-width forms (Unicode NFKC) and ignores whitespace.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .errors import UserError

# english / chinese: asked in that language, about notes written in the other one
KINDS = ("fact", "why", "compare", "multi", "unanswerable", "english", "chinese")

# name, label, higher is better, gateable
METRICS: list[tuple[str, str, bool, bool]] = [
    ("hit_at_1", "hit@1", True, True),
    ("hit_at_5", "hit@5", True, True),
    ("mrr", "MRR", True, True),
    ("citation_precision", "cite P", True, True),
    ("citation_recall", "cite R", True, True),
    ("citation_validity", "cite valid", True, True),
    ("cited", "cited", True, True),
    ("coverage", "coverage", True, True),
    ("violations", "must-not", False, True),
    ("refusal_accuracy", "refusal acc", True, True),
    ("false_refusal", "false ref", False, True),
    ("errors", "errors", False, True),
    ("judge_correctness", "judge corr", True, False),
    ("judge_faithfulness", "judge faith", True, False),
]
METRIC_NAMES = {m[0] for m in METRICS}
HIGHER_IS_BETTER = {m[0]: m[2] for m in METRICS}
GATEABLE = {m[0] for m in METRICS if m[3]}

_MARKER = re.compile(r"\s*[\[【]\s*\d{1,2}(?:\s*[,，、]\s*\d{1,2})*\s*[\]】]")


class SuiteError(UserError):
    """The suite file is malformed; the message names the file and the case."""


# --- the suite -----------------------------------------------------------------------

@dataclass
class Case:
    id: str
    question: str
    kind: str
    sources: list[str]
    must_include: list[list[str]]
    must_not_include: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    answer: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.sources)


@dataclass
class Suite:
    path: Path
    notes_dir: Path
    thresholds: dict[str, float]
    tolerance: float
    cases: list[Case]


def _threshold_metric(key: str) -> tuple[str, bool]:
    """``false_refusal_max`` -> (``false_refusal``, is_max)."""
    if key.endswith("_max"):
        return key[:-4], True
    if key.endswith("_min"):
        return key[:-4], False
    return key, False


def load_suite(path: Path | str) -> Suite:
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise SuiteError(f"suite file {path} not found: pass the path of a suite .yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise SuiteError(f"{path} is not valid YAML{at}: fix the file") from None
    if not isinstance(data, dict) or "cases" not in data:
        raise SuiteError(f"{path} has no `cases:` list: see the suite format in the README")
    notes = data.get("notes")
    if not notes:
        raise SuiteError(f"{path} has no `notes:` folder (relative to the suite file)")
    thresholds = data.get("thresholds") or {}
    if not isinstance(thresholds, dict):
        raise SuiteError(f"{path}: `thresholds:` must map metric names to numbers")
    for key, value in thresholds.items():
        name, _ = _threshold_metric(str(key))
        if name not in GATEABLE:
            raise SuiteError(f"{path}: unknown threshold `{key}`; known: "
                             f"{', '.join(sorted(GATEABLE))} (add _max for an upper bound)")
        if not isinstance(value, (int, float)):
            raise SuiteError(f"{path}: threshold `{key}` must be a number")
    cases: list[Case] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("cases") or []):
        where = f"{path.name} case {i + 1}"
        if not isinstance(raw, dict):
            raise SuiteError(f"{where} is not a mapping")
        cid = str(raw.get("id") or "").strip()
        if not cid:
            raise SuiteError(f"{where} has no `id`")
        where = f"{path.name} case `{cid}`"
        if cid in seen:
            raise SuiteError(f"{where}: the id is used twice")
        seen.add(cid)
        question = str(raw.get("question") or "").strip()
        if not question:
            raise SuiteError(f"{where} has no `question`")
        kind = str(raw.get("kind") or "").strip()
        if kind not in KINDS:
            raise SuiteError(f"{where}: kind `{kind}` is not one of {', '.join(KINDS)}")
        sources = raw.get("sources") or []
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise SuiteError(f"{where}: `sources` must be a list of file paths")
        if kind == "unanswerable" and sources:
            raise SuiteError(f"{where}: an unanswerable case has no sources")
        if kind != "unanswerable" and not sources:
            raise SuiteError(f"{where}: an answerable case names its source files")
        must = raw.get("must_include") or []
        facts: list[list[str]] = []
        for fact in must:
            alts = [fact] if isinstance(fact, str) else fact
            if not isinstance(alts, list) or not alts or not all(isinstance(a, (str, int, float)) for a in alts):
                raise SuiteError(f"{where}: each must_include fact is a list of acceptable strings")
            facts.append([str(a) for a in alts])
        must_not = raw.get("must_not_include") or []
        if isinstance(must_not, str):
            must_not = [must_not]
        for alt in [a for f in facts for a in f] + [str(m) for m in must_not]:
            if alt.startswith("re:"):
                try:
                    re.compile(alt[3:])
                except re.error as exc:
                    raise SuiteError(f"{where}: bad pattern {alt!r}: {exc}") from None
        ev = raw.get("evidence") or []
        ev = [ev] if isinstance(ev, str) else [str(e) for e in ev]
        cases.append(Case(cid, question, kind, [s.strip() for s in sources], facts,
                          [str(m) for m in must_not], ev, str(raw.get("answer") or "")))
    if not cases:
        raise SuiteError(f"{path} has no cases")
    tol = data.get("tolerance", 0.05)
    if not isinstance(tol, (int, float)) or tol < 0:
        raise SuiteError(f"{path}: `tolerance` must be a number >= 0")
    return Suite(path.resolve(), (path.parent / str(notes)).resolve(), {str(k): float(v) for k, v in thresholds.items()},
                 float(tol), cases)


# --- matching --------------------------------------------------------------------------

def normalize(text: str) -> str:
    """Case-folded, NFKC (full-width == half-width), all whitespace removed."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text or "").casefold())


def strip_markers(answer: str) -> str:
    return _MARKER.sub("", answer or "")


def matches(alt: str, normalized_answer: str) -> bool:
    """``alt`` stands in the answer; ``re:PATTERN`` is a regular expression over the normalized
    answer (for numbers: ``re:(?<![\\d.])8(?![\\d.])`` matches 8 but not 0.8 or 2018)."""
    if alt.startswith("re:"):
        return re.search(alt[3:], normalized_answer) is not None
    n = normalize(alt)
    return bool(n) and n in normalized_answer


def facts_found(answer: str, facts: Sequence[Sequence[str]]) -> list[bool]:
    a = normalize(strip_markers(answer))
    return [any(matches(alt, a) for alt in fact) for fact in facts]


def forbidden_found(answer: str, forbidden: Sequence[str]) -> list[str]:
    a = normalize(strip_markers(answer))
    return [f for f in forbidden if matches(f, a)]


class NoteFiles:
    """The notes as they are on disk now, decoded the way ingest decodes them."""

    def __init__(self, notes_dir: Path):
        self.notes_dir = Path(notes_dir)
        self._text: dict[str, str | None] = {}

    def text(self, rel: str) -> str | None:
        if rel not in self._text:
            from ingest.load import DecodeError, decode

            try:
                t, _ = decode((self.notes_dir / rel).read_bytes())
                self._text[rel] = t.replace("\r\n", "\n").replace("\r", "\n")
            except (OSError, DecodeError):
                self._text[rel] = None
        return self._text[rel]

    def lines(self, rel: str, start: int, end: int) -> str | None:
        t = self.text(rel)
        if t is None or start < 1 or end < start:
            return None
        lines = t.split("\n")
        if end > len(lines):
            return None
        return "\n".join(lines[start - 1:end])

    def all_files(self) -> list[str]:
        from ingest.load import walk

        return [n.rel for n in walk(self.notes_dir).notes]


# --- grading one case ------------------------------------------------------------------

def _files_of(source: dict) -> set[str]:
    return {source["file"], *(l["file"] for l in source.get("also_in", []))}


def grade(case: Case, result: dict, notes: NoteFiles) -> dict[str, Any]:
    """Grades of one result (``Answer.to_json()`` shaped) against its case."""
    expected = set(case.sources)
    g: dict[str, Any] = {"refused": bool(result.get("refused")), "error": bool(result.get("error"))}
    if case.answerable:
        rank = None
        for i, s in enumerate(result.get("sources", []), 1):
            if _files_of(s) & expected:
                rank = i
                break
        g["rank"] = rank
        g["hit_at_1"] = rank == 1
        g["hit_at_5"] = rank is not None and rank <= 5
        g["rr"] = 1.0 / rank if rank else 0.0
    cits = result.get("citations", [])
    valid = []
    for c in cits:
        lines = notes.lines(c["file"], int(c["line_start"]), int(c["line_end"]))
        valid.append(bool(c.get("quote")) and lines is not None and c["quote"] in lines)
    g["citations"] = len(cits)
    g["citations_valid"] = sum(valid)
    g["invalid_citations"] = [f"{c['file']}:{c['line_start']}-{c['line_end']}" for c, ok in zip(cits, valid) if not ok]
    # an answer cut short by an error still counts with what it said; no answer at all does not
    answered = not g["refused"] and bool((result.get("answer") or "").strip())
    g["answered"] = answered
    if case.answerable:
        if cits:
            g["precision"] = sum(1 for c in cits if c["file"] in expected) / len(cits)
        else:
            g["precision"] = None
        covered: set[str] = set()
        for c in cits:
            if c["file"] in expected:
                covered.add(c["file"])
            q = c.get("quote") or ""
            if q:  # a passage repeated verbatim in several files stands for each of them
                covered.update(f for f in expected if q in (notes.text(f) or ""))
        g["recall"] = len(covered) / len(expected) if answered else 0.0
        found = facts_found(result.get("answer", ""), case.must_include) if answered else \
            [False] * len(case.must_include)
        g["facts"] = found
        g["coverage"] = sum(found) / len(found) if found else (1.0 if answered else 0.0)
        g["false_refusal"] = g["refused"]
    else:
        g["refusal_correct"] = g["refused"]
    g["violations"] = forbidden_found(result.get("answer", ""), case.must_not_include) if not g["refused"] else []
    return g


# --- aggregates ------------------------------------------------------------------------

def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def aggregate(rows: Sequence[tuple[Case, dict]]) -> dict[str, Any]:
    """Metrics over (case, grades) pairs."""
    ans = [(c, g) for c, g in rows if c.answerable]
    una = [(c, g) for c, g in rows if not c.answerable]
    answered = [(c, g) for c, g in ans if g.get("answered", not g["refused"] and not g["error"])]
    total_cits = sum(g["citations"] for _, g in rows)
    m: dict[str, Any] = {"cases": len(rows), "answerable": len(ans), "unanswerable": len(una)}
    m["hit_at_1"] = _mean(g["hit_at_1"] for _, g in ans)
    m["hit_at_5"] = _mean(g["hit_at_5"] for _, g in ans)
    m["mrr"] = _mean(g["rr"] for _, g in ans)
    m["citation_precision"] = _mean(g["precision"] for _, g in answered)
    m["citation_recall"] = _mean(g["recall"] for _, g in answered)
    m["citation_validity"] = round(sum(g["citations_valid"] for _, g in rows) / total_cits, 4) if total_cits else None
    m["cited"] = _mean(g["citations"] > 0 for _, g in answered)
    m["coverage"] = _mean(g["coverage"] for _, g in ans)
    m["violations"] = _mean(bool(g["violations"]) for c, g in rows if c.must_not_include) if any(
        c.must_not_include for c, _ in rows) else None
    m["refusal_accuracy"] = _mean(g["refusal_correct"] for _, g in una)
    m["false_refusal"] = _mean(g["false_refusal"] for _, g in ans)
    m["errors"] = _mean(g["error"] for _, g in rows)
    judged = [g["judge"] for _, g in rows if g.get("judge")]
    if judged:
        m["judge_correctness"] = _mean(j.get("correctness") for j in judged)
        m["judge_faithfulness"] = _mean(j.get("faithful") for j in judged if j.get("faithful") is not None)
    return m


def metrics_by_kind(rows: Sequence[tuple[Case, dict]]) -> dict[str, Any]:
    out = {"overall": aggregate(rows), "by_kind": {}}
    for kind in KINDS:
        sub = [(c, g) for c, g in rows if c.kind == kind]
        if sub:
            out["by_kind"][kind] = aggregate(sub)
    return out


# --- the gate ----------------------------------------------------------------------------

def check_thresholds(metrics: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    failures = []
    for key, limit in thresholds.items():
        name, is_max = _threshold_metric(key)
        value = metrics.get(name)
        if value is None:
            continue  # nothing to grade (e.g. no citations at all is caught by `cited`)
        if is_max and value > limit + 1e-9:
            failures.append(f"{name} {value:.3f} is above the suite's maximum {limit:.3f}")
        elif not is_max and value < limit - 1e-9:
            failures.append(f"{name} {value:.3f} is below the suite's threshold {limit:.3f}")
    return failures


def compare_baseline(metrics: dict[str, Any], base: dict[str, Any], tolerance: float) -> list[str]:
    failures = []
    for name, label, higher, gateable in METRICS:
        if not gateable:
            continue
        cur, old = metrics.get(name), base.get(name)
        if cur is None or old is None:
            continue
        drop = (old - cur) if higher else (cur - old)
        if drop > tolerance + 1e-9:
            failures.append(f"{name} {cur:.3f} is worse than the baseline's {old:.3f} by more than {tolerance:.2f}")
    return failures


def worse_cases(cases: Sequence[dict], base_cases: Sequence[dict]) -> list[dict]:
    """Cases whose grades got worse than in the baseline report, with what changed."""
    old = {c["id"]: c for c in base_cases}
    out = []
    for c in cases:
        b = old.get(c["id"])
        if b is None:
            continue
        g, h = c["grades"], b["grades"]
        what = []
        if "rr" in g and "rr" in h and g["rr"] < h["rr"]:
            what.append(f"source rank {h.get('rank') or '-'} -> {g.get('rank') or '-'}")
        if "coverage" in g and "coverage" in h and g["coverage"] < h["coverage"]:
            what.append(f"coverage {h['coverage']:.2f} -> {g['coverage']:.2f}")
        if g.get("false_refusal") and not h.get("false_refusal"):
            what.append("now refused")
        if "refusal_correct" in g and h.get("refusal_correct") and not g["refusal_correct"]:
            what.append("no longer refused")
        if g.get("invalid_citations") and len(g["invalid_citations"]) > len(h.get("invalid_citations", [])):
            what.append("invalid citation " + ", ".join(g["invalid_citations"]))
        if (g.get("precision") is not None and h.get("precision") is not None
                and g["precision"] < h["precision"]):
            what.append(f"citation precision {h['precision']:.2f} -> {g['precision']:.2f}")
        if g.get("violations") and not h.get("violations"):
            what.append("says " + ", ".join(g["violations"]))
        if g.get("error") and not h.get("error"):
            what.append("error")
        if what:
            out.append({"id": c["id"], "question": c["question"], "what": what})
    return out


# --- running -------------------------------------------------------------------------------

class _NoProgress:
    def start(self, total: int, label: str) -> None:
        pass

    def step(self, label: str) -> None:
        pass

    def stop(self) -> None:
        pass


class RichProgress:
    """A progress bar on a terminal; one plain line per step elsewhere (CI logs)."""

    def __init__(self, console):
        self.console = console
        self.p = None
        self.task = None
        self.total = 0
        self.done = 0

    def start(self, total: int, label: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.total, self.done = total, 0
        if not self.console.is_terminal:
            return
        self.p = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                          console=self.console, transient=True)
        self.p.start()
        self.task = self.p.add_task(label[:28], total=total)

    def step(self, label: str) -> None:
        self.done += 1
        if self.p is not None:
            self.p.update(self.task, advance=1, description=label[:28])
        else:
            self.console.print(f"[{self.done}/{self.total}] {label}", markup=False, highlight=False)

    def stop(self) -> None:
        if self.p is not None:
            self.p.stop()


class _IngestProgress:
    """Ingest progress (files, chunks) on stderr; shown only when there is work to do."""

    def __init__(self, console):
        self.console = console
        self.p = None
        self.task = None

    def stage(self, name: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if total <= 0:
            return
        if self.p is None:
            self.p = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=self.console, transient=True)
            self.p.start()
        self.task = self.p.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self.p is not None and self.task is not None:
            self.p.advance(self.task, n)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


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


def _settings_summary(settings: Any) -> dict[str, Any]:
    """The settings that shape answers (not where things live)."""
    skip = {"data_dir", "model_dir", "notes_dir", "prompts_dir", "chroma_url", "ollama_host", "keep_alive"}
    try:
        data = settings.model_dump(mode="json")
    except AttributeError:
        data = dict(vars(settings))
    return {k: v for k, v in data.items() if k not in skip and k != "llm"}


def run_suite(suite: Suite, settings: Any, *, notes_dir: Path | None = None, compare: str | None = None,
              limit: int | None = None, judge: str | None = None, progress: Any = None,
              ingest_progress: Any = None, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run every case through NotesAssistant (and the naive pipeline when asked); grade; return the report."""
    from ingest.index import last_notes_dir, remember_notes_dir
    from ingest.pipeline import run_ingest

    from .query import NotesAssistant

    notes_path = Path(notes_dir or suite.notes_dir).expanduser().resolve()
    if not notes_path.is_dir():
        raise SuiteError(f"the suite's notes folder {notes_path} does not exist: fix `notes:` or pass --notes")
    cases = suite.cases[:limit] if limit else list(suite.cases)
    progress = progress or _NoProgress()
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()

    previous = last_notes_dir(settings.data_dir)
    summary = run_ingest(settings, notes_path, progress=ingest_progress)
    if previous is not None and Path(previous).resolve() != notes_path:
        remember_notes_dir(settings.data_dir, Path(previous))  # eval does not change `assistant ask`'s folder
    log(summary.line())

    notes = NoteFiles(notes_path)
    files = set(notes.all_files())
    warnings = []
    for case in cases:
        missing = [f for f in case.sources if f not in files]
        if missing:
            warnings.append(f"case `{case.id}` names sources that are not notes of {notes_path}: {', '.join(missing)}")
    for w in warnings:
        log(f"warning: {w}")

    qa = NotesAssistant(settings, notes_dir=notes_path)
    loaded = qa.llm  # load once; an unreachable model is a one-line error before any case runs

    naive = None
    if compare:
        if compare != "naive":
            raise UserError(f"--compare {compare}: the only pipeline to compare with is `naive`")
        from .naive import NaivePipeline

        naive = NaivePipeline(notes_path, loaded, top_k=settings.top_k)
        t_build = time.perf_counter()
        naive.build()
        log(f"naive pipeline: {naive.node_count} nodes indexed in {time.perf_counter() - t_build:.1f} s")

    judge_llm = None
    if judge:
        from .llm import load_llm

        judge_llm = load_llm(settings.model_copy(update={"llm": judge})).llm

    progress.start(len(cases) * (2 if naive else 1), "grading")
    out_cases: list[dict[str, Any]] = []
    interrupted = False
    try:
        for case in cases:
            ans = qa.ask(case.question)
            result = _result_of(ans)
            g = grade(case, result, notes)
            if judge_llm is not None and case.answerable and not result["refused"]:
                g["judge"] = _judge(judge_llm, case, result)
            entry = {"id": case.id, "question": case.question, "kind": case.kind,
                     "expected_sources": case.sources, "must_include": case.must_include,
                     "must_not_include": case.must_not_include, "reference_answer": case.answer,
                     "result": result, "grades": g}
            progress.step(f"{case.id} {result['timings_ms'].get('total', 0) / 1000:.1f} s"
                          + (" refused" if result["refused"] else ""))
            if naive is not None:
                nres = naive.ask(case.question)
                ng = grade(case, nres, notes)
                if judge_llm is not None and case.answerable and not nres["refused"]:
                    ng["judge"] = _judge(judge_llm, case, nres)
                entry["naive"] = {"result": nres, "grades": ng}
                progress.step(f"{case.id} (naive) {nres['timings_ms'].get('total', 0) / 1000:.1f} s")
            out_cases.append(entry)  # only whole cases: an interrupted run reports what it finished
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.stop()
    by_id = {c.id: c for c in cases}
    rows = [(by_id[e["id"]], e["grades"]) for e in out_cases]
    naive_rows = [(by_id[e["id"]], e["naive"]["grades"]) for e in out_cases if "naive" in e]
    if interrupted and not out_cases:
        raise KeyboardInterrupt

    report: dict[str, Any] = {
        "suite": str(suite.path), "notes_dir": str(notes_path), "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 1), "limit": limit,
        "config": {"llm": loaded.name, **_settings_summary(settings)},
        "thresholds": suite.thresholds, "tolerance": suite.tolerance,
        "metrics": metrics_by_kind(rows), "cases": out_cases,
    }
    if interrupted:
        report["interrupted"] = f"stopped after {len(out_cases)} of {len(cases)} cases"
    if warnings:
        report["warnings"] = warnings
    if judge:
        report["judge"] = judge
    if naive is not None:
        report["naive"] = {"description": naive.describe(), "metrics": metrics_by_kind(naive_rows)}
    return report


def gate(report: dict[str, Any], suite: Suite, baseline: dict[str, Any] | None = None,
         baseline_path: str | None = None) -> dict[str, Any]:
    overall = report["metrics"]["overall"]
    failures = check_thresholds(overall, suite.thresholds)
    if report.get("interrupted"):
        failures.insert(0, f"the run was interrupted: {report['interrupted']}")
    worse: list[dict] = []
    if baseline is not None:
        failures += compare_baseline(overall, baseline["metrics"]["overall"], suite.tolerance)
        worse = worse_cases(report["cases"], baseline.get("cases", []))
    result = {"passed": not failures, "failures": failures, "worse_cases": worse}
    if baseline_path:
        result["baseline"] = baseline_path
    report["gate"] = result
    return result


def load_baseline(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["metrics"]["overall"]  # noqa: B018 - shape check
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--baseline {path} is not a report.json written by `assistant eval`") from None
    return data


# --- reports ------------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


TABLE_METRICS = ["hit_at_1", "hit_at_5", "mrr", "citation_precision", "citation_recall", "citation_validity",
                 "cited", "coverage", "violations", "refusal_accuracy", "false_refusal"]
LABELS = {m[0]: m[1] for m in METRICS}


def table_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per metric, one column per kind and overall; with a naive run cells read ``ours / naive``."""
    naive = report.get("naive", {}).get("metrics")
    names = list(TABLE_METRICS)
    if "judge_correctness" in report["metrics"]["overall"]:
        names += ["judge_correctness", "judge_faithfulness"]
    kinds = list(report["metrics"]["by_kind"]) + ["overall"]

    def col(metrics: dict | None, kind: str) -> dict | None:
        if metrics is None:
            return None
        return metrics["overall"] if kind == "overall" else metrics["by_kind"].get(kind)

    header = ["metric"] + kinds
    rows = [["cases"] + [str(col(report["metrics"], k)["cases"]) for k in kinds]]
    for name in names:
        cells = [LABELS[name]]
        for k in kinds:
            cell = _fmt(col(report["metrics"], k).get(name))
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
    title = f"{Path(report['suite']).name}: {report['metrics']['overall']['cases']} cases, {report['config']['llm']}"
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
                     f"{g['citations']} ({g['citations_valid']}) | {'yes' if g['refused'] else 'no'} | "
                     f"{c['result'].get('timings_ms', {}).get('total', 0) / 1000:.1f} |")
    return "\n".join(lines) + "\n"


def summary_json(report: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    out = {"suite": report["suite"], "llm": report["config"]["llm"], "metrics": report["metrics"],
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


def main(settings: Any, suite_path: Path, *, notes: Path | None = None, baseline: Path | None = None,
         out: Path = Path("eval-out"), compare: str | None = None, as_json: bool = False,
         limit: int | None = None, judge: str | None = None) -> int:
    """The `assistant eval` command; returns the exit status (0 pass, 1 gate failed)."""
    from rich.console import Console

    import signal

    suite = load_suite(suite_path)
    base = load_baseline(baseline) if baseline else None

    def _stop(signum, frame):  # a CI timeout or `kill`: still write what is graded so far
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, _stop)
    except ValueError:  # not the main thread
        pass
    err = Console(stderr=True, highlight=False)
    progress = None if as_json else RichProgress(err)
    ingest_progress = None if as_json else _IngestProgress(err)
    try:
        report = run_suite(suite, settings, notes_dir=notes, compare=compare, limit=limit, judge=judge,
                           progress=progress, ingest_progress=ingest_progress,
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
