"""`assistant eval`: grade retrieval, citations and answers on a suite of Q&A pairs.

    suite.py    the suite file: cases, thresholds, tune/report parts     load_suite()
    grade.py    one result against its case; metrics over many          grade(), metrics_by_kind()
    run.py      every case through NotesAssistant (or retrieval alone)   run_suite(), main()
    gate.py     thresholds and the baseline                              gate()
    report.py   the terminal table, report.md and report.json            write_reports()
    naive.py    the five-line LlamaIndex pipeline graded beside ours     (--compare naive)
"""

from .gate import check_thresholds, compare_baseline, gate, load_baseline, worse_cases
from .grade import (
    NoteFiles,
    aggregate,
    aggregate_retrieval,
    facts_found,
    forbidden_found,
    grade,
    grade_retrieval,
    matches,
    metrics_by_kind,
    normalize,
    strip_markers,
)
from .metrics import GATEABLE, METRICS
from .report import markdown, render_table, table_rows, write_reports
from .run import main, run_suite
from .suite import KINDS, PARTS, Case, Suite, SuiteError, chapter_of, load_suite

__all__ = [
    "GATEABLE", "KINDS", "METRICS", "PARTS", "Case", "NoteFiles", "Suite", "SuiteError", "aggregate",
    "aggregate_retrieval", "chapter_of", "check_thresholds", "compare_baseline", "facts_found", "forbidden_found",
    "gate", "grade", "grade_retrieval", "load_baseline", "load_suite", "main", "markdown", "matches",
    "metrics_by_kind", "normalize", "render_table", "run_suite", "strip_markers", "table_rows", "worse_cases",
    "write_reports",
]
