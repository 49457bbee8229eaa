"""The gate: a run passes when it meets the suite's thresholds and is no worse than a
baseline report by more than the suite's tolerance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from .metrics import METRICS, threshold_metric
from .suite import Suite

def check_thresholds(metrics: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    failures = []
    for key, limit in thresholds.items():
        name, is_max = threshold_metric(key)
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
    for name, _label, higher, gateable in METRICS:
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
