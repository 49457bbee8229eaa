"""Loading a suite file: the cases, the thresholds, and the tune/report parts.

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
        chapter: 001_311fe848aa0cfec6.txt         # optional: the chapter it belongs to (see parts)

A suite may split its cases by chapter into parts: ``parts: {tune: [chapters], report:
[chapters]}``. A case's chapter is its ``chapter:`` field, else the first path component
of its first source (for a flat folder the file name); every case's chapter must be in
exactly one part. A suite without ``parts`` has the single part ``all``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from .metrics import GATEABLE, threshold_metric

# english / chinese: asked in that language, about notes written in the other one
KINDS = ("fact", "why", "compare", "multi", "unanswerable", "english", "chinese")
PARTS = ("tune", "report", "all")


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
    chapter: str | None = None  # the explicit `chapter:`, else the first folder (or file) of the first source

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
    parts: dict[str, list[str]] = field(default_factory=dict)  # tune/report -> chapters; {} = all

    def part_of(self, case: Case) -> str:
        if not self.parts:
            return "all"
        return next(name for name, chapters in self.parts.items() if case.chapter in chapters)

    def select(self, part: str = "all") -> list[Case]:
        """The cases of ``part`` (tune | report | all)."""
        if part not in PARTS:
            raise SuiteError(f"unknown part `{part}`: choose one of {', '.join(PARTS)}")
        if part == "all":
            return list(self.cases)
        if not self.parts:
            raise SuiteError(f"{self.path.name} has no `parts:` (tune/report chapters): run it with --part all")
        return [c for c in self.cases if self.part_of(c) == part]


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
    thresholds = _thresholds(path, data.get("thresholds") or {})
    cases: list[Case] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("cases") or []):
        case = _case(path, i, raw)
        if case.id in seen:
            raise SuiteError(f"{path.name} case `{case.id}`: the id is used twice")
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise SuiteError(f"{path} has no cases")
    tol = data.get("tolerance", 0.05)
    if not isinstance(tol, (int, float)) or tol < 0:
        raise SuiteError(f"{path}: `tolerance` must be a number >= 0")
    parts = _parts(path, data.get("parts"), cases)
    return Suite(path.resolve(), (path.parent / str(notes)).resolve(), thresholds, float(tol), cases, parts)


def _thresholds(path: Path, thresholds: object) -> dict[str, float]:
    if not isinstance(thresholds, dict):
        raise SuiteError(f"{path}: `thresholds:` must map metric names to numbers")
    for key, value in thresholds.items():
        name, _ = threshold_metric(str(key))
        if name not in GATEABLE:
            raise SuiteError(f"{path}: unknown threshold `{key}`; known: "
                             f"{', '.join(sorted(GATEABLE))} (add _max for an upper bound)")
        if not isinstance(value, (int, float)):
            raise SuiteError(f"{path}: threshold `{key}` must be a number")
    return {str(k): float(v) for k, v in thresholds.items()}


def chapter_of(sources: list[str]) -> str | None:
    """The first path component of the first source (``ch3/attention.md`` -> ``ch3``; a flat file -> its name)."""
    if not sources:
        return None
    return sources[0].replace("\\", "/").strip("/").split("/")[0] or None


def _case(path: Path, i: int, raw: object) -> Case:
    where = f"{path.name} case {i + 1}"
    if not isinstance(raw, dict):
        raise SuiteError(f"{where} is not a mapping")
    cid = str(raw.get("id") or "").strip()
    if not cid:
        raise SuiteError(f"{where} has no `id`")
    where = f"{path.name} case `{cid}`"
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
    facts = _facts(where, raw.get("must_include") or [])
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
    sources = [s.strip() for s in sources]
    chapter = str(raw["chapter"]).strip() if raw.get("chapter") not in (None, "") else chapter_of(sources)
    return Case(cid, question, kind, sources, facts, [str(m) for m in must_not], ev, str(raw.get("answer") or ""),
                chapter)


def _facts(where: str, must: Any) -> list[list[str]]:
    facts: list[list[str]] = []
    for fact in must:
        alts = [fact] if isinstance(fact, str) else fact
        if not isinstance(alts, list) or not alts or not all(isinstance(a, (str, int, float)) for a in alts):
            raise SuiteError(f"{where}: each must_include fact is a list of acceptable strings")
        facts.append([str(a) for a in alts])
    return facts


def _parts(path: Path, raw: object, cases: list[Case]) -> dict[str, list[str]]:
    """``parts:`` checked: tune and report name lists of chapters; every case's chapter is in exactly one."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw or set(raw) - {"tune", "report"}:
        raise SuiteError(f"{path.name}: `parts:` maps tune and report to lists of chapters")
    parts: dict[str, list[str]] = {}
    for name, chapters in raw.items():
        if not isinstance(chapters, list) or not all(isinstance(c, (str, int)) for c in chapters):
            raise SuiteError(f"{path.name}: `parts: {name}:` must be a list of chapters")
        parts[str(name)] = [str(c).strip() for c in chapters]
    both = set(parts.get("tune", [])) & set(parts.get("report", []))
    if both:
        raise SuiteError(f"{path.name}: chapter `{sorted(both)[0]}` is in both parts (tune and report)")
    for case in cases:
        if not any(case.chapter in chapters for chapters in parts.values()):
            what = f"chapter `{case.chapter}`" if case.chapter else "no chapter (give it `chapter:`)"
            raise SuiteError(f"{path.name} case `{case.id}`: {what} is in no part of `parts:`")
    return parts
