"""The evidence gate alone: which questions does it refuse, near misses and answerable ones?

    .venv/bin/python benchmarks/gate.py SUITE.yaml --data-dir DIR [--part tune|report]

Before any sentence is ranked or any model runs, ``assistant.answer.evidence`` decides from
the three best passages (term overlap, e5 cosine) whether the notes cover the question, and
``guards.unknown_names`` refuses a question naming what the notes never write. This prints,
per variant of the passages' similarity, the share of near misses refused and of answerable
questions refused, overall and for questions in the other language than the notes:

- ``shipped``: a passage's similarity is its chunk cosine when the dense list found it, else none;
- ``chunk cosine``: every passage's chunk cosine, however it was found;
- ``sentence cosine``: the larger of that and the cosine of its best sentence (the sentence list).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ("shipped", "chunk cosine", "sentence cosine")


def decisions(qa, question: str) -> dict[str, tuple[bool, str]]:
    """Per variant, (refused, why) for ``question``."""
    from llama_index.core.schema import QueryBundle

    from assistant.answer import evidence, question_language
    from assistant.guards import unknown_names

    snap = qa.snapshot
    passages = qa.search(question)
    lang = question_language(question)
    q = snap.embedder.get_query_embedding(question)
    chunk_sim = {c.id: s for c, s in snap.dense.search(question, len(snap.chunks), q)}
    sent_sim = {c.id: s for c, s in qa.retriever.sentences.hits(QueryBundle(question, embedding=q))}
    unknown = bool(unknown_names(question, snap))
    out = {}
    for v in VARIANTS:
        ps = passages
        if v != "shipped":
            ps = [dataclasses.replace(p, similarity=max(chunk_sim.get(p.chunk.id, 0.0),
                                                        sent_sim.get(p.chunk.id, 0.0) if v == "sentence cosine"
                                                        else 0.0)) for p in passages]
        ev = evidence(question, ps, qa.settings, lang)
        out[v] = (not ev.enough or unknown, ev.reason)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite", type=Path)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--part", default="tune", choices=("tune", "report", "all"))
    ap.add_argument("--show", action="store_true", help="list the questions a variant decides otherwise")
    args = ap.parse_args(argv)
    from assistant.answer import question_language
    from assistant.eval import load_suite
    from assistant.query import NotesAssistant
    from assistant.settings import Settings

    suite = load_suite(args.suite)
    qa = NotesAssistant(Settings(data_dir=args.data_dir), suite.notes_dir)
    notes_lang = qa.snapshot.language
    rows = {v: {"near": [], "answerable": [], "cross answerable": []} for v in VARIANTS}
    for case in suite.select(args.part):
        d = decisions(qa, case.question)
        cross = question_language(case.question) != notes_lang
        for v, (refused, _) in d.items():
            rows[v]["answerable" if case.answerable else "near"].append(refused)
            if cross and case.answerable:
                rows[v]["cross answerable"].append(refused)
        if args.show and len({r for r, _ in d.values()}) > 1:
            print(f"  {'near' if not case.answerable else 'ans '} {case.question[:80]} "
                  f"{ {v: r for v, (r, _) in d.items()} }", file=sys.stderr)
    share = lambda xs: f"{sum(xs) / len(xs):.2f} ({sum(xs)}/{len(xs)})" if xs else "–"  # noqa: E731
    print(f"{args.suite.stem}, part {args.part}\n")
    print("| variant | near misses refused | answerable refused | other-language answerable refused |")
    print("| --- | --- | --- | --- |")
    for v, r in rows.items():
        print(f"| {v} | {share(r['near'])} | {share(r['answerable'])} | {share(r['cross answerable'])} |")


if __name__ == "__main__":
    main()
