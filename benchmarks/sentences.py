"""Sentence ranking alone, before any LLM: is the fact asked for in the best sentence?

    .venv/bin/python benchmarks/sentences.py examples/suites/*.yaml --part tune --fit
    .venv/bin/python benchmarks/sentences.py examples/suites/*.yaml --part report

For each answerable case: the shipped retrieval, then the sentences of the first --limit
passages ranked by `assistant.sentences` (the product's ranker). Prints, per suite and
question language, the share of the case's must_include facts held by the top-1 sentence,
by the top 2 together, the best single sentence among the top 3, and the best sentence
among all candidates (the upper bound for selection). `--fit` grid-searches the feature
weights on the part given (use `--part tune`) and prints the weights that maximise the mean
top-1 coverage over all suites; the result goes into `assistant/sentences.py` by hand.

Features are computed once per case and cached in --work, so refits take seconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def collect(suite_path: Path, part: str, limit: int, work: Path, chunk_chars: int = 400) -> list[dict]:
    from ablation import load

    from assistant.answer import question_language
    from assistant.eval import facts_found
    from assistant.query import NotesAssistant
    from assistant.sentences import ASKS_FORMULA, candidates, featurize
    from assistant.settings import load_settings
    from assistant.indexing import ingest_notes as run_ingest

    suite, cases = load(suite_path, part, answerable_only=False)
    if not cases or not suite.notes_dir.exists():
        return []
    data_dir = work / f"{suite_path.stem}-c{chunk_chars}"  # the index ablation.py --chunking made
    s = load_settings(data_dir=data_dir, chunk_chars=chunk_chars, chunk_chars_en=chunk_chars)
    run_ingest(s, suite.notes_dir)
    qa = NotesAssistant(s, notes_dir=suite.notes_dir)
    from assistant.answer import evidence
    from assistant.compose import answers

    rows = []
    for c in cases:
        ps = qa.search(c.question)
        lang = question_language(c.question)
        gate = evidence(c.question, ps, s, lang).enough
        cross = lang != qa.snapshot.language
        sents = featurize(c.question, candidates(ps, limit, bool(ASKS_FORMULA.search(c.question))), qa.snapshot.embedder)
        rows.append({"suite": suite_path.stem, "id": c.id, "lang": lang, "answerable": c.answerable,
                     "gate": gate, "cross": cross, "facts": c.must_include,
                     "sentences": [{"text": x.plain, "features": x.features, "typed": answers(c.question, x),
                                    "cover": _cover(facts_found(x.plain, c.must_include)) if c.answerable else 0.0}
                                   for x in sents]})
    return rows


def _cover(found: list[bool]) -> float:
    return sum(found) / len(found) if found else 1.0


def evaluate(rows: list[dict], weights: dict[str, float]) -> dict:
    from assistant.eval import facts_found

    top1, top2, top3, best3, upper = [], [], [], [], []
    composed: dict[float, list[float]] = {}
    for r in rows:
        if not r.get("answerable", True):
            continue
        sents = r["sentences"]
        if not sents:
            top1.append(0.0), top2.append(0.0), top3.append(0.0), best3.append(0.0), upper.append(0.0)
            continue
        ranked = sorted(sents, key=lambda x: -sum(weights.get(k, 0.0) * v for k, v in x["features"].items()))
        top1.append(ranked[0]["cover"])
        sc = [sum(weights.get(k, 0.0) * v for k, v in x["features"].items()) for x in ranked[:2]]
        for m in MARGINS:
            parts = [ranked[0]["text"]] + ([ranked[1]["text"]] if len(ranked) > 1 and sc[0] - sc[1] <= m else [])
            composed.setdefault(m, []).append(_cover(facts_found(" ".join(parts), r["facts"])))
        joined = " ".join(x["text"] for x in ranked[:2])
        top2.append(_cover(facts_found(joined, r["facts"])))
        top3.append(_cover(facts_found(" ".join(x["text"] for x in ranked[:3]), r["facts"])))
        best3.append(max(x["cover"] for x in ranked[:3]))
        upper.append(max(x["cover"] for x in sents))
    m = lambda xs: round(statistics.mean(xs), 3) if xs else None  # noqa: E731
    return {"n": len(top1), "top1": m(top1), "top2": m(top2), "top3": m(top3), "best_of_3": m(best3),
            "upper": m(upper),
            **{f"margin{k}": m(v) for k, v in composed.items()}}


MARGINS = (0.02, 0.05, 0.1)


def refusals(rows: list[dict], weights: dict[str, float], threshold: float, typed: bool = True) -> dict:
    """Refusal accuracy on unanswerable cases and false refusals on answerable ones, for
    the gate + "the best sentence holds the kind asked for" + "scores at least threshold"."""
    right, wrong, n_un, n_ans = 0, 0, 0, 0
    for r in rows:
        ranked = sorted(r["sentences"], key=lambda x: -sum(weights.get(k, 0.0) * v for k, v in x["features"].items()))
        top = ranked[0] if ranked else None
        score = sum(weights.get(k, 0.0) * v for k, v in top["features"].items()) if top else -9
        refused = (not r["gate"]) or top is None or (typed and not top["typed"]) or score < threshold
        if r.get("answerable", True):
            n_ans += 1
            wrong += refused
        else:
            n_un += 1
            right += refused
    return {"refusal_accuracy": round(right / n_un, 3) if n_un else None,
            "false_refusals": round(wrong / n_ans, 3) if n_ans else None, "unanswerable": n_un}


GRID = {"dense": [1.0], "lexical": [0.15, 0.3, 0.6], "heading": [0.0, 0.05],
        "cue": [0.05, 0.1, 0.2], "rank": [0.02, 0.05, 0.1], "first": [0.0, 0.02],
        "short": [0.0, -0.05]}


THRESHOLDS = (-1.0, 0.80, 0.85, 0.90, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2)


def fit(rows_by_suite: dict[str, list[dict]], objective: str = "top2") -> dict[str, float]:
    """The grid point with the best mean (over suites) coverage of ``objective`` (top2: the
    two sentences an answer shows); ties to the simpler."""
    best, best_w = -1.0, None
    keys = list(GRID)
    for values in itertools.product(*(GRID[k] for k in keys)):
        w = dict(zip(keys, values))
        score = statistics.mean(evaluate(rows, w)[objective] for rows in rows_by_suite.values() if rows)
        simple = sum(1 for v in values if v)
        if score > best + 1e-9 or (abs(score - best) <= 1e-9 and simple < sum(1 for v in best_w.values() if v)):
            best, best_w = score, w
    return best_w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="+", type=Path)
    ap.add_argument("--part", default="tune", choices=["tune", "report", "all"])
    ap.add_argument("--limit", type=int, default=4, help="passages whose sentences are ranked")
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--chunk-chars", type=int, default=400, help="the chunk size of the index (ablation.py --chunking)")
    ap.add_argument("--objective", default="top2", choices=["top1", "top2", "top3"], help="what --fit maximises")
    ap.add_argument("--work", type=Path, default=Path("/tmp/notes-assistant-ablation"))
    args = ap.parse_args()

    from assistant.sentences import WEIGHTS

    rows_by_suite: dict[str, list[dict]] = {}
    for sp in args.suites:
        cache = args.work / f"sentences-{sp.stem}-{args.part}-{args.limit}-c{args.chunk_chars}.json"
        if cache.exists() and cache.stat().st_mtime > max(sp.stat().st_mtime, _code_mtime()):
            rows = json.loads(cache.read_text())
        else:
            rows = collect(sp, args.part, args.limit, args.work, args.chunk_chars)
            args.work.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(rows, ensure_ascii=False))
        rows_by_suite[sp.stem] = rows
    weights = fit(rows_by_suite, args.objective) if args.fit else WEIGHTS
    threshold = -9.0  # the product refuses on the gate and the answer type, not on a score (see --fit)
    if args.fit:
        print("fitted weights:", json.dumps(weights))
        for t in THRESHOLDS:
            for typed in (False, True):
                stats = [refusals(rows, weights, t, typed) for rows in rows_by_suite.values() if rows]
                print(f"threshold {t:+.2f} typed={typed}: " + " | ".join(json.dumps(x) for x in stats))
    for name, rows in rows_by_suite.items():
        for lang in ("all", "zh", "en"):
            sub = [r for r in rows if lang == "all" or r["lang"] == lang]
            if sub:
                print(f"{name:<20} {args.part:<6} {lang:<3}", json.dumps(evaluate(sub, weights)),
                      json.dumps(refusals(sub, weights, threshold)))
    return 0


def _code_mtime() -> float:
    return max(p.stat().st_mtime for p in [ROOT / "assistant" / "sentences.py", ROOT / "assistant" / "retrieve.py",
                                           ROOT / "ingest" / "split.py", ROOT / "ingest" / "keywords.py"])


if __name__ == "__main__":
    sys.exit(main())
