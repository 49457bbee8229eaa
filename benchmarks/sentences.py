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


def collect(suite_path: Path, part: str, limit: int, work: Path, chunk_chars: int = 400,
            context: bool = False) -> list[dict]:
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
    from assistant.guards import question_names

    rows = []
    for c in cases:
        ps = qa.search(c.question)
        lang = question_language(c.question)
        gate = evidence(c.question, ps, s, lang).enough
        cross = lang != qa.snapshot.language
        cands = candidates(ps, limit, bool(ASKS_FORMULA.search(c.question)))
        sents = featurize(c.question, cands, qa.snapshot.embedder)
        if context:
            _window(c.question, cands, sents, qa.snapshot.embedder)
        names = question_names(c.question)
        rows.append({"suite": suite_path.stem, "id": c.id, "question": c.question, "lang": lang, "answerable": c.answerable,
                     "gate": gate, "cross": cross, "facts": c.must_include, "sources": list(c.sources),
                     "sentences": [{"text": x.plain, "features": x.features, "typed": answers(c.question, x),
                                    "named": _named(names, x),
                                    "cover": _cover(facts_found(x.plain, c.must_include)) if c.answerable else 0.0,
                                    "file": x.passage.chunk.file}
                                   for x in sents]})
    return rows


def _named(names: list[str], s) -> float:
    """The share of the question's names (``guards.question_names``) that the sentence's passage
    or its heading path writes, compared as ``guards.unknown_names`` compares them (1.0 for a
    question that names nothing)."""
    from assistant.guards import fold, name_written

    if not names:
        return 1.0
    folded = fold(s.passage.chunk.heading_path + "\n" + s.passage.chunk.text)
    return sum(1 for n in names if name_written(n, folded)) / len(names)


def _window(question: str, cands: list, sents: list, embedder) -> None:
    """``--context``: the feature ``window``, the cosine of the question to the sentence read
    with the one before it in its passage (a sentence that needs its predecessor: "因此，这个
    多层感知机中的层数为2。"). Tried on tune and not kept (benchmarks/README.md)."""
    before = {id(b): a.plain for a, b in zip(cands, cands[1:]) if a.passage is b.passage}
    texts = [(before.get(id(x), "") + " " + x.plain).strip() for x in sents]
    if not texts:
        return
    q = embedder.get_query_embedding(question)
    for x, v in zip(sents, embedder.get_text_embedding_batch(texts)):
        x.features["window"] = float(sum(a * b for a, b in zip(q, v)))


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
        ranked = _order(sents, weights)
        top1.append(ranked[0]["cover"])
        sc = [_score(x, weights) for x in ranked[:2]]
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
    ap.add_argument("--context", action="store_true",
                    help="collect the feature `window` too (the sentence embedded with the one before it)")
    ap.add_argument("--variants", default="",
                    help="comma-separated ranking variants to print (shipped,idf,stemmed,z,mmr0.1,mmr0.3,context,"
                         "ql0.02: the model's query likelihood added with weight 0.02; file0.05: a sentence from "
                         "another file than the best one's scores 0.05 lower, file0: that rule off)")
    ap.add_argument("--ql-model", default="qwen2.5-coder-0.5b",
                    help="the embedded GGUF that scores the variants qlW (query likelihood, weight W)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/notes-assistant-ablation"))
    args = ap.parse_args()

    from assistant.sentences import OTHER_FILE, WEIGHTS

    rows_by_suite: dict[str, list[dict]] = {}
    for sp in args.suites:
        ctx = "-ctx" if args.context else ""
        cache = args.work / f"sentences-{sp.stem}-{args.part}-{args.limit}-c{args.chunk_chars}{ctx}.json"
        if cache.exists() and cache.stat().st_mtime > max(sp.stat().st_mtime, _code_mtime()):
            rows = json.loads(cache.read_text())
        else:
            rows = collect(sp, args.part, args.limit, args.work, args.chunk_chars, args.context)
            args.work.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(rows, ensure_ascii=False))
        rows_by_suite[sp.stem] = rows
    weights = fit(rows_by_suite, args.objective) if args.fit else {**WEIGHTS, "other_file": OTHER_FILE}
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
    if any(v.startswith("ql") for v in args.variants.split(",")):
        for name, rows in rows_by_suite.items():
            query_likelihood(rows, args.ql_model, args.work / f"ql-{name}-{args.part}-{args.ql_model}.json")
    if args.variants:
        print_variants(rows_by_suite, args.variants.split(","), weights, args.part)
    return 0


# --- ranking variants tried on tune (benchmarks/README.md, fourth session) ------------------

def _terms(text: str, stemmed: bool = False) -> set[str]:
    from ingest.keywords import stem
    from ingest.text import terms

    t = terms(text)
    return {stem(w) if w.isascii() and w.isalpha() else w for w in t} if stemmed else t


def _with_features(rows: list[dict]) -> None:
    """Features of the variants, from the cached rows (no model): the question's term share
    weighted by IDF over the question's own candidate sentences (``idf``), the share with
    English words stemmed (``stemmed``), the cosine standardised within the question (``z``),
    and max(cosine, cosine with the sentence before) where ``--context`` collected it."""
    import math

    for r in rows:
        sents, q = r["sentences"], r["question"]
        qt, qs = _terms(q), _terms(q, True)
        st = [_terms(x["text"]) for x in sents]
        df = {t: sum(1 for z in st if t in z) for t in qt}
        idf = {t: math.log(1 + len(sents) / (1 + df[t])) for t in qt}
        dense = [x["features"]["dense"] for x in sents]
        mu = statistics.mean(dense) if dense else 0.0
        sd = (statistics.pstdev(dense) if len(dense) > 1 else 1.0) or 1.0
        for x, z in zip(sents, st):
            f = x["features"]
            f["idf"] = sum(idf[t] for t in qt if t in z) / (sum(idf.values()) or 1.0)
            f["stemmed"] = len(qs & _terms(x["text"], True)) / len(qs) if qs else 0.0
            f["z"] = (f["dense"] - mu) / sd
            f["context"] = max(f["dense"], f.get("window", f["dense"]))


QL_PROMPT = ("<|im_start|>user\n{passage}\n\nWrite one question a student could ask that this note text answers."
             "<|im_end|>\n<|im_start|>assistant\n")
QL_TOP = 8  # the sentences scored per question, best by the shipped ranking


def query_likelihood(rows: list[dict], model: str, cache: Path) -> None:
    """The feature ``ql``: log P(question | sentence) per question token under the embedded
    model (UPR, Sachan et al. 2022: rerank by how likely the passage makes the question), for
    the ``QL_TOP`` best sentences of each row by the shipped weights; the others get the row's
    lowest. Scores are cached in ``cache`` (0.5B: ~5 s per question on 2 cores). Tried on
    tune and not kept (benchmarks/README.md, fifth session)."""
    import numpy as np

    from assistant.gguf import gguf_path
    from assistant.sentences import WEIGHTS
    from assistant.settings import load_settings

    done: dict[str, float] = json.loads(cache.read_text()) if cache.exists() else {}
    llm = None
    for r in rows:
        ranked = sorted(r["sentences"], key=lambda x: -_score(x, WEIGHTS))
        for x in ranked[:QL_TOP]:
            key = r["question"] + "\x00" + x["text"]
            if key not in done:
                if llm is None:
                    from llama_cpp import Llama

                    llm = Llama(model_path=str(gguf_path(model, load_settings().model_dir)), n_ctx=1024,
                                logits_all=True, n_threads=2, n_threads_batch=2, verbose=False, seed=1)
                q = llm.tokenize(r["question"].encode(), add_bos=False, special=False)
                pre = llm.tokenize(QL_PROMPT.format(passage=x["text"]).encode(), add_bos=False, special=True)
                llm.reset()
                llm.eval(pre + q)
                logits = llm.scores[len(pre) - 1: len(pre) + len(q) - 1]  # position i predicts token i + 1
                m = logits.max(axis=1, keepdims=True)
                lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
                done[key] = float(sum(logits[j, q[j]] - lse[j] for j in range(len(q))) / max(1, len(q)))
            x["features"]["ql"] = done[key]
        low = min((x["features"]["ql"] for x in ranked[:QL_TOP]), default=0.0)
        for x in ranked[QL_TOP:]:
            x["features"]["ql"] = low
    cache.write_text(json.dumps(done, ensure_ascii=False))


def _variant_weights(name: str, w: dict[str, float]) -> dict[str, float]:
    if name.startswith("ql"):
        return {**w, "ql": float(name[2:])}
    if name.startswith("file"):
        return {**w, "other_file": float(name[4:])}
    return {"shipped": w, "idf": {**w, "lexical": 0.0, "idf": 0.3},
            "stemmed": {**w, "lexical": 0.0, "stemmed": 0.3},
            "z": {**w, "dense": 0.0, "z": 0.03, "lexical": 0.0, "idf": 0.2},
            "context": {**w, "dense": 0.0, "context": 2.0}}.get(name, w)


def _score(x: dict, w: dict[str, float]) -> float:
    return sum(w.get(k, 0.0) * v for k, v in x["features"].items())


def _order(sents: list[dict], w: dict[str, float]) -> list[dict]:
    """The cached sentences as ``assistant.sentences.score`` orders them (``other_file``: the
    weight of its one-note rule; 0 or absent: off)."""
    from assistant.sentences import one_note_first

    return one_note_first(sorted(sents, key=lambda x: -_score(x, w)), lambda x: _score(x, w), lambda x: x.get("file"),
                          w.get("other_file", 0.0))


def _top3(r: dict, w: dict[str, float], mmr: float = 0.0) -> list[dict]:
    """The three sentences an answer shows; with ``mmr``, each next one also scored by the
    share of the question's terms that the ones before did not hold."""
    ranked = _order(r["sentences"], w)
    if not mmr:
        return ranked[:3]
    qt = _terms(r["question"]) or {""}
    asked = [_terms(y["text"]) & qt for y in ranked]  # the question's terms each sentence holds
    chosen: list[int] = []
    held: set[str] = set()
    for _ in range(min(3, len(ranked))):
        i = max((j for j in range(len(ranked)) if j not in chosen),
                key=lambda j: _score(ranked[j], w) + mmr * len(asked[j] - held) / len(qt))
        chosen.append(i)
        held |= asked[i]
    return [ranked[i] for i in chosen]


def print_variants(rows_by_suite: dict[str, list[dict]], names: list[str], weights: dict[str, float], part: str) -> None:
    """Facts in the three sentences an answer shows, and the share of them in a file the case
    names, per variant and suite."""
    from assistant.eval import facts_found

    for rows in rows_by_suite.values():
        _with_features(rows)
    print(f"\n| variant ({part}) | " + " | ".join(rows_by_suite) + " | mean |")
    print("| --- |" + " --- |" * (len(rows_by_suite) + 1))
    for name in names:
        mmr = float(name[3:]) if name.startswith("mmr") else 0.0
        w = _variant_weights(name, weights)
        cells, precision = [], []
        for rows in rows_by_suite.values():
            shown = [(r, _top3(r, w, mmr)) for r in rows if r.get("answerable", True)]
            cov = [_cover(facts_found(" ".join(x["text"] for x in top), r["facts"])) for r, top in shown]
            cells.append(statistics.mean(cov) if cov else float("nan"))
            # the share of the shown sentences that stand in a file the case names (the grader's
            # citation precision, per sentence)
            prec = [sum(x.get("file") in r.get("sources", []) for x in top) / len(top) for r, top in shown if top]
            precision.append(statistics.mean(prec) if prec else float("nan"))
        real = [c for c in cells if c == c]
        print(f"| {name} | " + " | ".join(f"{c:.3f} / {p:.2f}" for c, p in zip(cells, precision))
              + f" | {statistics.mean(real):.3f} |")


def _code_mtime() -> float:
    # this script too: what collect() records changes with it (a cache without the question
    # would leave the variants' term features empty)
    return max(p.stat().st_mtime for p in [Path(__file__), ROOT / "assistant" / "sentences.py", ROOT / "assistant" / "retrieve.py",
                                           ROOT / "ingest" / "split.py", ROOT / "ingest" / "keywords.py"])


if __name__ == "__main__":
    sys.exit(main())
